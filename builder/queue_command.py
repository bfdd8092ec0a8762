"""``taskpack enqueue``, ``taskpack jobs list|show|retry|cancel`` and
``taskpack worker``: the job queue of a project, on its store
(``$TASKPACK_DATABASE_URL``, else ``[store] url``, else the SQLite file
under the project's ``.taskpack/``).

They open the store directly (SQLite in WAL mode and Postgres both take
several processes), so they work with or without a running ``taskpack
dev``, whose worker then picks enqueued jobs up. Bad input (an unknown task
or job, a refused payload, a store that cannot be opened) is one
``error:`` line, exit 2.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from taskpack import Registry, TaskError, logs, set_registry
from taskpack.queue import Worker, bind_queue, new_job
from taskpack.queue.notify import job_changed
from taskpack.store import JOB_STATUSES, Job, Store

from .cli_options import root_option
from .db import open_store, project_store
from .errors import TaskpackError, UsageError
from .manifest import build_manifest
from .project import Project
from .task_command import open_project, parse_payload

T = TypeVar("T")

DEFAULT_GRACE = 30.0


def project_registry(project: Project, store: Store) -> Registry:
    """The project's registry over ``store``, current for ``run_task``."""
    registry = Registry.from_manifest(build_manifest(project), project.root, store=store)
    set_registry(registry)
    return registry


def on_store(root: Path, action: Callable[[Project, Store], Awaitable[T]]) -> T:
    """Run ``action`` with the project's open store (closed afterwards)."""
    project = open_project(root)
    store = project_store(project)

    async def main() -> T:
        await open_store(store)
        try:
            return await action(project, store)
        finally:
            await store.close()

    return asyncio.run(main())


# -- taskpack enqueue ----------------------------------------------------------------


@click.command("enqueue")
@click.argument("name")
@click.option("--payload", help="The payload, a JSON object.")
@click.option("--delay", type=click.FloatRange(min=0), help="Run it this many seconds from now.")
@click.option("--key", help="Job key: a pending job with this key is replaced (see --key-mode).")
@click.option("--key-mode", type=click.Choice(["replace", "preserve"]), default="replace",
              show_default=True, help="replace: update the pending job; preserve: keep it.")
@click.option("--queue", "queue_name", help="Named queue: its jobs run one at a time.")
@click.option("--priority", type=int, default=0, show_default=True,
              help="Lower runs first.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored job as JSON.")
@root_option()
def enqueue_command(name: str, payload: str | None, delay: float | None, key: str | None,
                    key_mode: str, queue_name: str | None, priority: int, as_json: bool,
                    root: Path) -> None:
    """Queue a run of task NAME for a worker; prints the job's id."""
    data = parse_payload(payload)

    async def enqueue(project: Project, store: Store) -> Job:
        registry = project_registry(project, store)
        try:
            job = new_job(name, data, delay=delay, key=key, key_mode=key_mode,  # type: ignore[arg-type]
                          queue=queue_name, priority=priority, registry=registry)
        except TaskError as exc:
            raise TaskpackError(exc.message) from None
        except (TypeError, ValueError) as exc:
            raise UsageError("--payload", str(exc)) from None
        stored = await store.enqueue(job)
        job_changed(stored)
        return stored

    job = on_store(root, enqueue)
    click.echo(json.dumps(job.to_dict(), indent=2, ensure_ascii=False) if as_json else job.id)


# -- taskpack jobs ----------------------------------------------------------------------


@click.group("jobs")
def jobs() -> None:
    """List and manage queued jobs."""


@jobs.command("list")
@click.option("--status", type=click.Choice(JOB_STATUSES), help="Only jobs in this state.")
@click.option("--task", help="Only jobs of this task.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as a JSON array.")
@root_option()
def list_jobs(status: str | None, task: str | None, limit: int, as_json: bool,
              root: Path) -> None:
    """Jobs, newest first."""
    async def read(project: Project, store: Store) -> list[Job]:
        found, _ = await store.list_jobs(status=status, task=task, limit=limit)
        return found

    found = on_store(root, read)
    if as_json:
        click.echo(json.dumps([job.to_dict() for job in found], indent=2, ensure_ascii=False))
    elif not found:
        click.echo("No jobs.")
    else:
        click.echo(format_jobs(found))


@jobs.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@root_option()
def show_job(job_id: str, as_json: bool, root: Path) -> None:
    """One job: state, attempts, last error and traceback, result."""
    job = on_store(root, lambda project, store: _known(store, job_id))
    if as_json:
        click.echo(json.dumps(job.to_dict(), indent=2, ensure_ascii=False))
        return
    for field, value in job.to_dict().items():
        if field == "traceback" or value is None:
            continue
        if field in ("run_at", "created_at", "updated_at", "locked_until"):
            value = _time(value)
        elif not isinstance(value, str):
            value = json.dumps(value, ensure_ascii=False)
        click.echo(f"{field + ':':<14}{value}")
    if job.traceback:
        click.echo("traceback:\n" + job.traceback.rstrip("\n"))


def _action(action: str, allowed: tuple[str, ...]) -> click.Command:
    @click.argument("job_id")
    @click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
    @root_option()
    def command(job_id: str, as_json: bool, root: Path) -> None:
        async def act(project: Project, store: Store) -> Job:
            job = await _known(store, job_id)
            if job.status not in allowed:
                raise UsageError("JOB_ID", f"job {job_id} is {job.status}; only "
                                 f"{' or '.join(allowed)} jobs can be {past[action]}")
            changed = await (store.retry(job_id) if action == "retry" else store.cancel(job_id))
            if changed is None:
                raise UsageError("JOB_ID", f"no job {job_id!r}")
            job_changed(changed)
            return changed

        job = on_store(root, act)
        click.echo(json.dumps(job.to_dict(), indent=2, ensure_ascii=False) if as_json
                   else f"{job.id} {job.status}")

    past = {"retry": "retried", "cancel": "cancelled"}
    command.__doc__ = (f"{action.capitalize()} a job ({' or '.join(allowed)}).")
    return click.command(action)(command)


jobs.add_command(_action("retry", ("failed", "cancelled")))
jobs.add_command(_action("cancel", ("pending", "running")))


async def _known(store: Store, job_id: str) -> Job:
    job = await store.get_job(job_id)
    if job is None:
        raise UsageError("JOB_ID", f"no job {job_id!r}")
    return job


def _time(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_jobs(found: list[Job]) -> str:
    """Jobs as aligned columns: id, task, status, attempts, run at, error."""
    header = ("ID", "TASK", "STATUS", "ATTEMPTS", "RUN AT (UTC)", "ERROR")
    rows = [header] + [
        (job.id, job.task, job.status, f"{job.attempts}/{job.max_attempts}",
         _time(job.run_at).removesuffix(" UTC"), " ".join((job.last_error or "").split()))
        for job in found
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)),
                   row[-1]]).rstrip()
        for row in rows
    )


# -- taskpack worker -------------------------------------------------------------------


@click.command("worker")
@click.option("--concurrency", type=click.IntRange(min=1),
              help="Jobs run at once (default: [queue] concurrency, else 10).")
@root_option()
def worker_command(concurrency: int | None, root: Path) -> None:
    """Run the project's jobs until Ctrl-C or SIGTERM (running jobs get
    [server] shutdown_grace seconds to finish)."""
    project = open_project(root)
    settings = project.preset_options("queue")
    grace = float(project.preset_options("server").get("shutdown_grace", DEFAULT_GRACE))
    options: dict[str, Any] = {"concurrency": concurrency or settings.get("concurrency", 10)}
    if "lease" in settings:
        options["lease"] = float(settings["lease"])
    try:
        logs.setup()
    except ValueError as exc:  # an unknown TASKPACK_LOG_FORMAT
        raise TaskpackError(str(exc)) from None
    store = project_store(project)

    async def main() -> None:
        await open_store(store)
        registry = project_registry(project, store)
        bind_queue(store)
        worker = Worker(registry, store, **options)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        worker.start()
        click.echo(f"taskpack worker: running jobs of {project.root} "
                   f"(concurrency {worker.concurrency})", err=True)
        await stop.wait()
        await worker.stop(grace)
        await registry.drain(grace)
        bind_queue(None)
        await registry.close(min(grace, 5.0) or 1.0)

    asyncio.run(main())
    click.echo("taskpack worker: stopped", err=True)
