"""What ``taskpack dev`` watches, with the operating system's file events.

:class:`ProjectWatcher` reports changes to the config candidates, to
every ``*.py`` file under the project root and to its folders, skipping
folders that start with ``.``, ``__pycache__``, ``node_modules``,
``site-packages``, virtualenvs (a folder with ``pyvenv.cfg``) and the
build output. Folders count because a folder's own event may be all there
is: the OS watches a new folder only once its creation has been read, so
files written into it at once (``git checkout``, an unpacked archive) have
no events, and a folder moved in or out is one event. It uses
``watchfiles`` (inotify, FSEvents, ReadDirectoryChangesW), so an idle dev
server costs nothing however many files the project has; where events do
not arrive (some network or container file systems), ``WATCHFILES_FORCE_POLLING=1``
makes it poll. Changes are grouped: a batch is reported once no new
change arrived for :data:`SETTLE_MS` milliseconds (an editor's save is
one batch).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from .config import CANDIDATES

if TYPE_CHECKING:
    from watchfiles import Change

SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "site-packages"})
SETTLE_MS = 100
"""How long a batch of changes must have been quiet before it is reported."""


def _is_folder(change: Change, path: str) -> bool:
    """Whether the event is on a folder. A path removed without a suffix
    counts as one: what it was can no longer be seen."""
    from watchfiles import Change  # taskpack[server], as in ProjectWatcher.start()

    if change == Change.deleted:
        return not Path(path).suffix
    return Path(path).is_dir()


class ProjectWatcher:
    """File events under ``root`` that matter to the project (see the
    module docstring). :meth:`start` begins watching; :meth:`batches`
    yields each batch as sorted root-relative POSIX paths; :meth:`stop`
    ends it."""

    def __init__(self, root: Path, output_dir: str) -> None:
        self.root = root.resolve()
        self.output = (self.root / output_dir).resolve()
        self._stop = asyncio.Event()
        self._events: AsyncIterator[set[tuple[Change, str]]] | None = None
        self._next: asyncio.Future[set[tuple[Change, str]]] | None = None

    def wanted(self, change: Change, path: str) -> bool:
        """Whether an event on ``path`` is one of the project's files or
        folders."""
        try:
            rel = Path(path).relative_to(self.root)
        except ValueError:
            return False
        if rel.as_posix() in CANDIDATES:
            return True
        # Skipped folders first: their events (.git, node_modules) cost no stat.
        if any(self._skipped(folder) for folder in rel.parents if folder.parts):
            return False
        if rel.suffix == ".py":
            return True
        return _is_folder(change, path) and not (rel.parts and self._skipped(rel))

    @functools.lru_cache(maxsize=4096)  # noqa: B019  (one watcher per dev server)
    def _skipped(self, folder: Path) -> bool:
        name = folder.name
        if name.startswith(".") or name in SKIPPED_DIRS:
            return True
        here = self.root / folder
        return here == self.output or (here / "pyvenv.cfg").exists()

    async def start(self) -> None:
        """Start watching: changes from now on are reported (the OS watches
        are in place when this returns)."""
        from watchfiles import awatch  # taskpack[server]: only the dev server needs it

        self._events = awatch(self.root, watch_filter=self.wanted, stop_event=self._stop,
                              step=SETTLE_MS, recursive=True)
        self._next = asyncio.ensure_future(anext(self._events))
        await asyncio.sleep(0)  # runs the generator up to its first wait: watching

    async def batches(self) -> AsyncIterator[list[str]]:
        """Each batch of changed paths; ends after :meth:`stop`."""
        if self._events is None or self._next is None:
            raise RuntimeError("ProjectWatcher.start() was not called")
        while True:
            try:
                changes = await self._next
            except StopAsyncIteration:
                return
            yield sorted({Path(path).relative_to(self.root).as_posix() for _, path in changes})
            self._next = asyncio.ensure_future(anext(self._events))

    def stop(self) -> None:
        """Stop watching: :meth:`batches` ends (within :data:`SETTLE_MS`)."""
        self._stop.set()
