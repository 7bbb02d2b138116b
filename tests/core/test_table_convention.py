"""Every dashboard table stacks into labelled cards on a narrow screen: each <table> in
templates/ has the class ``stack`` and each cell a ``data-label`` (a cell spanning the row,
``colspan``, needs none). A page added without them fails here, before it squeezes on a phone."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def _tags(name: str) -> list[tuple[Path, str]]:
    found = []
    for template in sorted(TEMPLATES.rglob("*.html")):
        found += [(template, tag) for tag in re.findall(rf"<{name}\b[^>]*>", template.read_text())]
    return found


def test_every_table_stacks():
    tables = _tags("table")
    assert tables
    flat = [
        f"{path.relative_to(TEMPLATES)}: {tag}" for path, tag in tables if not re.search(r'class="[^"]*\bstack\b', tag)
    ]
    assert not flat, "tables without class stack:\n" + "\n".join(flat)


def test_every_cell_is_labelled_with_its_column():
    cells = _tags("td")
    assert cells
    bare = [
        f"{path.relative_to(TEMPLATES)}: {tag}"
        for path, tag in cells
        if "data-label=" not in tag and "colspan=" not in tag
    ]
    assert not bare, "cells without data-label:\n" + "\n".join(bare)
