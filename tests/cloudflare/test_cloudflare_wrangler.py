"""The built Worker against the real wrangler (4.86.0, pinned in
tools/cloudflare): ``wrangler deploy --dry-run`` validates the config and
bundles the Python modules offline. It does not check cron semantics (that
is what the dialect tests and the Pyodide runs are for)."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

from taskpack.builder.build import build
from taskpack.layout import PROJECT_DIR
from tests.cloudflare.conftest import WranglerRun
from tests.helpers import MakeProject, task_source

DryRun = Callable[..., WranglerRun]

USER_WRANGLER = """\
# Team config: do not lose this comment
name = "team-worker"
compatibility_date = "2025-10-01"

# Cache used by the tasks
[[kv_namespaces]]
binding = "CACHE"  # bound as env.CACHE
id = "0123456789abcdef0123456789abcdef"

[vars]
REGION = "eu"

[assets]
directory = "./public"  # static files, relative to this file
binding = "ASSETS"

# Staging: its own namespace and variables
[env.staging]
name = "team-worker-staging"

[[env.staging.kv_namespaces]]
binding = "CACHE"
id = "fedcba9876543210fedcba9876543210"

[env.staging.vars]
REGION = "staging"
"""


def test_dry_run_accepts_the_built_basic_example(basic_example: Path, dry_run: DryRun) -> None:
    out = build(basic_example, preset="cloudflare_module").output
    run = dry_run(out)
    assert run.returncode == 0, run.output
    assert "--dry-run: exiting now." in run.output
    for module in (
        "entry.py",
        "taskpack_manifest.py",
        "taskpack/cloudflare.py",
        f"{PROJECT_DIR}/tasks/cms/update.py",
        f"{PROJECT_DIR}/jobs/record.py",
    ):
        assert (run.outdir / module).is_file(), module


def test_dry_run_accepts_a_merged_user_config_with_bindings_and_envs(
    make_project: MakeProject, dry_run: DryRun
) -> None:
    root = make_project(
        {
            "taskpack.toml": '[scheduled_tasks]\n"0 12 * * 1-5" = "report"\n',
            "tasks/report.py": task_source("Weekday report"),
            "wrangler.toml": USER_WRANGLER,
            "public/index.html": "<h1>static</h1>\n",
        }
    )
    out = build(root, preset="cloudflare_module").output
    merged = (out / "wrangler.toml").read_text()
    for kept in (
        "# Team config: do not lose this comment",
        "# Cache used by the tasks",
        'binding = "CACHE"  # bound as env.CACHE',
        "# Staging: its own namespace and variables",
        "# static files, relative to this file",
    ):
        assert kept in merged
    data = tomllib.loads(merged)
    assert data["kv_namespaces"] == [{"binding": "CACHE", "id": "0123456789abcdef0123456789abcdef"}]
    assert data["triggers"] == {"crons": ["0 12 * * MON-FRI"]}
    assert data["env"]["staging"]["triggers"] == {"crons": ["0 12 * * MON-FRI"]}
    # Relative paths still point at the project's folders from .output/.
    assert data["assets"]["directory"] == "../public"

    run = dry_run(out)
    assert run.returncode == 0, run.output
    assert "env.CACHE (0123456789abcdef0123456789abcdef)" in run.output
    assert 'env.REGION ("eu")' in run.output
    assert "env.ASSETS" in run.output  # wrangler found the assets folder

    staging = dry_run(out, "--env", "staging")
    assert staging.returncode == 0, staging.output
    assert "env.CACHE (fedcba9876543210fedcba9876543210)" in staging.output
    assert 'env.REGION ("staging")' in staging.output
