"""Ids drawn many at a time look like the ones drawn one at a time, never repeat, and sort by the
time they were drawn."""

from __future__ import annotations

import re

import core.ids as ids

SHAPE = re.compile(r"^blb_[0-9a-z]{25}$")


def test_ids_drawn_at_once_have_the_shape_of_one_and_are_all_different():
    drawn = ids.new_ids("blb", 5000)
    assert len(set(drawn)) == 5000
    assert all(SHAPE.match(value) for value in drawn) and SHAPE.match(ids.new_id("blb"))
    assert ids.new_ids("blb", 0) == []


def test_ids_drawn_later_sort_after_the_earlier_ones(monkeypatch):
    monkeypatch.setattr(ids, "_now_ms", lambda: 1_800_000_000_000)
    earlier = ids.new_ids("blb", 100)
    monkeypatch.setattr(ids, "_now_ms", lambda: 1_800_000_000_001)
    later = ids.new_ids("blb", 100)
    assert max(earlier) < min(later)
