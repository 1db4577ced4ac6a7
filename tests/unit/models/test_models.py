"""The models reject what the CRD schema cannot express, with messages that name the field."""

import pytest
from pydantic import ValidationError

from opsledger.domain.validation import describe
from opsledger.models.change import ChangeSpec
from opsledger.models.incident import IncidentSpec
from opsledger.models.servicelevel import ServiceLevelSpec


def _error(model: type, data: dict) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return describe(info.value)


def test_a_bad_cron_expression_names_the_field_and_shows_the_form() -> None:
    message = _error(
        ServiceLevelSpec,
        {"service": "shop", "maintenanceWindows": [{"schedule": "0 25 * * 6", "duration": "4h"}]},
    )
    assert message.startswith("spec.maintenanceWindows.0.schedule:")
    assert "is not a five-field cron expression" in message
    assert '"0 22 * * 6"' in message


def test_cron_forms_other_tools_read_differently_are_refused() -> None:
    # Seconds (six fields), random and hashed values, L/W/#/?: croniter accepts them all, and
    # "0 0 1W * *" it would silently read as "0 0 1 * *".
    for schedule in ["0 0 22 * * 6", "R R * * *", "H * * * *", "0 0 1W * *", "0 0 * * 1#2"]:
        message = _error(
            ServiceLevelSpec,
            {"service": "shop", "maintenanceWindows": [{"schedule": schedule, "duration": "4h"}]},
        )
        assert "seconds, R, H, L, W, # and ? are not supported" in message, schedule
    accepted = ServiceLevelSpec.model_validate(
        {"service": "shop", "maintenanceWindows": [{"schedule": "@weekly", "duration": "4h"}]}
    )
    assert accepted.maintenance_windows[0].schedule == "@weekly"


def test_an_unknown_time_zone_is_rejected() -> None:
    message = _error(
        ServiceLevelSpec,
        {
            "service": "shop",
            "maintenanceWindows": [
                {"schedule": "0 22 * * 6", "duration": "4h", "timeZone": "Mars/Olympus"}
            ],
        },
    )
    assert "spec.maintenanceWindows.0.timeZone" in message
    assert "IANA time zone" in message


def test_a_valid_service_level_reads_back_in_camel_case() -> None:
    spec = ServiceLevelSpec.model_validate(
        {
            "service": "shop",
            "maintenanceWindows": [
                {"schedule": "0 22 * * 6", "duration": "4h", "timeZone": "Europe/Berlin"}
            ],
            "incidentTargets": [{"priority": "P1", "respond": "15m", "resolve": "4h"}],
        }
    )
    wire = spec.to_wire()
    assert wire["maintenanceWindows"][0]["timeZone"] == "Europe/Berlin"
    assert wire["incidentTargets"][0]["priority"] == "P1"


def test_a_change_window_ending_before_it_starts_is_rejected() -> None:
    message = _error(
        ChangeSpec,
        {
            "type": "normal",
            "summary": "x",
            "service": "shop",
            "schedule": {"notBefore": "2026-12-01T22:00:00Z", "notAfter": "2026-12-01T21:00:00Z"},
        },
    )
    assert "spec.schedule" in message
    assert "notAfter must be later than" in message


def test_a_health_check_needs_exactly_one_threshold() -> None:
    base = {"type": "emergency", "summary": "x", "service": "shop"}
    both = {"name": "err", "query": "up", "below": 1, "above": 0}
    assert "exactly one of below or above" in _error(
        ChangeSpec, {**base, "checks": {"pre": [both]}}
    )
    neither = {"name": "err", "query": "up"}
    assert "exactly one" in _error(ChangeSpec, {**base, "checks": {"post": [neither]}})


def test_go_durations_are_checked() -> None:
    message = _error(
        ChangeSpec, {"type": "normal", "summary": "x", "service": "shop", "soak": "1 minute"}
    )
    assert message.startswith("spec.soak:")


def test_resolving_an_incident_needs_a_resolution() -> None:
    message = _error(IncidentSpec, {"title": "down", "state": "Resolved"})
    assert "spec.resolution" in message
    resolved = IncidentSpec.model_validate(
        {"title": "down", "state": "Resolved", "resolution": "restarted the pod"}
    )
    assert resolved.state == "Resolved"


def test_unknown_fields_are_rejected_not_ignored() -> None:
    message = _error(IncidentSpec, {"title": "down", "severity": "high"})
    assert "spec.severity" in message


def _level(error_query: str, total_query: str) -> dict[str, object]:
    events = {"errorQuery": error_query, "totalQuery": total_query}
    objective = {
        "name": "availability",
        "objective": 99.9,
        "window": "30d",
        "sli": {"events": events},
    }
    return {"service": "shop", "objectives": [objective]}


def test_a_query_must_be_exactly_one_promql_expression() -> None:
    # It would close its place in a batched query and add series under another key.
    forged = 'label_replace(vector(1), "slo", "pay/pay/availability", "", "")'
    escape = f"x[{{{{.window}}}}]) or {forged} or sum(y"
    message = _error(ServiceLevelSpec, _level(escape, "vector(1)"))
    assert "errorQuery" in message
    assert "is not one PromQL expression: unexpected right parenthesis" in message
    # {{.window}} and a comment are fine.
    fine = _level(
        "sum(rate(errors_total[{{ .window }}])) # 5xx", "sum(rate(requests_total[{{.window}}]))"
    )
    spec = ServiceLevelSpec.model_validate(fine)
    assert spec.objectives[0].sli.events.error_query.endswith("# 5xx")
