"""``builder.watch.ProjectWatcher`` against the real file system (inotify
here): what a user does to a project folder reaches ``taskpack dev`` as a
batch, and only what matters to the project does."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from taskpack.builder.watch import ProjectWatcher

TASK = "from taskpack import define_task\n\n@define_task\ndef run(event):\n    return 1\n"


async def next_batch(batches: AsyncIterator[list[str]], timeout: float = 3.0) -> list[str]:
    return await asyncio.wait_for(anext(batches), timeout)


def watching(root: Path, body: Callable[[AsyncIterator[list[str]]], Awaitable[None]]) -> None:
    async def main() -> None:
        watcher = ProjectWatcher(root, ".output")
        await watcher.start()
        batches = watcher.batches()
        try:
            await body(batches)
        finally:
            watcher.stop()
            await batches.aclose()

    asyncio.run(main())


def test_a_task_written_into_a_new_folder_is_seen_every_time(tmp_path: Path) -> None:
    # The OS watches a new folder only once its creation has been read, so a
    # file written into it at once has no event of its own: the folder's
    # creation is what must be reported (half of these were lost before).
    (tmp_path / "tasks").mkdir()

    async def body(batches: AsyncIterator[list[str]]) -> None:
        for n in range(12):
            folder = tmp_path / "tasks" / f"fresh{n}"
            folder.mkdir()
            (folder / "task.py").write_text(TASK)
            batch = await next_batch(batches)
            assert f"tasks/fresh{n}" in batch or f"tasks/fresh{n}/task.py" in batch

    watching(tmp_path, body)


def test_folders_moved_in_and_out_are_seen(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    (outside / "ops").mkdir(parents=True)
    (outside / "ops" / "backup.py").write_text(TASK)

    async def body(batches: AsyncIterator[list[str]]) -> None:
        shutil.move(outside / "ops", tmp_path / "tasks" / "ops")
        assert "tasks/ops" in await next_batch(batches)
        shutil.move(tmp_path / "tasks" / "ops", outside / "ops")
        assert await next_batch(batches) == ["tasks/ops"]

    watching(tmp_path, body)


def test_only_what_the_project_is_made_of_is_reported(tmp_path: Path) -> None:
    for folder in ("tasks", ".git", "node_modules", ".output", "venv"):
        (tmp_path / folder).mkdir()
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")

    async def body(batches: AsyncIterator[list[str]]) -> None:
        (tmp_path / "README.md").write_text("# notes\n")
        (tmp_path / "tasks" / "data.json").write_text("{}\n")
        (tmp_path / ".git" / "hook.py").write_text(TASK)
        (tmp_path / ".git" / "objects").mkdir()
        (tmp_path / "node_modules" / "pkg").mkdir()
        (tmp_path / ".output" / "server.py").write_text(TASK)
        (tmp_path / "venv" / "lib").mkdir()
        (tmp_path / "venv" / "tool.py").write_text(TASK)
        (tmp_path / "README.md").unlink()
        (tmp_path / "tasks" / "real.py").write_text(TASK)
        assert await next_batch(batches) == ["tasks/real.py"]
        (tmp_path / "taskpack.toml").write_text("")
        assert await next_batch(batches) == ["taskpack.toml"]

    watching(tmp_path, body)
