"""``taskpack.json`` records each schedule as written and as deployed, for
every preset, and the summary prints the deployed strings."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskpack.builder.build import build
from taskpack.builder.cli import main
from taskpack.presets import known_presets
from tests.helpers import MakeProject, task_source

# Digits for weekdays, a nickname and two spellings of one time: Cloudflare
# deploys weekday names, Vercel and Kubernetes digits, AWS names in its
# six-field form, and all merge the three Sunday schedules into one trigger.
CONFIG = """
[scheduled_tasks]
"0 0 * * 0" = "a"
"@weekly" = ["c", "a"]
"0 0 * * SUN" = "b"
"0 12 * * 1-5" = "d"
"30 * * * *" = "d"
"""
DEPLOYED = {
    "cloudflare_module": [
        {"cron": "0 0 * * SUN", "tasks": ["a", "c", "b"],
         "written": ["0 0 * * 0", "0 0 * * SUN", "@weekly"]},
        {"cron": "0 12 * * MON-FRI", "tasks": ["d"], "written": ["0 12 * * 1-5"]},
        {"cron": "30 * * * *", "tasks": ["d"], "written": ["30 * * * *"]},
    ],
    "vercel": [
        {"cron": "0 0 * * 0", "tasks": ["a", "c", "b"],
         "written": ["0 0 * * 0", "0 0 * * SUN", "@weekly"]},
        {"cron": "0 12 * * 1-5", "tasks": ["d"], "written": ["0 12 * * 1-5"]},
        {"cron": "30 * * * *", "tasks": ["d"], "written": ["30 * * * *"]},
    ],
    "aws_lambda": [
        {"cron": "cron(0 0 ? * SUN *)", "tasks": ["a", "c", "b"],
         "written": ["0 0 * * 0", "0 0 * * SUN", "@weekly"]},
        {"cron": "cron(0 12 ? * MON-FRI *)", "tasks": ["d"], "written": ["0 12 * * 1-5"]},
        {"cron": "cron(30 * * * ? *)", "tasks": ["d"], "written": ["30 * * * *"]},
    ],
    "kubernetes": [
        {"cron": "0 0 * * 0", "tasks": ["a", "c", "b"],
         "written": ["0 0 * * 0", "0 0 * * SUN", "@weekly"]},
        {"cron": "0 12 * * 1-5", "tasks": ["d"], "written": ["0 12 * * 1-5"]},
        {"cron": "30 * * * *", "tasks": ["d"], "written": ["30 * * * *"]},
    ],
}
AS_WRITTEN = [
    {"cron": "0 0 * * 0", "tasks": ["a"], "written": ["0 0 * * 0"]},
    {"cron": "0 0 * * SUN", "tasks": ["b"], "written": ["0 0 * * SUN"]},
    {"cron": "0 12 * * 1-5", "tasks": ["d"], "written": ["0 12 * * 1-5"]},
    {"cron": "30 * * * *", "tasks": ["d"], "written": ["30 * * * *"]},
    {"cron": "@weekly", "tasks": ["c", "a"], "written": ["@weekly"]},
]
# Presets that emit nothing (cloudflare_pages refuses every build).
NO_OUTPUT = {"cloudflare_pages"}


@pytest.fixture
def project(make_project: MakeProject) -> Path:
    files = {"taskpack.toml": CONFIG}
    files.update({f"tasks/{name}.py": task_source() for name in "abcd"})
    return make_project(files)


def buildable() -> list[str]:
    return [p.name for p in known_presets() if p.name not in NO_OUTPUT]


@pytest.mark.parametrize("preset", buildable())
def test_every_preset_records_written_and_deployed(project: Path, preset: str) -> None:
    result = build(project, preset=preset)
    record = json.loads((result.output / "taskpack.json").read_text())
    schedules = record["schedules"]
    assert schedules == DEPLOYED.get(preset, AS_WRITTEN)
    assert schedules == sorted(schedules, key=lambda entry: entry["cron"])
    written = sorted(key for entry in schedules for key in entry["written"])
    assert written == sorted(s.cron for s in result.project.schedules)


def test_cloudflare_record_matches_the_deployed_triggers(project: Path) -> None:
    out = build(project, preset="cloudflare_module").output
    record = json.loads((out / "taskpack.json").read_text())
    crons = tomllib.loads((out / "wrangler.toml").read_text())["triggers"]["crons"]
    assert sorted(crons) == [entry["cron"] for entry in record["schedules"]]


def test_summary_prints_the_deployed_strings(project: Path) -> None:
    result = CliRunner().invoke(main, ["build", "--root", str(project),
                                       "--preset", "cloudflare_module"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    schedules = lines[lines.index("Schedules:") + 1:lines.index("Next:") - 1]
    assert schedules == [
        "  0 0 * * SUN       a, c, b  (written '0 0 * * 0', '0 0 * * SUN', '@weekly')",
        "  0 12 * * MON-FRI  d  (written '0 12 * * 1-5')",
        "  30 * * * *        d",
    ]


def test_summary_of_a_self_hosted_build_shows_the_crons_as_written(project: Path) -> None:
    result = CliRunner().invoke(main, ["build", "--root", str(project)])
    assert result.exit_code == 0, result.output
    assert "  0 12 * * 1-5  d\n" in result.stdout
    assert "written" not in result.stdout
