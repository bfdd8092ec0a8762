"""Reading and validating a project's config file.

Exactly one of ``taskpack.toml``, ``taskpack.yaml``/``taskpack.yml`` or a
``[tool.taskpack]`` table in ``pyproject.toml`` configures a project; none
means defaults, two is an error naming both. Every key is checked here, so
a typo never becomes a silently ignored setting. Cross-checks that need the
scanned tasks (unknown task names in ``scheduled_tasks``) happen in
:mod:`builder.project`.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from taskpack.options import parse_duration

from .errors import ConfigError, key_path

CANDIDATES = ("taskpack.toml", "taskpack.yaml", "taskpack.yml", "pyproject.toml")

Check = Callable[[Any], str | None]
"""A value check: ``None`` when the value is valid, else what is wrong."""


def _is_str(value: Any) -> str | None:
    return None if isinstance(value, str) else f"expected a string, got {_kind(value)}"


def _is_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"expected true or false, got {_kind(value)}"


def _is_number(minimum: float) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {_kind(value)}"
        return None if value >= minimum else f"must be at least {minimum:g}, got {value}"

    return check


def _is_int(minimum: int) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected an integer, got {_kind(value)}"
        return None if value >= minimum else f"must be at least {minimum}, got {value}"

    return check


def _int_range(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected an integer, got {_kind(value)}"
        return None if low <= value <= high else f"must be {low}-{high}, got {value}"

    return check


def _is_str_list(value: Any) -> str | None:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return None
    return f"expected a list of strings, got {_kind(value)}"


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        if value in choices:
            return None
        return f"expected one of {', '.join(map(repr, choices))}, got {value!r}"

    return check


def _is_store_url(value: Any) -> str | None:
    """A store URL a backend takes (``sqlite:///…``, ``postgresql://…``,
    ``memory://``); the message never shows a password."""
    problem = _is_str(value)
    if problem is not None:
        return problem
    from taskpack.store import BACKENDS
    from taskpack.store.urls import redact

    scheme = value.partition("://")[0] if "://" in value else ""
    if scheme not in BACKENDS:
        known = ", ".join(sorted({name + "://" for name in BACKENDS}))
        return f"expected a store URL ({known}), got {redact(value)!r}"
    return None


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a table", type(None): "nothing"}
    return names.get(type(value), type(value).__name__)


# Keys of the per-preset-family tables. A preset family's options live in
# one table (``[server]``, ``[cloudflare]``, ``[vercel]``); presets read them
# through ``Project.preset_options``.
PRESET_TABLES: dict[str, dict[str, Check]] = {
    "server": {
        "tasks_api": _is_bool,
        "shutdown_grace": _is_number(0),
        "history_path": _is_str,
        "history_limit": _is_int(1),
        "dashboard": _is_bool,
    },
    "cloudflare": {
        "name": _is_str,
        "compatibility_date": _is_str,
        "tasks_api": _is_bool,
        "queue": _is_str,
        "dead_letter_queue": _is_str,
        "max_retries": _is_int(0),
    },
    "store": {
        "url": _is_store_url,
        "driver": _one_of("sqlite", "postgres"),
    },
    "vercel": {
        "tasks_api": _is_bool,
        "max_duration": _is_int(1),
        "python": _one_of("3.12", "3.13", "3.14"),
        "allow_unauthenticated_cron": _is_bool,
    },
    "aws_lambda": {
        "python": _one_of("3.12", "3.13", "3.14"),
        "tasks_api": _is_bool,
        "memory": _int_range(128, 10240),
        "timeout": _int_range(1, 900),
        "retry_attempts": _int_range(0, 185),
        "max_event_age": _int_range(60, 86400),
    },
    # The job queue's worker (taskpack.queue): jobs run at once per process,
    # and the seconds a claimed job stays locked without a heartbeat.
    "queue": {
        "concurrency": _is_int(1),
        "lease": _is_number(1),
    },
    "kubernetes": {
        "name": _is_str,
        "image": _is_str,
        "namespace": _is_str,
        "replicas": _int_range(1, 1000),
        "worker_replicas": _int_range(0, 1000),
        "scheduler": _one_of("cronjob", "in-process"),
        "base_image": _is_str,
        "port": _int_range(1024, 65535),
        "starting_deadline": _int_range(10, 86400),
    },
}

def _is_positive(value: Any) -> str | None:
    problem = _is_number(0)(value)
    if problem is None and value <= 0:
        return f"must be more than 0, got {value}"
    return problem


def _is_duration(value: Any) -> str | None:
    try:
        parse_duration(value)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


# Execution options of a ``[tasks."name"]`` table: they override the task's
# ``define_task`` options (see taskpack.options.apply_overrides) and end up
# in ``TaskConfig.options``.
TASK_OPTION_KEYS: dict[str, Check] = {
    "backfill": _is_duration,
    "retries": _is_int(0),
    "timeout": _is_positive,
    "concurrency": _one_of("dedupe", "dedupe_payload", "serial", "parallel"),
    "max_concurrency": _is_int(1),
}

# Keys of a ``[tasks."name"]`` table.
TASK_KEYS: dict[str, Check] = {
    "handler": _is_str,
    "description": _is_str,
    **TASK_OPTION_KEYS,
}

TOP_LEVEL: dict[str, Check | None] = {
    "preset": _is_str,
    "tasks_dir": _is_str,
    "output_dir": _is_str,
    "timezone": _is_str,
    "include": _is_str_list,
    "exclude": _is_str_list,
    "tasks": None,  # checked below
    "scheduled_tasks": None,
    **{table: None for table in PRESET_TABLES},
}


@dataclass(frozen=True)
class TaskConfig:
    """A ``[tasks."name"]`` entry."""

    handler: str | None = None
    description: str | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Config:
    """A validated config file. ``file`` is the path it came from (``None``
    for defaults) and ``label`` how errors name it (``taskpack.toml``, or
    ``pyproject.toml`` with keys under ``tool.taskpack``)."""

    file: Path | None = None
    label: str = "taskpack.toml"
    key_prefix: tuple[str, ...] = ()
    preset: str | None = None
    tasks_dir: str = "tasks"
    output_dir: str = ".output"
    timezone: str = "UTC"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    tasks: Mapping[str, TaskConfig] = field(default_factory=lambda: MappingProxyType({}))
    scheduled_tasks: tuple[tuple[str, tuple[str, ...]], ...] = ()
    preset_options: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def error(self, message: str, *keys: str) -> ConfigError:
        """A :class:`ConfigError` for ``keys`` in this file."""
        path = key_path(*self.key_prefix, *keys) if keys else None
        return ConfigError(self.label, path, message)


def find_config(root: Path) -> tuple[Path, str, tuple[str, ...]] | None:
    """The one config file of ``root``: (path, label, key prefix), or None.

    ``pyproject.toml`` only counts when it has a ``[tool.taskpack]`` table.
    """
    found: list[tuple[Path, str, tuple[str, ...]]] = []
    for name in CANDIDATES:
        path = root / name
        if not path.is_file():
            continue
        if name == "pyproject.toml":
            data = _parse_toml(path, name)
            if "taskpack" not in data.get("tool", {}):
                continue
            found.append((path, name, ("tool", "taskpack")))
        else:
            found.append((path, name, ()))
    if len(found) > 1:
        names = " and ".join(label for _, label, _ in found)
        raise ConfigError(found[0][1], None, f"two config files found ({names}); keep one")
    return found[0] if found else None


def load_config(root: Path) -> Config:
    """Read and validate the project's config; defaults when there is none."""
    located = find_config(root)
    if located is None:
        return Config()
    path, label, prefix = located
    data: Any
    if path.suffix == ".toml":
        data = _parse_toml(path, label)
        for part in prefix:
            data = data[part]
    else:
        data = _parse_yaml(path, label)
    base = Config(file=path, label=label, key_prefix=prefix)
    if not isinstance(data, dict):
        raise base.error(f"expected a table of settings, got {_kind(data)}")
    return _validate(base, data)


def _parse_toml(path: Path, label: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(label, None, f"invalid TOML: {exc}") from None


def _parse_yaml(path: Path, label: str) -> Any:
    import yaml  # only YAML configs pay for it

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (at line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        reason = exc.problem or exc.context
        raise ConfigError(label, None, f"invalid YAML: {reason}{where}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(label, None, f"invalid YAML: {exc}") from None
    return {} if data is None else data


def _validate(base: Config, data: dict[str, Any]) -> Config:
    _check_keys(base, data, TOP_LEVEL, ())
    for key, check in TOP_LEVEL.items():
        if check is not None and key in data:
            _check_value(base, check, data[key], key)
    values: dict[str, Any] = {
        key: data[key] for key in ("preset", "tasks_dir", "output_dir", "timezone") if key in data
    }
    for key in ("include", "exclude"):
        if key in data:
            values[key] = tuple(data[key])
    for key in ("tasks_dir", "output_dir"):
        if key in values:
            _check_relative_dir(base, values[key], key)
    if "timezone" in values:
        _check_timezone(base, values["timezone"])
    return Config(
        file=base.file,
        label=base.label,
        key_prefix=base.key_prefix,
        tasks=MappingProxyType(_tasks(base, data.get("tasks", {}))),
        scheduled_tasks=_scheduled(base, data.get("scheduled_tasks", {})),
        preset_options=MappingProxyType(_preset_tables(base, data)),
        **values,
    )


def _check_keys(base: Config, table: Mapping[str, Any], known: Mapping[str, Any],
                where: tuple[str, ...]) -> None:
    for key in table:
        if key not in known:
            raise base.error(f"unknown key{_hint(key, known)}", *where, key)


def _hint(key: str, known: Mapping[str, Any]) -> str:
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).replace("-", "_").lower()
    if snake in known:
        return f" (did you mean {snake!r}?)"
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"


def _check_value(base: Config, check: Check, value: Any, *keys: str) -> None:
    problem = check(value)
    if problem is not None:
        raise base.error(problem, *keys)


def _check_relative_dir(base: Config, value: str, key: str) -> None:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts:
        raise base.error(f"must be a folder inside the project, got {value!r}", key)


def _check_timezone(base: Config, value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise base.error(f"unknown time zone {value!r} (use an IANA name such as "
                         "'UTC' or 'Europe/Berlin')", "timezone") from None


def _table(base: Config, value: Any, *keys: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise base.error(f"expected a table, got {_kind(value)}", *keys)
    return value


def _tasks(base: Config, raw: Any) -> dict[str, TaskConfig]:
    tasks: dict[str, TaskConfig] = {}
    for name, entry in _table(base, raw, "tasks").items():
        table = _table(base, entry, "tasks", name)
        _check_keys(base, table, TASK_KEYS, ("tasks", name))
        for key, value in table.items():
            _check_value(base, TASK_KEYS[key], value, "tasks", name, key)
        mode = table.get("concurrency", "parallel")
        if "max_concurrency" in table and mode != "parallel":
            raise base.error(f"only applies to concurrency = 'parallel', not {mode!r}",
                             "tasks", name, "max_concurrency")
        options = {key: table[key] for key in sorted(TASK_OPTION_KEYS) if key in table}
        tasks[name] = TaskConfig(handler=table.get("handler"), description=table.get("description"),
                                 options=MappingProxyType(options))
    return dict(sorted(tasks.items()))


def _scheduled(base: Config, raw: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    schedules: list[tuple[str, tuple[str, ...]]] = []
    for cron, value in _table(base, raw, "scheduled_tasks").items():
        if isinstance(value, str):
            names: tuple[str, ...] = (value,)
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            if not value:
                raise base.error("empty list of tasks", "scheduled_tasks", cron)
            names = tuple(dict.fromkeys(value))
        else:
            raise base.error(f"expected a task name or a list of names, got {_kind(value)}",
                             "scheduled_tasks", cron)
        schedules.append((cron, names))
    return tuple(schedules)


def _preset_tables(base: Config, data: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    tables: dict[str, Mapping[str, Any]] = {}
    for family, keys in PRESET_TABLES.items():
        table = _table(base, data.get(family, {}), family)
        _check_keys(base, table, keys, (family,))
        for key, value in table.items():
            _check_value(base, keys[key], value, family, key)
        tables[family] = MappingProxyType(dict(sorted(table.items())))
    return tables
