"""ServiceLevel: objectives, error budget, change windows, freezes and incident targets."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import ConfigDict, Field, field_validator, model_validator

from opsledger.models.common import (
    PROM_DURATION_PATTERN,
    CamelModel,
    GoDuration,
    LatencyObjective,
    Performance,
    PromQL,
    StatusBase,
)
from opsledger.models.request import CatalogEntry, RequestTarget


class Priority(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"
    P5 = "P5"


class EventsSLI(CamelModel):
    """An SLI as the ratio of bad events to all events (Sloth's `events`)."""

    error_query: PromQL = Field(
        description=(
            "PromQL counting bad events per second; {{.window}} is replaced by the window, "
            'e.g. sum(rate(http_requests_total{code=~"5.."}[{{.window}}])).'
        ),
        min_length=1,
        max_length=4096,
    )
    total_query: PromQL = Field(
        description="PromQL counting all events per second, with the same {{.window}}.",
        min_length=1,
        max_length=4096,
    )


class SLI(CamelModel):
    """How the service level is measured."""

    events: EventsSLI = Field(description="The SLI as errors over total events.")


class Objective(CamelModel):
    """One service level objective."""

    name: str = Field(
        description="Name of the objective, e.g. availability.",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=63,
    )
    description: str | None = Field(default=None, description="What is promised.", max_length=1024)
    objective: float = Field(
        description="Target in percent of good events, e.g. 99.9.", gt=0, lt=100
    )
    window: str = Field(
        default="30d",
        description="The rolling window the objective is measured over, e.g. 28d or 30d.",
        pattern=PROM_DURATION_PATTERN,
        max_length=16,
    )
    sli: SLI = Field(description="The service level indicator.")


# The cron dialect: five fields (minute hour day-of-month month day-of-week), each a list of `*`,
# a number or a three-letter name, a range a-b, with an optional step /n; or one of the
# @yearly/@annually/@monthly/@weekly/@daily/@midnight/@hourly macros. No seconds field, no
# random (R) or hashed (H) values, no L, W, # or ?: they are not standard cron, and not all tools
# that read the same windows (Argo CD, kured, CI) agree on them. RE2 and Python read it alike.
_CRON_ITEM = r"([*]|[0-9]{1,2}|[A-Za-z]{3})(-([0-9]{1,2}|[A-Za-z]{3}))?(/[0-9]{1,2})?"
_CRON_FIELD = f"{_CRON_ITEM}(,{_CRON_ITEM})*"
CRON_DIALECT = (
    rf"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
    rf"|{_CRON_FIELD}( +{_CRON_FIELD}){{4}})$"
)
CRON_HELP = (
    "use five fields (minute hour day-of-month month day-of-week) of numbers, names, *, "
    'ranges a-b, steps /n and lists, e.g. "0 22 * * 6"; seconds, R, H, L, W, # and ? '
    "are not supported"
)


class _Recurring(CamelModel):
    """A recurring period: opens on a cron schedule, read in an IANA zone, for a duration."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"self.schedule.matches('{CRON_DIALECT}')",
                    "message": f"schedule is not a five-field cron expression: {CRON_HELP}",
                    "fieldPath": ".schedule",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    )

    schedule: str = Field(
        description='When it opens, as a cron expression, e.g. "0 22 * * 6".',
        min_length=6,
        max_length=128,
    )
    duration: GoDuration = Field(description="How long it lasts, e.g. 4h.")
    time_zone: str = Field(
        default="UTC",
        description="IANA time zone the schedule is read in, e.g. Europe/Berlin.",
        max_length=64,
    )

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if not re.fullmatch(CRON_DIALECT, value) or not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a five-field cron expression: {CRON_HELP}")
        return value

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)


def known_zone(value: str) -> str:
    """`value` if it names an IANA time zone, else a ValueError saying how to name one."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"{value!r} is not an IANA time zone: use a name such as Europe/Berlin or UTC"
        ) from exc
    return value


class MaintenanceWindow(_Recurring):
    """A recurring period in which changes may start (an allow window)."""


class Blackout(_Recurring):
    """A recurring period in which no change but an emergency may start (a deny window), e.g.
    "no changes on Friday after 15:00": {schedule: "0 15 * * 5", duration: 57h}."""

    reason: str = Field(
        description="Why changes are held, shown in every denial.", min_length=1, max_length=1024
    )


class CalendarReference(CamelModel):
    """A shared calendar of the CMDB repository, `calendars/<name>.ics` (iCalendar, RFC 5545, as
    Outlook and Google Calendar export it): every event is a freeze."""

    name: str = Field(
        description="The file's name in calendars/ without .ics, e.g. public-holidays-de.",
        pattern=r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$",
        min_length=1,
        max_length=128,
    )
    time_zone: str = Field(
        default="UTC",
        description="The zone all-day and floating events are read in, e.g. Europe/Berlin.",
        max_length=64,
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)


class Freeze(CamelModel):
    """A period in which no normal or standard change may start."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "timestamp(self.end) > timestamp(self.start)",
                    "message": "a freeze must end after it starts: move end after start",
                    "fieldPath": ".end",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    )

    start: datetime = Field(description="Start of the freeze (RFC 3339).")
    end: datetime = Field(description="End of the freeze (RFC 3339); after start.")
    reason: str = Field(description="Why changes are frozen.", min_length=1, max_length=1024)

    @model_validator(mode="after")
    def _end_after_start(self) -> Freeze:
        if self.end <= self.start:
            raise ValueError("a freeze must end after it starts")
        return self


class ErrorBudgetPolicy(CamelModel):
    """What happens when the error budget runs low."""

    block_normal_changes: bool = Field(
        default=True,
        description="Hold normal changes while any objective's budget is below minRemaining.",
    )
    min_remaining: float = Field(
        default=0.0,
        description="Fraction of the budget that must be left for normal changes, e.g. 0.1.",
        ge=0,
        le=1,
    )


class IncidentTarget(CamelModel):
    """Response and resolution targets for incidents of one priority."""

    priority: Priority = Field(description="P1 (highest) to P5.")
    respond: GoDuration = Field(description="Time to acknowledge, e.g. 15m.")
    resolve: GoDuration = Field(description="Time to resolve, e.g. 4h.")


class ServiceLevelSpec(CamelModel):
    """The service's promises and the rules for changing it."""

    service: str = Field(
        description="The service this applies to; Changes and Incidents refer to it by name.",
        min_length=1,
        max_length=253,
    )
    description: str | None = Field(default=None, description="About the service.")
    objectives: list[Objective] = Field(
        default_factory=list,
        description="Service level objectives (Sloth-compatible).",
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    latency: LatencyObjective | None = Field(
        default=None,
        description="How fast the service must answer, e.g. {quantile: 0.99, threshold: 300ms}: "
        "the objective of each of its ConfigurationItems whose spec.monitoring.latency does not "
        "say otherwise. An item above it is Degraded.",
    )
    maintenance_windows: list[MaintenanceWindow] = Field(
        default_factory=list,
        description="When changes may start. Without any, normal changes may start at any time.",
        max_length=32,
    )
    freezes: list[Freeze] = Field(
        default_factory=list,
        description="Periods in which changes are frozen (emergency changes excepted).",
        max_length=64,
    )
    blackouts: list[Blackout] = Field(
        default_factory=list,
        description="Recurring periods in which changes are held (emergency changes excepted); "
        "a blackout wins over a maintenance window.",
        max_length=32,
    )
    calendars: list[CalendarReference] = Field(
        default_factory=list,
        description="Shared calendars (calendars/<name>.ics in the CMDB repository) whose events "
        "are freezes, e.g. public holidays.",
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    error_budget_policy: ErrorBudgetPolicy | None = Field(
        default=None, description="How the error budget gates changes."
    )
    incident_targets: list[IncidentTarget] = Field(
        default_factory=list,
        description="Respond and resolve targets per incident priority.",
        max_length=5,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["priority"],
        },
    )
    request_targets: list[RequestTarget] = Field(
        default_factory=list,
        description="Fulfilment targets for service requests of this service's catalog items: "
        "the first whose item glob matches applies.",
        max_length=32,
    )


class ObjectiveStatus(CamelModel):
    """The measured state of one objective."""

    name: str = Field(description="The objective's name.")
    sli: float | None = Field(default=None, description="Measured SLI over the window, percent.")
    error_budget_remaining: float | None = Field(
        default=None, description="Fraction of the error budget left: 1 untouched, 0 spent."
    )
    burn_rates: dict[str, float] = Field(
        default_factory=dict,
        description="Burn rate per evaluation window (5m, 30m, 1h, 2h, 6h, 1d, 3d); a window "
        "without data is left out.",
    )
    alerts: list[str] = Field(default_factory=list, description="Firing alert kinds: page, ticket.")
    evaluated_at: datetime | None = Field(default=None, description="When it was measured.")


class BudgetExclusion(CamelModel):
    """Time left out of objectives' error budget: a Change that declared plannedImpact, from
    when its plan started until it completed. Provisional while it is in progress (a change
    that fails or is rolled back keeps nothing out)."""

    change: str = Field(description="The Change, in this namespace.", max_length=253)
    objectives: list[str] = Field(description="The objectives it is left out of.")
    start: datetime = Field(description="When the change's plan started.")
    end: datetime | None = Field(
        default=None, description="When it completed; unset while it is in progress."
    )
    state: str = Field(description="InProgress (provisional) or Completed.")


class ServiceLevelStatus(StatusBase):
    """The service's measured levels. Measured=False means unknown: the values below are the last
    ones measured, and changes gated on this service wait."""

    objectives: list[ObjectiveStatus] = Field(
        default_factory=list, description="One entry per objective."
    )
    catalog: list[CatalogEntry] = Field(
        default_factory=list,
        description="The service catalog's items for this service (catalog/ on the CMDB's "
        "protected branch), as the service desk offers them.",
        max_length=100,
    )
    catalog_commit: str | None = Field(
        default=None, description="The CMDB commit the catalog was read at."
    )
    budget_exclusions: list[BudgetExclusion] = Field(
        default_factory=list,
        description="Planned work left out of the error budget (Changes with plannedImpact), "
        "while it falls inside an objective's window.",
    )
    availability: dict[str, float] | None = Field(
        default=None,
        description="Availability of the service in percent over 1d, 7d and 30d: per window the "
        "lowest of its ConfigurationItems' (the service is no more available than its least "
        "available part).",
    )
    performance: Performance | None = Field(
        default=None,
        description="Latency of the service per quantile: the slowest of its ConfigurationItems' "
        "(where request histograms exist), against spec.latency.",
    )
