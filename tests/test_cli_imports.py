"""`taskpack build` imports only what building needs (its start-up is part
of the 1,000-tasks-in-1-s target, see docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys
from taskpack.builder.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""
# Modules of other commands, and libraries only some configs or presets use.
NOT_FOR_A_SERVER_BUILD = (
    "taskpack.builder.dev",
    "taskpack.builder.task_command",
    "taskpack.builder.runs",
    "taskpack.builder.preview",
    "taskpack.builder.wrangler",
    "taskpack.store.sqlite",
    "taskpack.store.postgres",
    "psycopg",
    "uvicorn",
    "httptools",
    "uvloop",
    "yaml",
    "tomlkit",
    "urllib.request",
)


def loaded_by(*args: str) -> set[str]:
    result = subprocess.run([sys.executable, "-c", PROBE, *args],
                            capture_output=True, text=True, check=True)
    modules: list[str] = json.loads(result.stderr.strip().splitlines()[-1])
    return set(modules)


def test_a_server_build_skips_other_commands_and_optional_libraries(
    basic_example: Path, tmp_path: Path
) -> None:
    modules = loaded_by("build", "--root", str(basic_example), "--output", str(tmp_path / "out"))
    assert "taskpack.builder.build" in modules
    assert not modules & set(NOT_FOR_A_SERVER_BUILD)


def test_the_commands_that_need_them_still_load_them(basic_example: Path, tmp_path: Path) -> None:
    modules = loaded_by("build", "--root", str(basic_example), "--preset", "cloudflare_module",
                        "--output", str(tmp_path / "out"))
    assert {"taskpack.builder.wrangler", "tomlkit"} <= modules
    modules = loaded_by("task", "list", "--root", str(basic_example), "--local")
    assert "taskpack.builder.task_command" in modules
