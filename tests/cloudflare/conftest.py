"""Fixtures for the Cloudflare integration tests: the pinned tools (wrangler,
Pyodide, the Workers SDK wheel), installed by ``scripts/install_tools.py``
into ``.cache/tools/cloudflare`` on first use, and a runner for the Pyodide
harness (``harness.mjs``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


@dataclass(frozen=True)
class CloudflareTools:
    dir: Path
    bin: Path
    wheel: Path

    @property
    def wrangler(self) -> Path:
        return self.bin / "wrangler"


def _tail(text: str, lines: int = 40) -> str:
    # Pyodide's uncaught errors print a megabyte of minified JS first.
    return "\n".join(line[:500] for line in text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def cf_tools() -> CloudflareTools:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "install_tools.py"), "cloudflare"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, _tail(proc.stderr)
    info = json.loads(proc.stdout)
    (wheel,) = info["wheels"]
    return CloudflareTools(Path(info["dir"]), Path(info["bin"]), Path(wheel))


def wrangler_env(home: Path) -> dict[str, str]:
    """Environment for an offline wrangler: no telemetry, no update check
    beyond npm, config and logs under ``home`` instead of the user's."""
    env = dict(os.environ)
    env.update(
        WRANGLER_SEND_METRICS="false",
        WRANGLER_LOG_PATH=str(home / "logs"),
        XDG_CONFIG_HOME=str(home / "config"),
        CI="1",
        NO_COLOR="1",
        FORCE_COLOR="0",
    )
    return env


@dataclass(frozen=True)
class WranglerRun:
    """One ``wrangler deploy --dry-run``: exit code, combined output, and the
    folder wrangler wrote the bundled modules to."""

    returncode: int
    output: str
    outdir: Path


@pytest.fixture
def dry_run(cf_tools: CloudflareTools, tmp_path: Path) -> Callable[..., WranglerRun]:
    """``wrangler deploy --dry-run --outdir`` in a folder holding a wrangler config."""
    counter = iter(range(1_000_000))

    def run(project: Path, *extra: str) -> WranglerRun:
        outdir = tmp_path / f"wrangler-out-{next(counter)}"
        proc = subprocess.run(
            [str(cf_tools.wrangler), "deploy", "--dry-run", "--outdir", str(outdir), *extra],
            cwd=project,
            env=wrangler_env(tmp_path / "wrangler-home"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        return WranglerRun(proc.returncode, proc.stdout + proc.stderr, outdir)

    return run


@pytest.fixture
def run_worker(cf_tools: CloudflareTools, tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Run ``calls`` against the Worker in ``src`` inside Pyodide; the harness's JSON."""

    def run(
        src: Path,
        calls: Sequence[Mapping[str, Any]],
        env: Mapping[str, str] | None = None,
        main: str = "entry",
        pythonEnv: Mapping[str, str] | None = None,
        collect: Sequence[str] = (),
        queues: Sequence[str] = (),
    ) -> dict[str, Any]:
        spec = {
            "tools": str(cf_tools.dir),
            "wheel": str(cf_tools.wheel),
            "src": str(src),
            "main": main,
            "env": dict(env or {}),
            "pythonEnv": dict(pythonEnv or {}),
            "collect": list(collect),
            "queues": list(queues),
            "calls": list(calls),
        }
        spec_file = tmp_path / "harness-spec.json"
        spec_file.write_text(json.dumps(spec))
        proc = subprocess.run(
            ["node", str(HERE / "harness.mjs"), str(spec_file)],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, _tail(proc.stderr)
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    return run
