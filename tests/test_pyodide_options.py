"""Task options in real Pyodide (Python 3.13, no threads), as on Cloudflare:
retries, timeouts (async cancelled; inline sync overrunning) and limits work
with ``Registry(threads=False)``, and the runtime imports without sqlite3.

Pyodide comes from npm (``tests/pyodide/package.json``), installed into
``.cache/tools/pyodide`` on first use."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO

HERE = REPO / "tests" / "pyodide"
TOOLS = REPO / ".cache" / "tools" / "pyodide"


@pytest.fixture(scope="module")
def pyodide_tools() -> Path:
    marker = TOOLS / "node_modules" / "pyodide" / "package.json"
    wanted = json.loads((HERE / "package.json").read_text())["dependencies"]["pyodide"]
    if not marker.is_file() or json.loads(marker.read_text())["version"] != wanted:
        TOOLS.mkdir(parents=True, exist_ok=True)
        shutil.copy(HERE / "package.json", TOOLS / "package.json")
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--cache", str(REPO / ".cache" / "npm")],
            cwd=TOOLS, check=True, capture_output=True, timeout=600,
        )
    return TOOLS


def run_in_pyodide(tools: Path, script: Path) -> dict[str, Any]:
    proc = subprocess.run(
        ["node", str(HERE / "run.mjs"), str(tools), str(REPO / "taskpack"), str(script)],
        capture_output=True, text=True, timeout=300,
    )
    # Pyodide's uncaught errors print a megabyte of minified JS first.
    assert proc.returncode == 0, "\n".join(line[:300] for line in proc.stderr.splitlines()[-30:])
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return result


def test_options_work_without_threads(pyodide_tools: Path) -> None:
    out = run_in_pyodide(pyodide_tools, HERE / "options.py")
    assert out["python"].startswith("3.13")
    assert out["flaky"] == 3
    assert out["flaky_attempts"] == [1, 2, 3]
    assert out["flaky_cancelled"] == [1]
    assert out["flaky_seconds"] < 5
    assert out["busy"] == "Task `busy` timed out after 0.02s (attempt 1)"
    assert out["sync_retry"] == 3
    assert out["limited"] == list(range(20))
    assert out["limited_peak"] == 3
    assert out["history"] == {"busy": ["timeout", 1], "flaky": ["ok", 3], "limited": ["ok", 1],
                              "sync_retry": ["ok", 3]}
