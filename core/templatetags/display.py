"""How user text is shown: characters that reorder text (bidirectional embeddings, overrides,
isolates and marks) are made visible as ``<U+202E>`` in a marked span instead of being obeyed,
so a name such as ``report\u202efdp.exe`` cannot pass for ``reportexe.pdf``."""

from __future__ import annotations

import re
from typing import Any

from django import template
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeData, SafeString, mark_safe

register = template.Library()

BIDI_CONTROLS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible_controls(text: str) -> str:
    """The text with each control as ``<U+XXXX>``, as plain text (for attributes and titles)."""
    return BIDI_CONTROLS.sub(lambda match: f"<U+{ord(match.group()):04X}>", text)


@register.filter(is_safe=True)
def bidi_visible(value: Any) -> SafeString | Any:
    """Escaped text with each bidirectional control shown as a marked ``<U+XXXX>``."""
    if value is None:
        return value
    text = str(value)
    if not BIDI_CONTROLS.search(text):
        return value
    # Text already marked safe is already escaped: its pieces are kept as they are.
    escape = str if isinstance(value, SafeData) else conditional_escape
    parts: list[str] = []
    last = 0
    for match in BIDI_CONTROLS.finditer(text):
        parts.append(escape(text[last : match.start()]))
        code = f"U+{ord(match.group()):04X}"
        parts.append(
            format_html(
                '<span class="bidi-control" title="A hidden control character, {}">&lt;{}&gt;</span>', code, code
            )
        )
        last = match.end()
    parts.append(escape(text[last:]))
    return mark_safe("".join(parts))  # noqa: S308 (each piece is escaped, or made by format_html)


@register.filter
def bidi_plain(value: Any) -> Any:
    """``bidi_visible`` for attribute values and page titles, where no markup can go."""
    return visible_controls(str(value)) if value is not None and BIDI_CONTROLS.search(str(value)) else value


@register.filter
def column_label(header: Any, index: int) -> str:
    """The name of column ``index`` from a table's header row, for a cell's data-label."""
    try:
        return str(header[int(index)])
    except (IndexError, TypeError, ValueError, KeyError):
        return ""
