import pytest

from opsledger.domain.selectors import SelectorError, parse

LABELS = {"app": "web", "tier": "frontend", "env": "prod"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app=api", False),
        ("app=web,tier!=db", True),
        ("env in (prod, staging)", True),
        ("env notin (prod)", False),
        ("env in (a,b),app=web", False),
        ("tier", True),
        ("!legacy", True),
        ("!tier", False),
        ("opsledger.io/discover=true", False),
    ],
)
def test_selectors_match_like_kubernetes(selector: str, expected: bool) -> None:
    assert parse(selector).matches(LABELS) is expected


def test_a_bad_selector_says_what_it_could_not_read() -> None:
    with pytest.raises(SelectorError, match="cannot read 'app=~web'"):
        parse("app=~web")
