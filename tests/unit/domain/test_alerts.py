"""Alerts to incident actions: naming, de-duplication, routing, severity, resolution."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from opsledger.domain.alerts import Routing, action_for, actions, incident_name, levels
from opsledger.domain.priority import priority
from opsledger.models.alertmanager import Alert, Notification

ROUTING = Routing(default_namespace="ops")


def _alert(status: str = "firing", **labels: str) -> Alert:
    return Alert.model_validate(
        {
            "status": status,
            "labels": {"alertname": "CheckoutErrors", **labels},
            "annotations": {"summary": "5xx above 5 %", "description": "Checkout fails."},
            "startsAt": "2026-11-25T10:00:00.123Z",
            "endsAt": "2026-11-25T10:30:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph?g0.expr=x",
            "fingerprint": "c0ffee0123456789",
        }
    )


def test_repeats_and_the_resolution_of_one_occurrence_name_the_same_incident() -> None:
    firing, again, resolved = _alert(), _alert(), _alert("resolved")
    assert incident_name(firing) == incident_name(again) == incident_name(resolved)
    assert incident_name(firing) == f"alert-c0ffee0123456789-{1795600800}"


def test_a_new_occurrence_of_the_same_alert_is_a_new_incident() -> None:
    later = _alert().model_copy(update={"starts_at": _alert().starts_at.replace(hour=12)})
    assert incident_name(later) != incident_name(_alert())


def test_an_alert_without_fingerprint_is_named_by_its_labels() -> None:
    a = _alert(service="shop").model_copy(update={"fingerprint": ""})
    b = _alert(service="shop").model_copy(update={"fingerprint": ""})
    c = _alert(service="cart").model_copy(update={"fingerprint": ""})
    assert incident_name(a) == incident_name(b) != incident_name(c)


def test_a_firing_alert_opens_an_incident_for_its_service_and_items() -> None:
    action = action_for(
        _alert(
            severity="critical",
            namespace="shop",
            service="checkout",
            configuration_item="checkout-api, payments-db,Not_A_Name",
        ),
        ROUTING,
        resolve=True,
    )
    assert action is not None
    assert action.kind == "open"
    assert action.namespace == "shop"
    spec: dict[str, Any] = action.spec
    assert spec["title"] == "CheckoutErrors: 5xx above 5 %"
    assert spec["service"] == "checkout"
    assert spec["configurationItems"] == ["checkout-api", "payments-db"]
    assert priority(spec["impact"], spec["urgency"]).value == "P1"
    assert spec["origin"] == {"type": "alertmanager", "reference": "c0ffee0123456789"}
    assert "Source: http://prometheus/graph" in spec["description"]
    assert action.labels["opsledger.io/alertname"] == "CheckoutErrors"


def test_an_alert_without_a_usable_namespace_goes_to_the_default_one() -> None:
    assert action_for(_alert(), ROUTING, resolve=True).namespace == "ops"  # type: ignore[union-attr]
    bad = action_for(_alert(namespace="Not Valid"), ROUTING, resolve=True)
    assert bad is not None
    assert bad.namespace == "ops"


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"severity": "critical"}, "P1"),
        ({"severity": "warning"}, "P3"),
        ({"severity": "info"}, "P5"),
        ({"severity": "unheard-of"}, "P3"),
        ({"severity": "info", "impact": "high", "urgency": "High"}, "P1"),
    ],
)
def test_severity_and_explicit_labels_set_the_priority(
    labels: dict[str, str], expected: str
) -> None:
    impact, urgency = levels(labels)
    assert priority(impact, urgency).value == expected


def test_a_resolved_alert_resolves_unless_configured_not_to() -> None:
    action = action_for(_alert("resolved"), ROUTING, resolve=True)
    assert action is not None
    assert action.kind == "resolve"
    assert "resolved at 2026-11-25T10:30:00Z" in action.resolution
    assert action_for(_alert("resolved"), ROUTING, resolve=False) is None


def test_a_notification_maps_every_alert_in_order() -> None:
    notification = Notification.model_validate(
        {
            "status": "firing",
            "alerts": [
                _alert(service="a").model_dump(by_alias=True, mode="json"),
                _alert("resolved", service="b").model_dump(by_alias=True, mode="json"),
            ],
        }
    )
    assert [a.kind for a in actions(notification, ROUTING, resolve=True)] == ["open", "resolve"]


def test_a_body_that_is_not_a_notification_is_refused() -> None:
    with pytest.raises(ValidationError):
        Notification.model_validate({"status": "firing", "alerts": [{"labels": {}}]})


def test_alerts_about_incidents_opsledger_opens_itself_are_skipped() -> None:
    managed = _alert(opsledger_incident="managed")
    assert action_for(managed, ROUTING, resolve=True) is None
    assert (
        action_for(_alert("resolved", opsledger_incident="managed"), ROUTING, resolve=True) is None
    )


def test_an_alert_that_says_a_state_opens_no_incident() -> None:
    # OpsLedgerChangeFreeze fires for as long as a freeze lasts: a state, not an incident
    freeze = _alert(alertname="OpsLedgerChangeFreeze", opsledger_incident="none")
    assert action_for(freeze, ROUTING, resolve=True) is None
    assert action_for(_alert(alertname="Other"), ROUTING, resolve=True) is not None
