"""Pydantic models of every spec and status: the single source of truth for `crds/`."""

from __future__ import annotations

from opsledger.models.change import ChangeSpec, ChangeStatus
from opsledger.models.common import API_GROUP, API_VERSION, CATEGORY
from opsledger.models.configitem import ConfigurationItemSpec, ConfigurationItemStatus
from opsledger.models.crd import KindInfo, PrinterColumn, ready_columns
from opsledger.models.incident import IncidentSpec, IncidentStatus
from opsledger.models.request import ServiceRequestSpec, ServiceRequestStatus
from opsledger.models.servicelevel import ServiceLevelSpec, ServiceLevelStatus

INCIDENT = KindInfo(
    kind="Incident",
    plural="incidents",
    short_names=("inc",),
    description=(
        "An unplanned interruption or degradation of a service: priority from impact and "
        "urgency, SLA timers from the service's ServiceLevel, and a timeline."
    ),
    spec=IncidentSpec,
    status=IncidentStatus,
    columns=(
        PrinterColumn("Priority", ".status.priority", description="P1 (highest) to P5."),
        PrinterColumn("State", ".spec.state"),
        PrinterColumn("Service", ".spec.service"),
        PrinterColumn("Title", ".spec.title", priority=1),
        *ready_columns(),
    ),
)

CHANGE = KindInfo(
    kind="Change",
    plural="changes",
    short_names=("chg",),
    description=(
        "A planned change to configuration items: approved by merging its pull request in the "
        "CMDB repository, carried out inside a window, on healthy systems, rolled back on harm."
    ),
    spec=ChangeSpec,
    status=ChangeStatus,
    columns=(
        PrinterColumn("Type", ".spec.type"),
        PrinterColumn("Service", ".spec.service"),
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn(
            "Window",
            ".status.window.start",
            # a string, not a date: kubectl shows a future date as <invalid>
            description="Start of the window it runs in, or the next eligible one.",
        ),
        PrinterColumn("Risk", ".status.risk", description="Assessed risk: low, medium or high."),
        PrinterColumn("Requester", ".status.requester", priority=1, description="Who created it."),
        PrinterColumn("Summary", ".spec.summary", priority=1),
        *ready_columns(),
    ),
)

SERVICE_LEVEL = KindInfo(
    kind="ServiceLevel",
    plural="servicelevels",
    short_names=("slo",),
    description=(
        "A service's objectives and error budget, its maintenance windows and freezes, and the "
        "response and resolution targets for its incidents."
    ),
    spec=ServiceLevelSpec,
    status=ServiceLevelStatus,
    columns=(
        PrinterColumn("Service", ".spec.service"),
        PrinterColumn(
            "Target",
            ".spec.objectives[0].objective",
            type="number",
            description="The first objective, percent.",
        ),
        PrinterColumn(
            "SLI",
            ".status.objectives[0].sli",
            type="number",
            description="Measured SLI of the first objective, percent.",
        ),
        PrinterColumn(
            "Budget",
            ".status.objectives[0].errorBudgetRemaining",
            type="number",
            description="Fraction of the first objective's error budget left.",
        ),
        *ready_columns(),
    ),
)

CONFIGURATION_ITEM = KindInfo(
    kind="ConfigurationItem",
    plural="configurationitems",
    short_names=("ci",),
    description=(
        "An asset in the Git-backed CMDB: its class, owner and relationships, what the "
        "operator observes on its live source object, drift, health and the CMDB commit."
    ),
    spec=ConfigurationItemSpec,
    status=ConfigurationItemStatus,
    columns=(
        PrinterColumn("Class", ".status.class"),
        PrinterColumn("Service", ".spec.service"),
        PrinterColumn("Lifecycle", ".spec.lifecycle"),
        PrinterColumn("Health", ".status.health"),
        PrinterColumn(
            "Dependents",
            ".status.dependents",
            type="integer",
            priority=1,
            description="Items that depend on this one, transitively.",
        ),
        PrinterColumn(
            "Synced",
            '.status.conditions[?(@.type=="CMDBSynced")].status',
            priority=1,
            description="Whether the record is in the CMDB remote.",
        ),
        PrinterColumn("Commit", ".status.cmdb.commit", priority=1),
        *ready_columns(),
    ),
)

SERVICE_REQUEST = KindInfo(
    kind="ServiceRequest",
    plural="servicerequests",
    short_names=("sr",),
    description=(
        "A request for an item of the service catalog (catalog/ in the CMDB repository), with "
        "parameters: fulfilled by the standard Change the item names, or by a person."
    ),
    spec=ServiceRequestSpec,
    status=ServiceRequestStatus,
    columns=(
        PrinterColumn("Item", ".spec.item"),
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("Change", ".status.change", description="The Change that fulfils it."),
        PrinterColumn(
            "Fulfil-By", ".status.sla.fulfilBy", description="When it is due (from requestTargets)."
        ),
        PrinterColumn("Requester", ".status.requester", priority=1, description="Who asked."),
        PrinterColumn("Title", ".status.title", priority=1),
        *ready_columns(),
    ),
)

KINDS: tuple[KindInfo, ...] = (
    INCIDENT,
    CHANGE,
    SERVICE_LEVEL,
    CONFIGURATION_ITEM,
    SERVICE_REQUEST,
)

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "CATEGORY",
    "CHANGE",
    "CONFIGURATION_ITEM",
    "INCIDENT",
    "KINDS",
    "SERVICE_LEVEL",
    "SERVICE_REQUEST",
    "KindInfo",
]
