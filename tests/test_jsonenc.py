"""taskpack.jsonenc: encoders made once give what ``json.JSONEncoder`` gives."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskpack.jsonenc import encoder

OPTIONS: list[dict[str, Any]] = [
    {},
    {"ensure_ascii": False, "allow_nan": False},
    {"allow_nan": False},
    {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": False, "default": repr},
    {"ensure_ascii": False, "default": str, "allow_nan": False},
]

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


def outcome(encode: Any, value: Any) -> Any:
    try:
        return encode(value)
    except Exception as exc:
        return type(exc)


@pytest.mark.parametrize("options", OPTIONS)
@given(value=values)
def test_the_same_text_or_the_same_exception(options: dict[str, Any], value: Any) -> None:
    assert outcome(encoder(**options), value) == outcome(json.JSONEncoder(**options).encode,
                                                         value)


@pytest.mark.parametrize("options", OPTIONS)
def test_odd_values(options: dict[str, Any]) -> None:
    for value in ["top-level \n text", "\ud800 lone", {1: 2, False: 3, None: 4, 2.5: 5},
                  {"k": object()}, [float("nan")], -0.0, 10**40, ()]:
        assert outcome(encoder(**options), value) == outcome(
            json.JSONEncoder(**options).encode, value)


def test_a_circular_value_is_an_error_not_a_hang() -> None:
    circular: list[Any] = []
    circular.append(circular)
    with pytest.raises(RecursionError):
        encoder()(circular)
