"""Differential test against croner 10 itself (the engine Nitro uses).

Random expressions of the accepted dialect (the generator of test_cron.py)
are evaluated by taskpack and by croner 10.0.1 under Node from random start
times; the next 5 fire times must be identical. croner is installed from
the npm registry into ``.cache/croner10`` on first use; the test is skipped
when Node or npm is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from itertools import islice

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskpack.cron import CronError, CronExpr
from tests.helpers import REPO
from tests.test_cron import Written, expressions

CRONER_DIR = REPO / ".cache" / "croner10"
SCRIPT = """
const {Cron} = require('croner');
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
console.log(JSON.stringify(cases.map(([expr, start]) => {
  try {
    return new Cron(expr, {timezone: 'Etc/UTC'}).nextRuns(5, new Date(start))
      .map(d => d.toISOString().replace('.000Z', 'Z'));
  } catch (e) { return 'error: ' + e.message; }
})));
"""


@pytest.fixture(scope="module")
def croner() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run croner")
    if not (CRONER_DIR / "node_modules" / "croner").is_dir():
        CRONER_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix",
                        str(CRONER_DIR), "--cache", str(REPO / ".cache" / "npm"),
                        "croner@10.0.1"], check=True, capture_output=True, timeout=300)
    return node


def croner_runs(node: str, cases: list[tuple[str, str]]) -> list[list[str] | str]:
    done = subprocess.run([node, "-e", SCRIPT], input=json.dumps(cases), text=True,
                          capture_output=True, cwd=CRONER_DIR, check=True, timeout=60)
    result: list[list[str] | str] = json.loads(done.stdout)
    return result


@settings(max_examples=4, deadline=None)
@given(st.lists(st.tuples(expressions(), st.integers(0, 20 * 365 * 86400)),
                min_size=100, max_size=100))
def test_same_fire_times_as_croner10(croner: str, batch: list[tuple[Written, int]]) -> None:
    cases, ours = [], []
    for written, offset in batch:
        try:
            expr = CronExpr.parse(written.text)
        except CronError:
            continue  # "never fires": croner returns no runs
        start = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=offset)
        cases.append((written.text, start.strftime("%Y-%m-%dT%H:%M:%SZ")))
        ours.append([t.strftime("%Y-%m-%dT%H:%M:%SZ")
                     for t in islice(expr.iter_after(start), 5)])
    theirs = croner_runs(croner, cases)
    mismatches = [(c, o, t) for c, o, t in zip(cases, ours, theirs, strict=True) if o != t]
    assert not mismatches, mismatches[:3]
