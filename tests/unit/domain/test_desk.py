"""The service desk's rules: whose word it takes for who is asking, its CSRF tokens, its lists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsledger.domain.desk import (
    IdentityError,
    IncidentFilter,
    Person,
    bearer,
    calendar_days,
    csrf_token,
    csrf_valid,
    incident_name,
    incidents,
    parse_networks,
    period,
    person_from,
    person_from_review,
    services,
)

PROXY = parse_networks(["10.0.0.5/32", "fd00::/8"])
HEADERS = {
    "X-Forwarded-User": "jane",
    "X-Forwarded-Email": "jane@example.com",
    "X-Forwarded-Groups": "team-shop, sre",
}
NOW = datetime(2026, 12, 2, 14, 5, tzinfo=UTC)


def test_the_proxys_headers_name_the_person_only_from_the_proxy() -> None:
    jane = person_from(HEADERS, "10.0.0.5", PROXY)
    assert jane == Person("jane", "jane@example.com", ("team-shop", "sre"))
    assert jane is not None
    assert jane.shown == "jane@example.com"
    # The same headers sent straight to the desk, from anywhere else, are nobody's.
    assert person_from(HEADERS, "10.0.0.6", PROXY) is None
    assert person_from(HEADERS, None, PROXY) is None
    assert person_from(HEADERS, "not an address", PROXY) is None
    assert person_from(HEADERS, "10.0.0.5", []) is None  # no proxy configured: nobody
    assert person_from({}, "10.0.0.5", PROXY) is None


def test_a_proxy_header_claiming_a_kubernetes_identity_is_refused() -> None:
    for forged in (
        {"X-Forwarded-User": "system:admin"},
        {"X-Forwarded-User": "jane", "X-Forwarded-Groups": "system:masters"},
        {"X-Forwarded-User": "jane\nImpersonate-User: admin"},
    ):
        with pytest.raises(IdentityError):
            person_from(forged, "10.0.0.5", PROXY)


def test_a_bad_allow_list_entry_is_named() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0/33' is not an address or network"):
        parse_networks(["10.0.0/33"])


def test_a_form_token_is_the_persons_own_and_expires() -> None:
    secret = b"s" * 32
    jane = Person("jane", None, ("team-shop",))
    bob = Person("bob", None, ("team-shop",))
    token = csrf_token(secret, jane, NOW)
    assert csrf_valid(secret, jane, token, NOW + timedelta(hours=1))
    assert not csrf_valid(secret, bob, token, NOW)  # another person's
    assert not csrf_valid(secret, Person("jane", None, ("sre",)), token, NOW)  # other groups
    assert not csrf_valid(b"t" * 32, jane, token, NOW)  # another desk's
    assert not csrf_valid(secret, jane, token, NOW + timedelta(hours=9))  # expired
    expires, _, mac = token.partition(".")
    later = str(int(expires) + 3600)
    assert not csrf_valid(secret, jane, f"{later}.{mac}", NOW)  # an expiry pushed out
    assert not csrf_valid(secret, jane, "", NOW)


def _incident(name: str, priority: str, state: str, service: str, created: str) -> dict:
    return {
        "metadata": {"namespace": "shop", "name": name, "creationTimestamp": created},
        "spec": {"title": name, "state": state, "service": service},
        "status": {"priority": priority},
    }


ITEMS = [
    _incident("slow", "P3", "New", "checkout", "2026-12-02T10:00:00Z"),
    _incident("down", "P1", "Acknowledged", "checkout", "2026-12-02T09:00:00Z"),
    _incident("old", "P1", "Resolved", "checkout", "2026-12-01T09:00:00Z"),
    _incident("search", "P2", "New", "search", "2026-12-02T11:00:00Z"),
]


def test_incidents_filter_by_priority_state_and_service_most_urgent_first() -> None:
    assert [i["metadata"]["name"] for i in incidents(ITEMS, IncidentFilter())] == [
        "down",
        "old",
        "search",
        "slow",
    ]
    open_checkout = IncidentFilter(state="open", service="checkout")
    assert [i["metadata"]["name"] for i in incidents(ITEMS, open_checkout)] == ["down", "slow"]
    assert [i["metadata"]["name"] for i in incidents(ITEMS, IncidentFilter(priority="P1"))] == [
        "down",
        "old",
    ]
    assert [i["metadata"]["name"] for i in incidents(ITEMS, IncidentFilter(state="New"))] == [
        "search",
        "slow",
    ]


def test_a_service_row_has_its_objectives_as_measured_and_its_open_incidents() -> None:
    level = {
        "metadata": {"namespace": "shop", "name": "checkout"},
        "spec": {
            "service": "checkout",
            "objectives": [{"name": "availability", "objective": 99.9}, {"name": "latency"}],
        },
        "status": {
            "objectives": [{"name": "availability", "sli": 99.95, "errorBudgetRemaining": 0.5}],
            "conditions": [{"type": "Ready", "reason": "Measured"}],
        },
    }
    [row] = services([level], ITEMS)
    assert row.open_incidents == 2
    assert row.objectives[0] == {
        "name": "availability",
        "objective": 99.9,
        "sli": 99.95,
        "budget": 0.5,
    }
    assert row.objectives[1]["budget"] is None
    assert row.ready == "Measured"


def test_a_reported_issue_is_named_after_its_title_and_time() -> None:
    assert incident_name("Checkout is SLOW!", NOW) == "checkout-is-slow-20261202-140500"
    assert incident_name("!!!", NOW) == "issue-20261202-140500"
    assert len(incident_name("x" * 300, NOW)) <= 63


def test_a_week_starts_on_monday_and_a_month_covers_whole_weeks() -> None:
    wednesday = datetime(2026, 12, 2, 15, 30, tzinfo=UTC)
    assert period("week", wednesday) == (datetime(2026, 11, 30, tzinfo=UTC), 7)
    start, days = period("month", wednesday)
    assert start == datetime(2026, 11, 30, tzinfo=UTC)  # the Monday before 1 December
    assert days == 35  # to Sunday 3 January
    assert start + timedelta(days=days) > datetime(2027, 1, 1, tzinfo=UTC)


def test_an_entry_is_shown_on_every_day_it_touches_with_that_days_hours() -> None:
    start = datetime(2026, 11, 30, tzinfo=UTC)
    freeze = (
        "shop",
        start + timedelta(hours=20),
        start + timedelta(days=1, hours=6),
        "freeze",
        "f",
    )
    days = calendar_days([freeze], start, 7)
    assert days[0].items == [("shop", "freeze", "f", "20:00–00:00")]
    assert days[1].items == [("shop", "freeze", "f", "00:00–06:00")]
    assert days[2].items == []


def test_a_window_every_minute_is_summed_up_not_listed_1440_times() -> None:
    start = datetime(2026, 11, 30, tzinfo=UTC)
    windows = [
        (
            "shop",
            start + timedelta(minutes=m),
            start + timedelta(minutes=m, seconds=30),
            "window",
            "w",
        )
        for m in range(600)
    ]
    freeze = ("pay", start + timedelta(hours=1), start + timedelta(hours=2), "freeze", "f")
    [day] = calendar_days([*windows, freeze], start, 1)
    assert day.items[:2] == [
        ("shop", "window", "w", "00:00–00:00"),
        ("shop", "window", "w", "00:01–00:01"),
    ]
    assert ("shop", "window", "w: 598 more times, until 09:59", "…") in day.items
    assert ("pay", "freeze", "f", "01:00–02:00") in day.items  # others are not swallowed
    assert len(day.items) == 4


def test_a_reviewed_token_is_a_person_or_a_service_account_never_a_superuser() -> None:
    sa = person_from_review(
        "system:serviceaccount:shop:reporter",
        ["system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated"],
    )
    assert sa.username == "system:serviceaccount:shop:reporter"
    assert "system:authenticated" not in sa.groups  # the API server adds it itself
    assert person_from_review("jane", ["team-shop"]).groups == ("team-shop",)
    with pytest.raises(IdentityError, match="not a person"):
        person_from_review("system:kube-controller-manager", [])
    with pytest.raises(IdentityError, match="system:masters"):
        person_from_review("root", ["system:masters"])
    assert bearer({"Authorization": "Bearer abc"}) == "abc"
    assert bearer({"Authorization": "Basic abc"}) is None
    assert bearer({"Authorization": "Bearer "}) is None
    assert bearer({}) is None
