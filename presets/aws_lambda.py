"""Preset ``aws_lambda``: a SAM project for AWS Lambda with EventBridge Scheduler.

Output (``.output/`` by default)::

    template.yaml        one AWS::Serverless::Function; one ScheduleV2 event
                         per deployed schedule; a Function URL with the task API
    README.md            how to deploy
    src/app.py           the handler (``app.handler``): taskpack.platforms.aws_lambda
    src/requirements.txt the project's requirements, installed by ``sam build``
    src/taskpack/ src/project/ src/taskpack_manifest.py   the bundle

Each schedule is translated to the Scheduler's six-field ``cron(...)``
(:func:`taskpack.builder.dialects.to_aws_scheduler`) and checked against
AWS's documented syntax (:mod:`taskpack.builder.aws_cron`); what AWS cannot
express fails the build naming the ``scheduled_tasks`` key. Schedules that
mean the same are merged. Every schedule carries the project's
``timezone`` as ``ScheduleExpressionTimezone`` (the Scheduler applies DST),
an ``Input`` naming the schedule and carrying
``<aws.scheduler.scheduled-time>``, a retry policy, ``OmitName: true`` (so
two stacks of the same template never collide on schedule names) and
``FlexibleTimeWindow: {Mode: "OFF"}`` (quoted: an unquoted OFF is YAML's
false).

``[aws_lambda]``: ``python`` (3.12-3.14, default 3.14), ``tasks_api``,
``memory`` (MB, default 512), ``timeout`` (s, default 900), and the
Scheduler's ``retry_attempts`` (default 2) and ``max_event_age`` (s,
default 3600).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taskpack import __version__
from taskpack.builder import bundle
from taskpack.builder.dialects import AWS_SCHEDULER, Trigger, skipped_in_gap
from taskpack.builder.project import Project
from taskpack.builder.yaml_out import dump_yaml
from taskpack.cron import CronExpr
from taskpack.http import TASKS_TOKEN_ENV
from taskpack.platforms.aws_lambda import schedule_input

name = "aws_lambda"
aliases = ("aws-lambda",)
summary = "a SAM project: AWS Lambda + EventBridge Scheduler"
cron_platform = AWS_SCHEDULER

SOURCE_DIR = "src"
TEMPLATE = "template.yaml"
FUNCTION_ID = "TaskpackFunction"
TOKEN_PARAMETER = "TasksToken"
SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
DESCRIPTION_LIMIT = 512


@dataclass(frozen=True)
class Options:
    """The ``[aws_lambda]`` table with defaults applied."""

    python: str = "3.14"
    tasks_api: bool = False
    memory: int = 512
    timeout: int = 900
    retry_attempts: int = 2
    max_event_age: int = 3600

    @classmethod
    def of(cls, project: Project) -> Options:
        return cls(**dict(project.preset_options("aws_lambda")))


def validate(project: Project) -> list[str]:
    """Refuse schedules the Scheduler cannot run the same way (naming the
    key); warn about fires the Scheduler skips in a spring-forward gap of
    the project's ``timezone`` within the next year."""
    timezone = project.config.timezone
    warnings = []
    for trigger in schedules(project):
        skipped = skipped_in_gap(CronExpr.parse(trigger.keys[0]), timezone, datetime.now(UTC))
        if skipped is not None:
            warnings.append(
                f"aws_lambda: {trigger.keys[0]!r} is due at {skipped:%Y-%m-%d %H:%M}, a time "
                f"that does not exist in {timezone} (clocks spring forward): EventBridge "
                "Scheduler skips such fires, taskpack's own scheduler runs them at the end of "
                "the gap"
            )
    return warnings


def schedules(project: Project) -> tuple[Trigger, ...]:
    """The deployed schedules, each string checked against AWS's rules."""
    return AWS_SCHEDULER.triggers(project.schedules, project.config)


def emit(project: Project, out: Path) -> None:
    """Write the SAM project into ``out``."""
    options = Options.of(project)
    triggers = schedules(project)
    bundle.write_bundle(project, out / SOURCE_DIR, requirements=())
    bundle.render("aws_lambda/app.py.j2", out / SOURCE_DIR / "app.py", version=__version__,
                  schedules=bundle.literal({t.cron: list(t.tasks) for t in triggers}),
                  tasks_api=options.tasks_api)
    template = sam_template(project, options, triggers)
    bundle.write_text(out / TEMPLATE, dump_yaml(template))
    bundle.render("aws_lambda/README.md.j2", out / "README.md", name=stack_name(project),
                  version=__version__, python=options.python, timezone=project.config.timezone,
                  tasks_api=options.tasks_api,
                  schedules=[{"cron": t.cron, "written": ", ".join(f"`{k}`" for k in t.keys),
                              "tasks": ", ".join(t.tasks)} for t in triggers])


def next_steps(project: Project, out: Path) -> list[str]:
    """How to deploy the output at ``out``."""
    deploy = "sam deploy --guided"
    if Options.of(project).tasks_api:
        deploy += f" --parameter-overrides {TOKEN_PARAMETER}=<random 32+ characters>"
    return [f"cd {out}", "sam build", deploy]


def sam_template(project: Project, options: Options,
                 triggers: tuple[Trigger, ...]) -> dict[str, Any]:
    """``template.yaml`` as data (pure: the same project gives the same dict)."""
    properties: dict[str, Any] = {
        "CodeUri": f"{SOURCE_DIR}/",
        "Handler": "app.handler",
        "Runtime": f"python{options.python}",
        "MemorySize": options.memory,
        "Timeout": options.timeout,
    }
    template: dict[str, Any] = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": SAM_TRANSFORM,
        "Description": f"taskpack bundle {stack_name(project)} (preset aws_lambda, "
                       f"taskpack {__version__})",
    }
    if options.tasks_api:
        template["Parameters"] = {TOKEN_PARAMETER: {
            "Type": "String",
            "NoEcho": True,
            "Default": "",
            "Description": f"Bearer token of the task API ({TASKS_TOKEN_ENV}); "
                           "empty: the API answers 500",
        }}
        properties["Environment"] = {"Variables": {TASKS_TOKEN_ENV: {"Ref": TOKEN_PARAMETER}}}
        properties["FunctionUrlConfig"] = {"AuthType": "NONE"}
    if triggers:
        properties["Events"] = {
            event_name(t.cron): {"Type": "ScheduleV2",
                                 "Properties": schedule_properties(project, options, t)}
            for t in triggers
        }
    template["Resources"] = {FUNCTION_ID: {"Type": "AWS::Serverless::Function",
                                           "Properties": properties}}
    outputs: dict[str, Any] = {"FunctionName": {"Value": {"Ref": FUNCTION_ID}}}
    if options.tasks_api:
        outputs["FunctionUrl"] = {"Value": {"Fn::GetAtt": [f"{FUNCTION_ID}Url", "FunctionUrl"]}}
    template["Outputs"] = outputs
    return template


def schedule_properties(project: Project, options: Options, trigger: Trigger) -> dict[str, Any]:
    """The ``ScheduleV2`` properties of one deployed schedule."""
    description = f"taskpack: {' | '.join(trigger.keys)} -> {', '.join(trigger.tasks)}"
    return {
        "ScheduleExpression": trigger.cron,
        "ScheduleExpressionTimezone": project.config.timezone,
        "Description": description[:DESCRIPTION_LIMIT],
        "Input": json.dumps(schedule_input(trigger.cron), sort_keys=True),
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "RetryPolicy": {"MaximumRetryAttempts": options.retry_attempts,
                        "MaximumEventAgeInSeconds": options.max_event_age},
        "OmitName": True,
        "State": "ENABLED",
    }


def event_name(cron: str) -> str:
    """The event's logical name: stable for the same deployed string
    (alphanumeric, as CloudFormation requires)."""
    return "Schedule" + hashlib.sha256(cron.encode("utf-8")).hexdigest()[:12]


def stack_name(project: Project) -> str:
    """A name for the stack from the project folder's name."""
    slug = re.sub(r"[^A-Za-z0-9-]+", "-", project.root.name).strip("-")
    return slug or "taskpack"
