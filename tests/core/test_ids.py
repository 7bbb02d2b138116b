"""Ids drawn many at a time look like the ones drawn one at a time and never repeat."""

from __future__ import annotations

import re

from core.ids import new_id, new_ids

SHAPE = re.compile(r"^blb_[0-9a-z]{25}$")


def test_ids_drawn_at_once_have_the_shape_of_one_and_are_all_different():
    ids = new_ids("blb", 5000)
    assert len(set(ids)) == 5000
    assert all(SHAPE.match(value) for value in ids) and SHAPE.match(new_id("blb"))
    assert new_ids("blb", 0) == []
