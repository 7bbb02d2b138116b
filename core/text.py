"""Text that can be stored and shown again: Unicode without lone surrogates, JSON that is JSON.

A lone surrogate (``"\\ud800"`` in JSON) is a valid Python string that no UTF-8 encoder accepts:
stored, it makes every page that shows it fail, and PostgreSQL refuses it outright, as it refuses
NUL. So both are refused where input arrives, never caught where output is made.
"""

from __future__ import annotations

import json
import re
from typing import Any

from core.errors import InvalidInput

_SURROGATE = re.compile("[\ud800-\udfff]")
# In JSON text that is valid UTF-8, a lone surrogate can only be written as an escape.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def has_lone_surrogate(text: str) -> bool:
    # isascii() reads a flag CPython keeps on every string, so ASCII text costs nothing here.
    return not text.isascii() and _SURROGATE.search(text) is not None


def is_storable(text: str) -> bool:
    return "\x00" not in text and not has_lone_surrogate(text)


def check_text(value: str, *, field: str, code: str = "VALIDATION_ERROR") -> str:
    """``value`` if a database column can hold it and a page can show it."""
    if "\x00" in value:
        raise InvalidInput(f"{field} must not contain NUL characters", code=code, details={"field": field})
    if has_lone_surrogate(value):
        raise InvalidInput(
            f"{field} is not Unicode text: it holds a lone surrogate", code=code, details={"field": field}
        )
    return value


def _shown(key: str) -> str:
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


def lone_surrogate_at(data: Any) -> str | None:
    """Where in a decoded JSON value a key or a string holds a lone surrogate (``a.b[2]``), or None."""
    pending: list[tuple[str, Any]] = [("", data)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str):
            if has_lone_surrogate(value):
                return where or "body"
        elif isinstance(value, dict):
            for key, item in value.items():
                inner = f"{where}.{_shown(key)}" if where else _shown(key)
                if has_lone_surrogate(key):
                    return inner
                pending.append((inner, item))
        elif isinstance(value, list):
            pending.extend((f"{where}[{index}]", item) for index, item in enumerate(value))
    return None


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def parse_json(text: str) -> Any:
    """``json.loads`` for input: NaN and Infinity are refused (no JSON has them), and so is nesting
    deeper than the parser can follow; both as ValueError, like any other broken JSON."""
    try:
        return json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def json_without_lone_surrogates(text: str) -> Any:
    """``parse_json``, then InvalidInput if a string in it holds a lone surrogate."""
    data = parse_json(text)
    if _SURROGATE_ESCAPE.search(text):
        where = lone_surrogate_at(data)
        if where is not None:
            raise InvalidInput(
                f"{where} is not Unicode text: it holds a lone surrogate",
                code="INVALID_TEXT",
                details={"field": where},
            )
    return data
