"""Backfill: the option, its config key, and the plan for missed fires."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from taskpack import define_task
from taskpack.backfill import fires_between, plan_missed
from taskpack.builder.manifest import build_manifest
from taskpack.builder.project import load_project
from taskpack.cron import CronExpr, zone
from taskpack.options import apply_overrides, make_options, parse_duration
from taskpack.store import schedule_id
from tests.helpers import MakeProject
from tests.test_cli import invoke

S = 1000  # ms


@pytest.mark.parametrize(("text", "seconds"), [
    ("2h", 7200), ("30m", 1800), ("90s", 90), ("1d", 86400), ("1h30m", 5400),
    (" 1H 30M ", 5400), ("0.5h", 1800), (45, 45), (2.5, 2.5),
])
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("value", "kind", "message"), [
    ("2 weeks", ValueError, "expected a duration such as '2h'"),
    ("h", ValueError, "expected a duration"),
    ("", ValueError, "expected a duration"),
    ("0s", ValueError, "must be a positive duration"),
    (-5, ValueError, "must be a positive duration"),
    (float("inf"), ValueError, "must be a positive duration"),
    (True, TypeError, "got bool"),
    ([1], TypeError, "got list"),
])
def test_bad_durations(value: object, kind: type[Exception], message: str) -> None:
    with pytest.raises(kind, match=message):
        parse_duration(value)


def test_define_task_and_config_set_the_window() -> None:
    task = define_task(lambda event: None, backfill="2h")
    assert task.options.backfill == 7200
    assert define_task(lambda event: None).options.backfill is None
    assert apply_overrides("x", task.options, {"backfill": "10m"}).backfill == 600
    assert apply_overrides("x", make_options("x"), {"backfill": 30}).backfill == 30
    with pytest.raises(ValueError, match="task x: option backfill: expected a duration"):
        make_options("x", backfill="soon")


def test_config_key_is_validated_and_reaches_the_manifest(make_project: MakeProject) -> None:
    task = "from taskpack import define_task\n@define_task\ndef run(event):\n    return 1\n"
    root = make_project({
        "tasks/x.py": task,
        "taskpack.toml": ('[tasks."x"]\nbackfill = "2 weeks"\n'
                          '[scheduled_tasks]\n"* * * * *" = "x"\n'),
    })
    code, _, err = invoke(root, "task", "list")
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        "error: taskpack.toml: tasks.x.backfill: expected a duration such as '2h', '30m' "
        "or '1h30m', got '2 weeks'")
    (root / "taskpack.toml").write_text(
        '[tasks."x"]\nbackfill = "2h"\n[scheduled_tasks]\n"* * * * *" = "x"\n')
    assert build_manifest(load_project(root))["tasks"]["x"]["options"] == {"backfill": "2h"}


def test_fires_between_is_half_open_and_bounded() -> None:
    expr = CronExpr.parse("* * * * * *")
    base = 1_800_000_000_000
    assert list(fires_between(expr, zone("UTC"), base, base + 3 * S)) == [
        base + S, base + 2 * S, base + 3 * S]
    assert len(list(fires_between(expr, zone("UTC"), base, base + 100 * S, limit=5))) == 5


def test_plan_without_backfill_runs_nothing_and_counts_per_task() -> None:
    fires = [10 * S, 11 * S, 12 * S]
    plan = plan_missed(fires, {"a": None, "b": None}, now_ms=20 * S, grace=60)
    assert plan.run == []
    assert plan.skipped == {"a": 3, "b": 3}
    assert (plan.first_ms, plan.last_ms, plan.count) == (10 * S, 12 * S, 3)
    assert plan.mark is None  # within the grace: another host may still run them


def test_plan_backfills_inside_each_window_oldest_first() -> None:
    now = 10_000 * S
    fires = [now - 7200 * S, now - 3000 * S, now - 100 * S, now - 10 * S]
    plan = plan_missed(fires, {"long": 3600.0, "short": 60.0, "none": None}, now, grace=60)
    assert plan.run == [(now - 3000 * S, ("long",)), (now - 100 * S, ("long",)),
                        (now - 10 * S, ("long", "short"))]
    assert plan.skipped == {"long": 1, "short": 3, "none": 4}
    assert plan.mark == now - 7200 * S  # older than every window: reported once, never run


def test_plan_counts_older_fires_no_window_reaches() -> None:
    plan = plan_missed([], {"a": 60.0}, now_ms=0, grace=60, older=12)
    assert plan.skipped == {"a": 12}
    assert plan.count == 12


def test_fire_instants_and_claim_ids_do_not_depend_on_the_hosts_time_zone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Hosts compute the same claim keys whatever their own TZ: instants come
    from the configured zone, DST included (Berlin skips 02:30 on 29 March
    2026: it fires once, at 03:00)."""
    expr = CronExpr.parse("30 2 * * *")
    start = round(datetime(2026, 3, 27, tzinfo=UTC).timestamp() * 1000)
    end = round(datetime(2026, 3, 31, tzinfo=UTC).timestamp() * 1000)
    baseline = list(fires_between(expr, zone("Europe/Berlin"), start, end))
    ident = schedule_id(expr.canonical, "Europe/Berlin", ["b", "a"])
    try:
        for host_zone in ("America/New_York", "Asia/Kolkata", "UTC"):
            monkeypatch.setenv("TZ", host_zone)
            time.tzset()
            assert list(fires_between(expr, zone("Europe/Berlin"), start, end)) == baseline
            assert schedule_id(expr.canonical, "Europe/Berlin", ["a", "b"]) == ident
    finally:
        monkeypatch.undo()
        time.tzset()
    assert [datetime.fromtimestamp(ms / 1000, UTC).strftime("%d %H:%M") for ms in baseline] == [
        "27 01:30", "28 01:30", "29 01:00", "30 00:30"]


@pytest.mark.parametrize("preset", ["cloudflare_module", "vercel", "aws_lambda", "kubernetes"])
def test_platform_cron_presets_say_backfill_is_ignored(make_project: MakeProject,
                                                       preset: str) -> None:
    """Platform cron does not backfill: the build says so for each scheduled
    task with a window, set in config or in the task's define_task; taskpack's
    own scheduler (server) honours it and says nothing."""
    from taskpack.builder.build import build
    from taskpack.builder.dialects import SCHEDULER

    root = make_project({
        "tasks/a.py": "from taskpack import define_task\n"
                      "@define_task(backfill='1h')\ndef run(event):\n    return 1\n",
        "tasks/b.py": "from taskpack import define_task\n"
                      "@define_task\ndef run(event):\n    return 1\n",
        "tasks/c.py": "from taskpack import define_task\n"
                      "@define_task(backfill='1h')\ndef run(event):\n    return 1\n",
        "taskpack.toml": '[tasks.b]\nbackfill = "2h"\n'
                         '[scheduled_tasks]\n"0 3 * * *" = ["a", "b"]\n',
    })
    server = build(root, preset="server", output=root / "server-out")
    assert not [w for w in server.warnings if "backfill" in w]
    result = build(root, preset=preset, output=root / "out")
    label = result.preset.cron_platform.label
    assert result.preset.cron_platform is not SCHEDULER
    assert [w for w in result.warnings if "backfill" in w] == [
        f"tasks/a.py: define_task(backfill=...): ignored by the {preset} preset ({label} runs "
        "the schedules and does not backfill missed fires)",
        f'tasks."b".backfill: ignored by the {preset} preset ({label} runs '
        "the schedules and does not backfill missed fires)",
    ]  # c has a window but no schedule: nothing to say
