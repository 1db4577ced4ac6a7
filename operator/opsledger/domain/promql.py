"""PromQL text shared by the batched queries."""

from __future__ import annotations

from collections.abc import Sequence


def union(parts: Sequence[str]) -> str:
    """`parts` joined with `or` as a balanced tree: ((a or b) or (c or d)).

    A flat chain `a or b or c …` nests one level per part, so Prometheus parses it that deep and
    merges an ever larger left side at each step (quadratic in the parts); balanced, both the
    depth and the merging grow with log2 of the parts. The answer is the same set of series.
    """
    if not parts:
        raise ValueError("a union of no PromQL expressions")
    if len(parts) == 1:
        return parts[0]
    middle = len(parts) // 2
    return f"({union(parts[:middle])} or {union(parts[middle:])})"


def embedded(query: str) -> str:
    """A user's query as one operand of a batched query: parenthesised, on lines of its own.

    The query has been parsed as exactly one expression (models.common.one_promql_expression), so
    in parentheses it stays one operand; the line breaks end any comment it closes with, which
    would otherwise swallow the rest of the batch.
    """
    return f"(\n{query}\n)"
