"""The balanced `or` of batched queries."""

from __future__ import annotations

import pytest

from opsledger.domain.promql import union


def test_a_union_nests_by_halves_and_keeps_every_part_in_order() -> None:
    assert union(["a"]) == "a"
    assert union(["a", "b"]) == "(a or b)"
    assert union(["a", "b", "c", "d", "e"]) == "((a or b) or (c or (d or e)))"
    parts = [f"q{i}" for i in range(1000)]
    text = union(parts)
    assert [p.strip("()") for p in text.split(" or ")] == parts
    # nesting grows with log2 of the parts, not with their number
    depth = max_depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        max_depth = max(max_depth, depth)
    assert max_depth == 10


def test_a_union_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no PromQL"):
        union([])
