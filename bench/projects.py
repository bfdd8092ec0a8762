"""Generated projects of N tasks and the environment of measured processes,
shared by the build and cold-start benchmarks."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

TASK = '''"""Generated task {index}."""

from taskpack import define_task


@define_task(description="Task number {index}")
async def run(event):
    return {{"task": {index}, "payload": event.payload}}
'''


def make_project(root: Path, tasks: int, *, tasks_api: bool = False) -> Path:
    """A project with ``tasks`` tasks in folders of 100 (``group7:task0712``)
    and one cron schedule per 50 tasks."""
    for index in range(tasks):
        path = root / "tasks" / f"group{index // 100}" / f"task{index:05d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(TASK.format(index=index))
    lines = [f"[server]\ntasks_api = {str(tasks_api).lower()}\n", "[scheduled_tasks]"]
    for index in range(0, tasks, 50):
        slot = index // 50
        lines.append(f'"{slot % 60} {slot // 60} * * *" = "group{index // 100}:task{index:05d}"')
    (root / "taskpack.toml").write_text("\n".join(lines) + "\n")
    return root

FIRST_TASK = "group0:task00000"


def bytecode_env(folder: Path) -> dict[str, str]:
    """This process's environment for a measured child, with bytecode caches
    written and used (under ``folder``, ``PYTHONPYCACHEPREFIX``) as for an
    installed taskpack or a deployed bundle, even when the environment sets
    ``PYTHONDONTWRITEBYTECODE``."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    return env


DEPLOYED = Path(__file__).resolve().parent.parent / ".cache" / "bench-deployed"


def deployed_python(requirements: Path, base: str = sys.executable) -> str:
    """A Python as a deployment runs a bundle with: a virtual environment
    of the interpreter ``base`` holding only the bundle's
    ``requirements.txt`` (made once per interpreter and distinct file under
    ``.cache/bench-deployed``, from pip's cache). This development venv
    would add start-up work no deployment has: its editable install of
    taskpack and setuptools' ``.pth`` files made ``site`` take 13 ms
    instead of 2.5 ms here."""
    text = requirements.read_text()
    key = hashlib.sha256(f"{Path(base).resolve()}\n{text}".encode()).hexdigest()[:12]
    venv = DEPLOYED / key
    python = venv / "bin" / "python"
    ready = venv / "requirements.txt"
    if not ready.is_file():
        subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)],
                       check=True)
        ready.write_text(text)
    return str(python)
