"""User text with characters that reorder it is shown with those characters made visible."""

from __future__ import annotations

import pytest
from django.template import Context, Template
from django.utils.safestring import mark_safe

from core.templatetags.display import bidi_plain, bidi_visible, column_label


def render(source: str, **context) -> str:
    return Template("{% load display %}" + source).render(Context(context))


def test_an_override_is_shown_as_its_code_point_in_a_marked_span():
    shown = render("{{ name|bidi_visible }}", name="report\u202efdp.exe")
    assert "\u202e" not in shown
    assert shown == (
        'report<span class="bidi-control" title="A hidden control character, U+202E">&lt;U+202E&gt;</span>fdp.exe'
    )


@pytest.mark.parametrize(
    "char",
    ["\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"],
)
def test_every_embedding_override_isolate_and_mark_is_made_visible(char):
    shown = render("{{ name|bidi_visible }}", name=f"a{char}b")
    assert char not in shown and f"&lt;U+{ord(char):04X}&gt;" in shown


def test_the_text_around_the_controls_stays_escaped():
    shown = render("{{ name|bidi_visible }}", name="<b>x</b>\u2067<script>")
    assert "<b>" not in shown and "<script>" not in shown
    assert shown.startswith("&lt;b&gt;x&lt;/b&gt;<span") and shown.endswith("&lt;script&gt;")


def test_plain_text_is_left_as_it_is_and_still_escaped():
    assert render("{{ name|bidi_visible }}", name="a & b.txt") == "a &amp; b.txt"
    assert bidi_visible(None) is None


def test_text_already_escaped_is_not_escaped_twice():
    assert str(bidi_visible(mark_safe("a&amp;b\u202e"))).startswith("a&amp;b<span")


def test_attributes_and_titles_get_the_plain_form():
    assert bidi_plain("x\u202ey") == "x<U+202E>y"
    assert render('<a title="{{ name|bidi_plain }}">', name="x\u202ey") == '<a title="x&lt;U+202E&gt;y">'


def test_a_column_label_comes_from_the_header_row():
    assert column_label(["name", "value"], 1) == "value"
    assert column_label(["name"], 3) == ""
