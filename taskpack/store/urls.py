"""Store URLs: which store a process uses, and how URLs appear in messages.

:func:`resolve_url` picks the URL: ``$TASKPACK_DATABASE_URL``, else the
config's ``[store] url`` (baked into the manifest), else the SQLite default
(:data:`taskpack.store.DEFAULT_URL`, under ``.taskpack/`` of the folder the
caller names: the project root in development, the working directory of a
built server, never the bundle). The history file of earlier versions
(``$TASKPACK_HISTORY_PATH``, ``[server] history_path``) still counts, as a
SQLite store, when no URL is given (its runs are kept, see
:mod:`taskpack.store.sqlite`).

Messages name a store by :func:`describe` (host, port and database, or the
file) and never show a password (:func:`redact`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import DEFAULT_URL, StoreError

DATABASE_URL_ENV = "TASKPACK_DATABASE_URL"
_USERINFO_RE = re.compile(r"([^:/@\s]+):[^@/\s]*@")
LEGACY_HISTORY_ENV = "TASKPACK_HISTORY_PATH"


def resolve_url(env: Mapping[str, str], settings: Mapping[str, Any] | None) -> tuple[str, str]:
    """(url, where it came from) for a process. ``settings`` is the
    manifest's ``store`` table (``url``, and the legacy ``history_path``)."""
    settings = settings or {}
    url = env.get(DATABASE_URL_ENV, "").strip()
    if url:
        return url, DATABASE_URL_ENV
    legacy = env.get(LEGACY_HISTORY_ENV, "").strip()
    if legacy:
        return sqlite_url(legacy), LEGACY_HISTORY_ENV
    url = str(settings.get("url") or "").strip()
    if url:
        return url, "[store] url"
    legacy = str(settings.get("history_path") or "").strip()
    if legacy:
        return sqlite_url(legacy), "[server] history_path"
    return DEFAULT_URL, "the default store"


def sqlite_url(path: str | Path) -> str:
    """The ``sqlite://`` URL of a file path (relative stays relative)."""
    text = str(Path(path).expanduser())
    return "sqlite:///" + text  # an absolute path keeps its slash: sqlite:////abs


def sqlite_path(url: str, root: Path) -> tuple[Path, dict[str, str]]:
    """The file of a ``sqlite:///path`` URL (relative to ``root`` unless
    absolute; ``sqlite:////abs/path``) and its query parameters."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise StoreError(f"store URL {redact(url)}: a SQLite URL has no host; use "
                         "sqlite:///relative/path or sqlite:////absolute/path")
    text = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not text:
        raise StoreError(f"store URL {redact(url)}: no file path (use sqlite:///path/to/file)")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = root / path
    return path, dict(parse_qsl(parts.query))


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (also a ``password=``
    query parameter)."""
    try:
        if "://" not in url:  # not a URL: mask what looks like user:password@
            return _USERINFO_RE.sub(r"\1:***@", url)
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user, colon, _ = userinfo.partition(":")
            netloc = f"{user}{':***' if colon else ''}@{hostport}"
        query = "&".join(
            f"{key}=***" if key.lower() == "password" else (f"{key}={value}" if value else key)
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        )
        text = f"{parts.scheme}://{netloc}{parts.path}"
        return text + (f"?{query}" if query else "") + (f"#{parts.fragment}"
                                                         if parts.fragment else "")
    except ValueError:
        return "<unparsable URL>"


def describe(url: str, root: Path | None = None) -> str:
    """A store's name for messages: the SQLite file, or
    ``host:port/database`` of a server (a Unix socket's folder as host)."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "sqlite":
            return str(sqlite_path(url, root or Path.cwd())[0])
        if parts.scheme == "memory":
            return "memory"
        query = dict(parse_qsl(parts.query))
        host = query.get("host") or parts.hostname or "localhost"
        port = query.get("port") or (str(parts.port) if parts.port else "5432")
        database = query.get("dbname") or parts.path.lstrip("/") or parts.username or ""
        return f"{host}:{port}/{database}" if database else f"{host}:{port}"
    except (ValueError, StoreError):
        return redact(url)
