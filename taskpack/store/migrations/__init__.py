"""Versioned schema migrations: one SQL file per version and backend,
``<backend>/NNNN_<what>.sql``, applied in order at :meth:`Store.open`.

A store records the versions it has in its ``schema_version`` table. A
store whose newest version is above what this code knows refuses to open
(:func:`check_not_newer`): an older taskpack must never write a schema it
does not understand. Statements in a file are separated by a line that ends
with ``;`` (no semicolons inside statements).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .. import StoreError

FILE_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The file's statements, comments and blank lines dropped."""
        lines = [line for line in self.sql.splitlines()
                 if line.strip() and not line.lstrip().startswith("--")]
        text = "\n".join(lines)
        return [part.strip() for part in re.split(r";\s*$", text, flags=re.M) if part.strip()]


def migrations(backend: str) -> list[Migration]:
    """Every migration of ``backend`` (``sqlite``, ``postgres``), oldest first."""
    folder = Path(__file__).parent / backend
    found = []
    for path in sorted(folder.iterdir()):
        match = FILE_RE.match(path.name)
        if match:
            found.append(Migration(int(match.group(1)), path.name,
                                   path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"store migrations of {backend} are not numbered 1..n: {versions}")
    return found


def latest(backend: str) -> int:
    """The newest schema version this code knows for ``backend``."""
    return len(migrations(backend))


def check_not_newer(current: int, backend: str, where: str) -> None:
    """:class:`StoreError` when the store at ``where`` is newer than this code."""
    known = latest(backend)
    if current > known:
        raise StoreError(f"store {where} has schema version {current}, newer than this "
                         f"taskpack knows ({known}): upgrade taskpack, or use another store")
