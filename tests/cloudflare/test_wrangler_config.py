"""Merging the build's Worker settings into a user's wrangler config."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from taskpack.builder.errors import ConfigError
from taskpack.builder.wrangler import (
    WorkerSettings,
    find_user_config,
    render_wrangler,
    strip_jsonc,
)

CRONS = ("0 12 * * MON-FRI", "* * * * *")
SETTINGS = WorkerSettings(
    main="src/entry.py",
    crons=CRONS,
    default_name="fallback-name",
    default_compatibility_date="2026-04-01",
)

USER_TOML = """\
# My worker — keep this comment
name = "my-worker"   # inline comment
main = "src/index.py"
compatibility_date = "2025-09-01"
compatibility_flags = ["nodejs_compat"]

# KV for caching
[[kv_namespaces]]
binding = "CACHE"
id = "0123456789abcdef0123456789abcdef"

[triggers]
crons = ["*/5 * * * *"]

[env.staging]
name = "my-worker-staging"
vars = { GREETING = "hi" }

[env.production]
name = "my-worker-prod"
compatibility_flags = ["nodejs_compat"]

[env.production.triggers]
crons = []
"""


def test_fresh_config_has_everything_a_python_worker_needs() -> None:
    result = render_wrangler(SETTINGS, None)
    data = tomllib.loads(result.text)
    assert result.filename == "wrangler.toml"
    assert data == {
        "name": "fallback-name",
        "main": "src/entry.py",
        "compatibility_date": "2026-04-01",
        "compatibility_flags": ["python_workers"],
        "triggers": {"crons": list(CRONS)},
    }
    assert result.notices == ()


def test_empty_crons_are_written_so_a_deploy_clears_old_triggers() -> None:
    settings = WorkerSettings("src/entry.py", (), "w", "2026-04-01")
    assert tomllib.loads(render_wrangler(settings, None).text)["triggers"] == {"crons": []}


def test_toml_merge_keeps_user_keys_and_comments(tmp_path: Path) -> None:
    user = tmp_path / "wrangler.toml"
    user.write_text(USER_TOML)
    result = render_wrangler(SETTINGS, user)
    data = tomllib.loads(result.text)

    assert "# My worker — keep this comment" in result.text
    assert "# inline comment" in result.text
    assert "# KV for caching" in result.text
    assert data["kv_namespaces"] == [{"binding": "CACHE", "id": "0123456789abcdef0123456789abcdef"}]
    assert data["name"] == result.name == "my-worker"
    assert data["compatibility_date"] == "2025-09-01"
    assert data["main"] == "src/entry.py"
    assert data["compatibility_flags"] == ["nodejs_compat", "python_workers"]
    assert data["triggers"] == {"crons": list(CRONS)}
    # An environment without triggers gets the build's; one that sets them keeps its own.
    assert data["env"]["staging"]["triggers"] == {"crons": list(CRONS)}
    assert data["env"]["staging"]["vars"] == {"GREETING": "hi"}
    assert data["env"]["production"]["triggers"] == {"crons": []}
    assert data["env"]["production"]["compatibility_flags"] == ["nodejs_compat", "python_workers"]
    # Replaced values are announced, never silent.
    assert result.notices == (
        'wrangler.toml: main: replaced "src/index.py" with "src/entry.py" '
        "(taskpack generates the Worker's entry)",
        'wrangler.toml: triggers.crons: replaced ["*/5 * * * *"] with '
        '["0 12 * * MON-FRI", "* * * * *"] (crons come from scheduled_tasks)',
    )


def test_taskpack_config_name_and_date_win_with_a_notice(tmp_path: Path) -> None:
    user = tmp_path / "wrangler.toml"
    user.write_text(USER_TOML)
    settings = WorkerSettings(
        "src/entry.py", CRONS, "x", "2026-04-01", name="other", compatibility_date="2026-01-02"
    )
    result = render_wrangler(settings, user)
    data = tomllib.loads(result.text)
    assert (data["name"], data["compatibility_date"]) == ("other", "2026-01-02")
    assert result.name == "other"
    assert any("name: replaced" in notice for notice in result.notices)
    assert any("compatibility_date: replaced" in notice for notice in result.notices)


def test_unchanged_values_make_no_notice(tmp_path: Path) -> None:
    user = tmp_path / "wrangler.toml"
    user.write_text('name = "w"\nmain = "src/entry.py"\n[triggers]\ncrons = ["* * * * *"]\n')
    settings = WorkerSettings("src/entry.py", ("* * * * *",), "w", "2026-04-01")
    result = render_wrangler(settings, user)
    assert result.notices == ()
    assert tomllib.loads(result.text)["compatibility_flags"] == ["python_workers"]


def test_jsonc_merge_writes_json(tmp_path: Path) -> None:
    user = tmp_path / "wrangler.jsonc"
    user.write_text(
        """{
  // the Worker
  "name": "json-worker",
  "vars": { "URL": "https://example.com/a//b" }, /* not a comment inside strings */
  "kv_namespaces": [{ "binding": "KV", "id": "abc" },],
  "env": { "staging": { "vars": { "URL": "x" } } },
}
"""
    )
    result = render_wrangler(SETTINGS, user)
    data = json.loads(result.text)
    assert result.filename == "wrangler.jsonc"
    assert data["vars"] == {"URL": "https://example.com/a//b"}
    assert data["kv_namespaces"] == [{"binding": "KV", "id": "abc"}]
    assert data["main"] == "src/entry.py"
    assert data["compatibility_date"] == "2026-04-01"
    assert data["compatibility_flags"] == ["python_workers"]
    assert data["triggers"] == {"crons": list(CRONS)}
    assert data["env"]["staging"]["triggers"] == {"crons": list(CRONS)}


def test_strip_jsonc_keeps_strings() -> None:
    text = '{"a": "/* no */ // no", "b": [1, 2, /* c */ ], // end\n "c": "\\"//"}'
    assert json.loads(strip_jsonc(text)) == {"a": "/* no */ // no", "b": [1, 2], "c": '"//'}


def test_two_user_configs_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "wrangler.toml").write_text('name = "a"\n')
    (tmp_path / "wrangler.json").write_text('{"name": "a"}')
    with pytest.raises(ConfigError, match=r"wrangler.json: two wrangler configs"):
        find_user_config(tmp_path)


@pytest.mark.parametrize(
    ("filename", "text", "message"),
    [
        ("wrangler.toml", "name = \n", "wrangler.toml: invalid TOML"),
        ("wrangler.json", "{nope}", "wrangler.json: invalid JSON"),
        ("wrangler.json", "[1]", "wrangler.json: expected a JSON object"),
        ("wrangler.toml", 'compatibility_flags = "x"\n', "compatibility_flags: expected a list"),
    ],
)
def test_bad_user_config_is_an_error_naming_the_file(
    tmp_path: Path, filename: str, text: str, message: str
) -> None:
    user = tmp_path / filename
    user.write_text(text)
    with pytest.raises(ConfigError, match=message):
        render_wrangler(SETTINGS, user)


def test_relative_paths_are_rebased_onto_the_project(tmp_path: Path) -> None:
    user = tmp_path / "wrangler.toml"
    user.write_text(
        """\
tsconfig = "tsconfig.json"

[assets]
directory = "./public"  # kept comment

[build]
watch_dir = ["src", "/abs/olute"]

[[d1_databases]]
binding = "DB"
database_id = "x"
migrations_dir = "migrations"

[env.staging.assets]
directory = "public-staging"
"""
    )
    settings = WorkerSettings("src/entry.py", (), "w", "2026-04-01", project_dir="..")
    result = render_wrangler(settings, user)
    data = tomllib.loads(result.text)
    assert data["tsconfig"] == "../tsconfig.json"
    assert data["assets"]["directory"] == "../public"
    assert data["build"]["watch_dir"] == ["../src", "/abs/olute"]
    assert data["d1_databases"][0]["migrations_dir"] == "../migrations"
    assert data["env"]["staging"]["assets"]["directory"] == "../public-staging"
    assert result.notices == ()
    # Without a project_dir (validation only), paths stay as written.
    unchanged = tomllib.loads(render_wrangler(SETTINGS, user).text)
    assert unchanged["assets"]["directory"] == "./public"


def test_an_environment_main_is_replaced_with_a_notice(tmp_path: Path) -> None:
    user = tmp_path / "wrangler.json"
    user.write_text('{"name": "w", "env": {"dev": {"main": "other.py"}}}')
    result = render_wrangler(SETTINGS, user)
    data = json.loads(result.text)
    assert data["env"]["dev"]["main"] == "src/entry.py"
    assert data["env"]["dev"]["triggers"] == {"crons": list(CRONS)}
    assert (
        'wrangler.json: env.dev.main: replaced "other.py" with "src/entry.py" '
        "(taskpack generates the Worker's entry)"
    ) in result.notices
