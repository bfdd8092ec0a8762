"""The rules every walk over a project's files follows (task discovery, the
bundle's sources, ``include`` globs), written once.

* Nothing outside the project root is read or bundled: a symlink (file or
  folder) whose target resolves outside the root is an error naming it.
* A symlinked folder whose target is inside the root is walked like a
  folder (its files are read and bundled under the link's path), unless
  it points back at a folder the walk is inside: that is a loop, an error
  naming it.
* A file or folder name that is not valid UTF-8 is an error naming it
  (manifests, build records and bundles name files in UTF-8).

Each error is a :class:`~builder.errors.ConfigError` (one line, exit 2).
"""

from __future__ import annotations

import os
import stat

from .errors import ConfigError


def shown(rel: str) -> str:
    """A root-relative path as it can be printed: bytes that are not UTF-8
    (kept by the file system API as surrogates) as ``\\xNN``."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_name(rel: str) -> None:
    """:class:`ConfigError` when the path ``rel`` is not valid UTF-8."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(shown(rel), None, "the file name is not valid UTF-8; rename it "
                          "(bundles and manifests name files in UTF-8)") from None


def real_root(root: str | os.PathLike[str]) -> str:
    """The root as links are judged against (:func:`os.path.realpath`)."""
    return os.path.realpath(root)


def check_link(path: str, rel: str, root: str) -> str:
    """The real path of ``path`` (``rel`` from the root ``root``, a
    :func:`real_root`); :class:`ConfigError` when it is a symlink whose
    target lies outside the root."""
    real = os.path.realpath(path)
    if real != root and not real.startswith(root + os.sep):
        raise ConfigError(shown(rel), None, f"is a symlink to {shown(real)}, outside the "
                          "project root; taskpack reads nothing outside it (copy the file "
                          "in, or remove the link)")
    return real


def is_dir(path: str, rel: str) -> bool:
    """Whether ``path`` is a folder (following symlinks); :class:`ConfigError`
    for a symlink that resolves to itself (``ELOOP``)."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except FileNotFoundError:
        return False  # a dangling link: nothing to read
    except OSError:
        raise ConfigError(shown(rel), None, "is a symlink loop (it points to itself); "
                          "remove the link") from None


def check_loop(path: str, rel: str, root: str, walking: tuple[str, ...]) -> str:
    """The real path of the symlinked folder ``path``, checked by
    :func:`check_link`; :class:`ConfigError` when it points at a folder
    the walk is inside (``walking``: the real paths of the folders from the
    walk's start down to the link's parent)."""
    real = check_link(path, rel, root)
    if any(inside == real or inside.startswith(real + os.sep) for inside in walking):
        raise ConfigError(shown(rel), None, "is a symlink loop (it points to a folder that "
                          "contains it); remove the link")
    return real
