"""Generated projects of N tasks, shared by the build and cold-start benchmarks."""

from __future__ import annotations

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
