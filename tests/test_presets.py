"""The preset registry: names, Nitro's aliases, unknown names."""

from __future__ import annotations

import pytest

from taskpack.builder.errors import TaskpackError
from taskpack.presets import get_preset, known_presets


@pytest.mark.parametrize(("alias", "name"), [
    ("server", "server"),
    ("node_server", "server"),
    ("node-server", "server"),
    ("server_cluster", "server_cluster"),
    ("node_cluster", "server_cluster"),
    ("asgi", "asgi"),
    ("node_middleware", "asgi"),
])
def test_names_and_aliases(alias: str, name: str) -> None:
    assert get_preset(alias).name == name


def test_known_presets_are_sorted_and_unique() -> None:
    names = [preset.name for preset in known_presets()]
    assert names == sorted(set(names))
    assert {"server", "server_cluster", "asgi"} <= set(names)


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(TaskpackError) as caught:
        get_preset("node", source="TASKPACK_PRESET")
    message = str(caught.value)
    assert message.startswith("TASKPACK_PRESET: unknown preset 'node' (known: ")
    assert "server (alias node_server, node-server)" in message
    assert caught.value.exit_code == 2


def test_every_preset_has_the_interface() -> None:
    for preset in known_presets():
        assert isinstance(preset.name, str) and preset.name
        assert all(isinstance(alias, str) for alias in preset.aliases)
        assert callable(preset.validate) and callable(preset.emit)
