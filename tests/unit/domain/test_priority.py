import pytest

from opsledger.domain.priority import ITIL_DEFAULT, matrix_with, priority
from opsledger.models.incident import Level
from opsledger.models.servicelevel import Priority


@pytest.mark.parametrize(
    ("impact", "urgency", "expected"),
    [
        ("high", "high", "P1"),
        ("high", "medium", "P2"),
        ("medium", "high", "P2"),
        ("high", "low", "P3"),
        ("medium", "medium", "P3"),
        ("low", "high", "P3"),
        ("medium", "low", "P4"),
        ("low", "medium", "P4"),
        ("low", "low", "P5"),
    ],
)
def test_itil_default_matrix(impact: str, urgency: str, expected: str) -> None:
    assert priority(impact, urgency) == expected


def test_the_matrix_is_complete_and_monotonic() -> None:
    order = [Level.HIGH, Level.MEDIUM, Level.LOW]
    assert len(ITIL_DEFAULT) == 9
    for i, impact in enumerate(order):
        for j, urgency in enumerate(order):
            here = int(ITIL_DEFAULT[(impact, urgency)].value[1])
            if i + 1 < 3:  # lower impact never raises priority
                assert int(ITIL_DEFAULT[(order[i + 1], urgency)].value[1]) >= here
            if j + 1 < 3:
                assert int(ITIL_DEFAULT[(impact, order[j + 1])].value[1]) >= here


def test_a_custom_matrix_replaces_the_default() -> None:
    everything_urgent = dict.fromkeys(ITIL_DEFAULT, Priority.P1)
    assert priority("low", "low", everything_urgent) == "P1"


def test_cells_from_the_settings_replace_only_those_cells() -> None:
    matrix = matrix_with({"high/medium": Priority.P1, "low/high": Priority.P2})
    assert priority("high", "medium", matrix) == Priority.P1
    assert priority("low", "high", matrix) == Priority.P2
    assert priority("medium", "medium", matrix) == Priority.P3  # the default's
