"""Incident priority from impact × urgency: ITIL's default 3×3 matrix, replaceable."""

from __future__ import annotations

from collections.abc import Mapping

from opsledger.models.incident import Level
from opsledger.models.servicelevel import Priority

Matrix = Mapping[tuple[Level, Level], Priority]

# rows: impact; columns: urgency (high, medium, low)
ITIL_DEFAULT: Matrix = {
    (Level.HIGH, Level.HIGH): Priority.P1,
    (Level.HIGH, Level.MEDIUM): Priority.P2,
    (Level.HIGH, Level.LOW): Priority.P3,
    (Level.MEDIUM, Level.HIGH): Priority.P2,
    (Level.MEDIUM, Level.MEDIUM): Priority.P3,
    (Level.MEDIUM, Level.LOW): Priority.P4,
    (Level.LOW, Level.HIGH): Priority.P3,
    (Level.LOW, Level.MEDIUM): Priority.P4,
    (Level.LOW, Level.LOW): Priority.P5,
}


def priority(impact: str, urgency: str, matrix: Matrix = ITIL_DEFAULT) -> Priority:
    """The priority of an incident with this impact and urgency."""
    return matrix[(Level(impact), Level(urgency))]


def matrix_with(cells: Mapping[str, Priority], base: Matrix = ITIL_DEFAULT) -> Matrix:
    """`base` with some cells replaced; `cells` maps "impact/urgency" to a priority."""
    matrix = dict(base)
    for cell, value in cells.items():
        impact, _, urgency = cell.partition("/")
        matrix[(Level(impact), Level(urgency))] = Priority(value)
    return matrix
