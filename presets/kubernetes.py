"""Preset ``kubernetes``: a container image and manifests for a cluster.

Output (``.output/`` by default)::

    Dockerfile           the server bundle on a pinned slim Python, non-root
    server/              the ``server`` preset's bundle (index.py, runtime,
                         tasks, requirements.txt); ``[server]`` options apply
    k8s/deployment.yaml  Deployment(s) + Service: probes on /_health,
                         resources, TASKPACK_* from a Secret
    k8s/cronjob-*.yaml   one CronJob per deployed schedule
    README.md            how to build, push and apply

Schedules (``[kubernetes] scheduler``):

* ``"cronjob"`` (default): one CronJob per deployed schedule, its
  ``schedule`` translated to the controller's dialect
  (:func:`taskpack.builder.dialects.to_kubernetes`; what it cannot run is
  refused naming the key), ``timeZone`` from the project,
  ``concurrencyPolicy: Forbid``, ``startingDeadlineSeconds``, history
  limits, ``backoffLimit: 0``. Its container runs that schedule's fire once
  (:mod:`taskpack.platforms.kubernetes`). The Deployment's servers run with
  ``TASKPACK_SCHEDULER=off``.
* ``"in-process"``: no CronJobs; every replica schedules and claims each
  fire in the store (DESIGN §11), so the project must declare a PostgreSQL
  store (``[store] url = "postgresql://..."``, or ``[store] driver =
  "postgres"`` with ``TASKPACK_DATABASE_URL`` in the Secret); the build
  refuses otherwise. The same holds for ``worker_replicas`` (jobs travel
  from web pods to worker pods through the store).

``[kubernetes]``: ``name`` (default: the project folder's), ``image``
(default ``<name>:latest``), ``namespace`` (default ``default``),
``replicas`` (1), ``worker_replicas`` (0: the web pods also work the queue;
more adds a Deployment with ``TASKPACK_ROLE=worker`` and makes the web pods
``TASKPACK_ROLE=web``), ``scheduler``, ``base_image``, ``port`` (3000),
``starting_deadline`` (seconds, 300).

Manifests are written with PyYAML from plain data, keys in a fixed order:
the same project gives the same bytes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskpack import __version__
from taskpack.builder import bundle
from taskpack.builder.dialects import KUBERNETES, Trigger, as_written
from taskpack.builder.project import Project
from taskpack.builder.yaml_out import dump_yaml

from ._self_hosted import SelfHosted

name = "kubernetes"
aliases = ("k8s",)
summary = "a Dockerfile and manifests: Deployment, Service, one CronJob per schedule"
cron_platform = KUBERNETES

_server = SelfHosted("server/index.py.j2", "index.py", run="python {entry}")

APP_DIR = "/app"
HOME = "/home/taskpack"
UID = 10001
SECRET_SUFFIX = "-env"
CRONJOB_NAME_LIMIT = 52  # the controller appends 11 characters; Job names are <= 63
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SERVICE_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # DNS-1035: starts with a letter
NAME_LIMIT = 45  # "<name>-worker" and the Service stay within 63 characters
ENTRY_MODULE = "taskpack.platforms.kubernetes"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
HISTORY_LIMITS = {"successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3}
RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}


@dataclass(frozen=True)
class Options:
    """The ``[kubernetes]`` table with defaults applied (``name`` and
    ``image`` are filled in from the project by :meth:`of`)."""

    name: str = ""
    image: str = ""
    namespace: str = "default"
    replicas: int = 1
    worker_replicas: int = 0
    scheduler: str = "cronjob"
    base_image: str = "python:3.13.9-slim-bookworm"
    port: int = 3000
    starting_deadline: int = 300

    @classmethod
    def of(cls, project: Project) -> Options:
        table = dict(project.preset_options("kubernetes"))
        app = table.get("name") or _slug(project.root.name)
        table.setdefault("image", f"{app}:latest")
        return cls(**table | {"name": app})


def validate(project: Project) -> list[str]:
    """Refuse names Kubernetes rejects and schedules its controller cannot
    run the same way; warnings to print."""
    options = Options.of(project)
    config = project.config
    if not SERVICE_NAME.match(options.name) or len(options.name) > NAME_LIMIT:
        raise config.error(f"{options.name!r} is not a DNS label for a Service (lower-case "
                           f"letters, digits and '-', at most {NAME_LIMIT}, starting with a "
                           "letter, ending alphanumeric)", "kubernetes", "name")
    if not DNS_LABEL.match(options.namespace) or len(options.namespace) > 63:
        raise config.error(f"{options.namespace!r} is not a DNS label (lower-case letters, "
                           "digits and '-', at most 63, starting and ending alphanumeric)",
                           "kubernetes", "namespace")
    if not re.search(r":[\w.-]*\d", options.base_image) or options.base_image.endswith(":latest"):
        raise config.error(f"{options.base_image!r} is not pinned: name a versioned tag such "
                           "as 'python:3.13.9-slim-bookworm'", "kubernetes", "base_image")
    schedules(project)
    shared = _needs_shared_store(options, project)
    if shared is not None and not bundle.uses_postgres(project):
        raise config.error(
            f"{shared} needs one store shared by every pod: set [store] url to a "
            "postgresql:// URL, or [store] driver = \"postgres\" and put "
            f"TASKPACK_DATABASE_URL in the Secret {options.name}{SECRET_SUFFIX}",
            "kubernetes", "scheduler" if shared.startswith("scheduler") else "worker_replicas")
    return []


def _needs_shared_store(options: Options, project: Project) -> str | None:
    """What in the options makes pods share work through the store (each
    fire claimed once, jobs enqueued by one pod and run by another), or None."""
    if options.scheduler == "in-process" and project.schedules:
        return 'scheduler = "in-process" (every replica schedules; each fire is claimed once)'
    if options.worker_replicas > 0:
        return "worker_replicas (web pods enqueue, worker pods run the jobs)"
    return None


def schedules(project: Project) -> tuple[Trigger, ...]:
    """The CronJobs' schedules (none when the servers schedule in-process)."""
    if Options.of(project).scheduler == "in-process":
        return ()
    return KUBERNETES.triggers(project.schedules, project.config)


def deployed_schedules(project: Project) -> tuple[Trigger, ...]:
    """What ``taskpack.json`` records: the CronJobs' schedules, or the
    schedules as written when the servers run them."""
    if Options.of(project).scheduler == "in-process":
        return as_written(project.schedules)
    return schedules(project)


def emit(project: Project, out: Path) -> None:
    """Write the Dockerfile, the server bundle and the manifests into ``out``."""
    options = Options.of(project)
    _server.emit(project, out)
    bundle.write_text(out / "Dockerfile", dockerfile(options))
    bundle.write_text(out / "k8s" / "deployment.yaml",
                      dump_yaml(*deployments(options), service(options)))
    for trigger in schedules(project):
        job = cronjob(project, options, trigger)
        bundle.write_text(out / "k8s" / f"{job['metadata']['name']}.yaml", dump_yaml(job))
    bundle.render("kubernetes/README.md.j2", out / "README.md", name=options.name,
                  version=__version__, image=options.image, namespace=options.namespace,
                  scheduler=options.scheduler, timezone=project.config.timezone,
                  secret=options.name + SECRET_SUFFIX,
                  schedules=[{"cron": t.cron, "written": ", ".join(f"`{k}`" for k in t.keys),
                              "tasks": ", ".join(t.tasks)} for t in schedules(project)])


def next_steps(project: Project, out: Path) -> list[str]:
    """Build and push the image, then apply the manifests."""
    options = Options.of(project)
    return [f"cd {out}",
            f"docker build -t {options.image} . && docker push {options.image}",
            f"kubectl -n {options.namespace} create secret generic "
            f"{options.name}{SECRET_SUFFIX} --from-literal=TASKPACK_TASKS_TOKEN=...   # once",
            "kubectl apply -f k8s/"]


# -- the Dockerfile ------------------------------------------------------------------


def dockerfile(options: Options) -> str:
    """The image of the server bundle: requirements installed before the
    code is copied (a code change keeps the dependency layer), a non-root
    user, the working directory writable by it (the run history), a
    ``HEALTHCHECK`` on ``/_health``. No secret is baked in: they come from
    the environment at run time."""
    probe = ("import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + "
             "os.environ.get('PORT', '3000') + '/_health', timeout=4)")
    return "\n".join([
        f"# {bundle.GENERATED}",
        f"# taskpack {__version__}: the server bundle of server/, served by index.py.",
        f"FROM {options.base_image}",
        "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 "
        f"PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONPATH={APP_DIR} PORT={options.port}",
        f"RUN useradd --create-home --home-dir {HOME} --uid {UID} --user-group taskpack",
        f"WORKDIR {APP_DIR}",
        "COPY server/requirements.txt ./requirements.txt",
        "RUN pip install -r requirements.txt",
        "COPY server/ ./",
        f"USER {UID}",
        f"WORKDIR {HOME}",
        f"EXPOSE {options.port}",
        "HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 "
        f"CMD [\"python\", \"-c\", \"{probe}\"]",
        f"CMD [\"python\", \"{APP_DIR}/index.py\"]",
        "",
    ])


# -- manifests -------------------------------------------------------------------------


def deployments(options: Options) -> list[dict[str, Any]]:
    """The web Deployment, and the worker Deployment when ``worker_replicas``."""
    workers = options.worker_replicas > 0
    out = [_deployment(options, "web", "web" if workers else "all", options.replicas)]
    if workers:
        out.append(_deployment(options, "worker", "worker", options.worker_replicas))
    return out


def _deployment(options: Options, component: str, role: str, replicas: int) -> dict[str, Any]:
    labels = _labels(options, component)
    env = [{"name": "TASKPACK_ROLE", "value": role}]
    if options.scheduler == "cronjob":
        env.append({"name": "TASKPACK_SCHEDULER", "value": "off"})
    probe = {"httpGet": {"path": "/_health", "port": "http"}, "periodSeconds": 10,
             "timeoutSeconds": 5}
    container = {
        "name": "taskpack",
        "image": options.image,
        "ports": [{"name": "http", "containerPort": options.port}],
        "env": env,
        "envFrom": [_secret(options)],
        "readinessProbe": {**probe, "initialDelaySeconds": 2},
        "livenessProbe": {**probe, "initialDelaySeconds": 10, "failureThreshold": 3},
        "resources": RESOURCES,
        "securityContext": _container_security(),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{options.name}-{component}", "namespace": options.namespace,
                     "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"securityContext": _pod_security(),
                                  "terminationGracePeriodSeconds": 45,
                                  "containers": [container]}},
        },
    }


def service(options: Options) -> dict[str, Any]:
    """A ClusterIP Service in front of the web pods."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": options.name, "namespace": options.namespace,
                     "labels": _labels(options, "web")},
        "spec": {"type": "ClusterIP", "selector": _labels(options, "web"),
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }


def cronjob(project: Project, options: Options, trigger: Trigger) -> dict[str, Any]:
    """The CronJob of one deployed schedule."""
    digest = hashlib.sha256(trigger.cron.encode("utf-8")).hexdigest()[:8]
    job_name = f"{options.name[:CRONJOB_NAME_LIMIT - 9].rstrip('-')}-{digest}"
    labels = _labels(options, "cron")
    container = {
        "name": "fire",
        "image": options.image,
        "command": ["python", "-m", ENTRY_MODULE, trigger.cron],
        "env": [{"name": "TASKPACK_JOB_NAME", "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.labels['{JOB_NAME_LABEL}']"}}}],
        "envFrom": [_secret(options)],
        "resources": RESOURCES,
        "securityContext": _container_security(),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": job_name, "namespace": options.namespace, "labels": labels,
                     "annotations": {"taskpack.dev/schedule": " | ".join(trigger.keys),
                                     "taskpack.dev/tasks": ", ".join(trigger.tasks)}},
        "spec": {
            "schedule": trigger.cron,
            "timeZone": project.config.timezone,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": options.starting_deadline,
            **HISTORY_LIMITS,
            "jobTemplate": {"metadata": {"labels": labels}, "spec": {
                "backoffLimit": 0,
                "template": {"metadata": {"labels": labels}, "spec": {
                    "restartPolicy": "Never",
                    "securityContext": _pod_security(),
                    "containers": [container],
                }},
            }},
        },
    }


def _labels(options: Options, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": options.name, "app.kubernetes.io/component": component,
            "app.kubernetes.io/managed-by": "taskpack"}


def _secret(options: Options) -> dict[str, Any]:
    return {"secretRef": {"name": options.name + SECRET_SUFFIX, "optional": True}}


def _pod_security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID}


def _container_security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _slug(text: str) -> str:
    """A default name from the project folder's: a DNS-1035 label."""
    slug = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    if not slug[:1].isalpha():
        slug = f"taskpack-{slug}"
    return slug[:NAME_LIMIT].strip("-")
