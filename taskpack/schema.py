"""Payload schemas: checking a payload before any attempt runs.

A ``payload_schema`` is either a pydantic model class (pydantic is optional:
``pip install taskpack[pydantic]``; it is recognised by duck typing, so this
module never imports it) or any callable ``payload -> value`` that raises
``ValueError`` for an invalid payload. :func:`compile_schema` turns either
into one ``validate(payload)`` function that returns the value the task
receives, or raises :class:`SchemaError` carrying field errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PayloadSchema = Any
"""A pydantic model class, or a callable ``payload -> value``."""

FieldError = dict[str, Any]
"""``{"field": "a.b" | None, "message": str, "type": str}``."""


class SchemaError(Exception):
    """The payload was rejected; ``errors`` lists the problems as
    :data:`FieldError` dicts."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e["message"]) for e in errors))
        self.errors = errors


def compile_schema(schema: PayloadSchema) -> Callable[[Any], Any]:
    """One validation function for ``schema``; ``TypeError`` when ``schema``
    is neither a pydantic model class nor a callable."""
    model_validate = getattr(schema, "model_validate", None)
    if isinstance(schema, type) and callable(model_validate):
        return _checked(model_validate)
    if isinstance(schema, type) or not callable(schema):
        raise TypeError(
            "expected a pydantic model class or a callable payload -> payload, "
            f"got {getattr(schema, '__name__', type(schema).__name__)}"
        )
    return _checked(schema)


def _checked(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def validate(payload: Any) -> Any:
        try:
            return fn(payload)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise SchemaError(field_errors(exc)) from exc

    return validate


def field_errors(exc: ValueError) -> list[FieldError]:
    """The field errors of ``exc``: pydantic's ``errors()`` when it has them,
    else one error without a field."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            items = errors()
        except Exception:
            items = None
        if isinstance(items, list) and items:
            return [_from_pydantic(item) for item in items]
    return [{"field": None, "message": str(exc) or type(exc).__name__, "type": "value_error"}]


def _from_pydantic(item: Any) -> FieldError:
    loc = item.get("loc", ()) if isinstance(item, dict) else ()
    return {
        "field": ".".join(str(part) for part in loc) or None,
        "message": str(item.get("msg", "invalid")) if isinstance(item, dict) else str(item),
        "type": str(item.get("type", "value_error")) if isinstance(item, dict) else "value_error",
    }
