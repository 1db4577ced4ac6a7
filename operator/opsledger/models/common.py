"""Building blocks shared by the four kinds: the camelCase base model, conditions, references.

Every field carries a description: `opsledger crds` copies them into the CRD schemas, so
`kubectl explain` tells users what each field means.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import promql_parser
from pydantic import AfterValidator, AliasGenerator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

API_GROUP = "opsledger.io"
API_VERSION = "v1alpha1"
CATEGORY = "itsm"

# Go's time.ParseDuration syntax ("90s", "1h30m", "1.5h"); CRD patterns are evaluated as RE2.
GO_DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
# Prometheus durations for SLO windows ("28d", "4w", "30d").
PROM_DURATION_PATTERN = r"^([0-9]+(y|w|d|h|m|s|ms))+$"
# Names of Kubernetes objects (RFC 1123 subdomain).
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"

GoDuration = Annotated[
    str,
    Field(
        pattern=GO_DURATION_PATTERN,
        max_length=32,
        description="A Go-style duration such as 30s, 15m, 4h or 1h30m.",
    ),
]


# Sloth's window placeholder in SLI queries: {{.window}} or {{ .window }}.
WINDOW_PLACEHOLDER = re.compile(r"\{\{\s*\.window\s*\}\}")


def one_promql_expression(text: str) -> str:
    """`text` if it is exactly one PromQL expression; the parser's message otherwise.

    The operator joins many users' queries into one batched query. A text that is not one
    expression on its own (a stray parenthesis, a trailing `or ...`) could reach out of its place
    in the batch and forge or hide another team's series: it is refused before it is accepted or
    batched. (A comment is harmless: a batched query puts every user query on lines of its own.)
    """
    try:
        promql_parser.parse(WINDOW_PLACEHOLDER.sub("5m", text))
    except ValueError as exc:
        raise ValueError(f"{text[:200]!r} is not one PromQL expression: {exc}") from exc
    return text


PromQL = Annotated[str, AfterValidator(one_promql_expression)]


class CamelModel(BaseModel):
    """Base for every spec and status model: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(alias=to_camel),
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
        frozen=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase keys, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(CamelModel):
    """One observation of the object's state, as in the Kubernetes API conventions."""

    type: str = Field(
        description="The aspect this condition is about, in CamelCase, e.g. Ready.",
        max_length=316,
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        description="A CamelCase word saying why the condition has this status.",
        max_length=1024,
    )
    message: str = Field(
        default="",
        description="What happened and, where something is wrong, how to fix it.",
        max_length=32768,
    )
    last_transition_time: datetime = Field(
        description="When the status last changed (RFC 3339).",
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The metadata.generation of the spec this condition was computed from.",
    )


class ObjectReference(CamelModel):
    """A reference to a Kubernetes object by API version, kind and name."""

    api_version: str = Field(
        description="API version of the object, e.g. apps/v1 or v1.",
        min_length=1,
        max_length=253,
    )
    kind: str = Field(
        description="Kind of the object, e.g. Deployment, Service or Node.",
        pattern=r"^[A-Z][A-Za-z0-9]*$",
        max_length=63,
    )
    name: str = Field(
        description="Name of the object. A namespaced object is looked up in the same namespace.",
        pattern=K8S_NAME_PATTERN,
        max_length=253,
    )


class LatencyObjective(CamelModel):
    """How fast requests must be answered: a quantile of request latency and its bound."""

    quantile: float = Field(description="The quantile, e.g. 0.99.", gt=0, lt=1)
    threshold: GoDuration = Field(description="The bound, as a Go duration, e.g. 300ms.")


class Performance(CamelModel):
    """Latency quantiles of requests, against the latency objective."""

    latency: dict[str, float] = Field(
        default_factory=dict, description="Seconds per quantile, e.g. {p50: 0.02, p99: 0.21}."
    )
    objective: str | None = Field(default=None, description="The objective, e.g. p99<300ms.")
    within_objective: bool | None = Field(
        default=None, description="Whether the quantile is within the objective."
    )


class StatusBase(CamelModel):
    """Fields every OpsLedger status carries."""

    observed_generation: int | None = Field(
        default=None,
        description="The metadata.generation the operator last reconciled.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Observations of the object's state; Ready tells whether it is usable.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    kopf: dict[str, Any] | None = Field(
        default=None,
        description="Internal progress of the operator's handlers (retries, back-off).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


K8sName = Annotated[
    str,
    Field(pattern=K8S_NAME_PATTERN, max_length=253, description="Name of an object."),
]


class Requester(CamelModel):
    """Who created the object, as the API server authenticated them (as a
    CertificateSigningRequest's spec.username and spec.groups are): the requester of a Change,
    the reporter of an Incident."""

    username: str = Field(description="Their user name.", max_length=512)
    uid: str | None = Field(default=None, description="Their uid, where the API server has one.")
    groups: list[Annotated[str, Field(description="A group name.", max_length=512)]] = Field(
        default_factory=list, description="Their groups.", max_length=256
    )
