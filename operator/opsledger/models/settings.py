"""Operator settings, read from flags or from the environment (the Helm chart sets the same)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from opsledger.models.common import GoDuration
from opsledger.models.servicelevel import Priority


class Settings(BaseModel):
    """Everything `opsledger run` needs to know about its surroundings."""

    kubeconfig: str | None = Field(
        default=None, description="Path of a kubeconfig; unset means in-cluster credentials."
    )
    cluster: str = Field(default="local", description="This cluster's name in the CMDB.")
    cmdb_url: str | None = Field(default=None, description="The CMDB Git remote.")
    cmdb_branch: str = Field(default="main", description="The CMDB's protected branch.")
    prometheus_url: str | None = Field(default=None, description="Prometheus base URL.")
    alertmanager_url: str | None = Field(default=None, description="Alertmanager base URL.")
    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to watch; empty means all."
    )
    metrics_port: int = Field(default=9102, description="Port of the /metrics endpoint.")
    health_port: int = Field(default=8081, description="Port of the /healthz liveness endpoint.")
    bind_address: str = Field(default="0.0.0.0", description="Address the endpoints listen on.")
    peering: str | None = Field(
        default=None,
        description="Kopf peering name when several replicas run; unset means standalone.",
    )
    priority: int = Field(default=0, description="Kopf peering priority of this replica.")
    peering_lifetime: int = Field(
        default=30,
        ge=5,
        le=300,
        description=(
            "Seconds a replica counts as alive after its last keep-alive: a standby takes over "
            "within this of the leader's death."
        ),
    )
    cmdb_workdir: str | None = Field(
        default=None, description="Folder for the CMDB working copy (default: a temp folder)."
    )
    cmdb_debounce: float = Field(
        default=1.0, ge=0, description="Seconds writes are collected before one commit."
    )
    cmdb_max_batch: int = Field(default=100, ge=1, description="Most records in one commit.")
    cmdb_retry_interval: float = Field(
        default=30.0, gt=0, description="Seconds between retries while the remote is unreachable."
    )
    slo_interval: float = Field(
        default=60.0, gt=0, description="Seconds between evaluations of all ServiceLevels."
    )
    slo_prometheus_rules: bool = Field(
        default=False,
        description="Keep a PrometheusRule (monitoring.coreos.com/v1) beside every ServiceLevel "
        "with its objectives' recording and burn-rate alerting rules.",
    )
    slo_rule_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels of those PrometheusRules, e.g. the one Prometheus selects rules by.",
    )
    incident_interval: float = Field(
        default=30.0, gt=0, description="Seconds between checks of incidents' SLA deadlines."
    )
    change_interval: float = Field(
        default=10.0, gt=0, description="Seconds between steps of each Change's lifecycle."
    )
    catalog_interval: float = Field(
        default=60.0,
        gt=0,
        description="Seconds between readings of the CMDB's catalog/ into ServiceLevel status.",
    )
    request_interval: float = Field(
        default=10.0,
        gt=0,
        description="Seconds between looks at each open ServiceRequest (its Change, its target).",
    )
    impact_interval: float = Field(
        default=15.0, gt=0, description="Seconds between recounts of each item's dependents."
    )
    discovery_kinds: list[str] = Field(
        default_factory=list,
        description="Kinds to create ConfigurationItems for, e.g. Deployment; empty: no discovery.",
    )
    discovery_namespaces: list[str] = Field(
        default_factory=list, description="Namespaces discovery looks in; empty means all."
    )
    discovery_infra_namespace: str = Field(
        default="default",
        description="Namespace of the items discovery creates for cluster-scoped objects "
        "(Nodes, Namespaces, PersistentVolumes).",
    )
    discovery_selector: str = Field(
        default="", description="Label selector a discovered object must match, e.g. tier=web."
    )
    webhook_port: int | None = Field(
        default=None, description="Port of the admission webhook (HTTPS); unset: no webhook."
    )
    webhook_cert_file: str | None = Field(
        default=None, description="PEM serving certificate of the webhook."
    )
    webhook_key_file: str | None = Field(default=None, description="PEM key of that certificate.")
    webhook_register_url: str | None = Field(
        default=None,
        description=(
            "Base URL the API server reaches the webhook at; when set the operator registers "
            "its own ValidatingWebhookConfiguration (local environment). In a cluster the Helm "
            "chart ships it instead."
        ),
    )
    webhook_ca_file: str | None = Field(
        default=None, description="PEM CA that signed the serving certificate (the caBundle)."
    )
    webhook_name: str = Field(
        default="opsledger", description="Name of the ValidatingWebhookConfiguration it registers."
    )
    webhook_failure_policy: Literal["Fail", "Ignore"] = Field(
        default="Fail",
        description=(
            "What the API server does when the webhook cannot answer: Fail (deny; safe, but "
            "protected workloads cannot change while the operator is down) or Ignore (allow)."
        ),
    )
    webhook_timeout: int = Field(
        default=5, ge=1, le=30, description="Seconds the API server waits for the webhook."
    )
    operator_username: str | None = Field(
        default=None,
        description="The operator's own username (its requests pass the guard); default: asked "
        "of the API server with a SelfSubjectReview.",
    )
    forge: Literal["gitea"] | None = Field(
        default=None,
        description="The forge that hosts the CMDB repository, for pull requests: gitea (also "
        "Forgejo); unset: proposals are branches only.",
    )
    forge_url: str | None = Field(default=None, description="The forge's base URL.")
    forge_repository: str | None = Field(
        default=None, description="The CMDB repository on the forge, as owner/name."
    )
    forge_token_file: str | None = Field(
        default=None, description="File holding the forge's access token (a mounted Secret)."
    )
    approval_mode: Literal["merge", "forge", "signed"] = Field(
        default="merge",
        description=(
            "What proves a change's approval once its proposal is on the protected branch: "
            "forge (approving reviews on its pull request by people the approval policy "
            "allows, other than the requester), signed (SSH signatures, by keys in the "
            "repository's allowed-signers file, on the commit that brought it in and on "
            "approval commits on its branch) or merge (the merge's committer: trusts whoever "
            "may push to the protected branch; for a local trial)."
        ),
    )
    receiver_port: int | None = Field(
        default=None,
        description="Port of the Alertmanager receiver (HTTP, path /alertmanager); unset: off.",
    )
    receiver_token_file: str | None = Field(
        default=None,
        description="File holding the bearer token Alertmanager must send (a mounted Secret).",
    )
    receiver_namespace: str = Field(
        default="default",
        description="Namespace for Incidents from alerts without a namespace label, or whose "
        "namespace does not exist.",
    )
    receiver_resolve: bool = Field(
        default=True, description="Resolve an alert's Incident when the alert resolves."
    )
    receiver_service_label: str = Field(
        default="service", description="Alert label naming the affected service."
    )
    receiver_item_label: str = Field(
        default="configuration_item",
        description="Alert label naming the affected ConfigurationItems (comma-separated).",
    )
    problem_threshold: int = Field(
        default=3, ge=2, description="Incidents on one item or service that make a problem."
    )
    problem_period: GoDuration = Field(
        default="168h", description="Within how long (Go duration) those incidents must open."
    )
    suspect_window: GoDuration = Field(
        default="2h",
        description="An incident this soon (Go duration) after a change completed on its items "
        "or their dependencies names that change as suspectedCause.",
    )
    leader_lease_namespace: str | None = Field(
        default=None,
        description="With peering: the leader keeps a coordination.k8s.io Lease named after the "
        "peering in this namespace (holderIdentity, renewTime), so kubectl and other tools see "
        "who leads. Leadership itself is Kopf's peering rule.",
    )
    change_silences: bool = Field(
        default=True,
        description="Silence the alerts of a running change's service and target items in "
        "Alertmanager (OPSLEDGER_ALERTMANAGER_URL) while it runs; expired when it ends, and "
        "before a rollback, so its own failure pages.",
    )
    monthly_review: bool = Field(
        default=True,
        description="Commit each month's service review to the CMDB once the month is over.",
    )
    kpi_window: GoDuration = Field(
        default="720h", description="Look-back (Go duration) of the KPI and DORA figures."
    )
    kpi_interval: float = Field(
        default=30.0, gt=0, description="Seconds between recomputations of the KPIs."
    )
    health_interval: float = Field(
        default=60.0,
        gt=0,
        description="Seconds between evaluations of every item's health, availability, "
        "performance and capacity.",
    )
    health_checks_file: str | None = Field(
        default=None,
        description="YAML file of check templates per CI class, replacing the defaults of the "
        "classes it names (kube-state-metrics and cAdvisor queries).",
    )
    capacity_lookback: GoDuration = Field(
        default="168h", description="Look-back (Go duration) the usage trend is fitted over."
    )
    capacity_horizon: GoDuration = Field(
        default="336h",
        description="CapacityRisk when a resource is predicted to run out within this.",
    )
    capacity_incident_within: GoDuration = Field(
        default="72h",
        description="A low-priority Incident when a resource is predicted to run out within this.",
    )
    latency_metric: str = Field(
        default="http_request_duration_seconds",
        description="Histogram (without _bucket) whose quantiles are an item's latency.",
    )
    request_metric: str = Field(
        default="http_requests_total",
        description="Counter of requests (label code) whose 5xx share is a service's error ratio.",
    )
    priority_matrix: dict[str, Priority] = Field(
        default_factory=dict,
        description="Cells of the impact × urgency matrix that differ from ITIL's default, as "
        "impact/urgency → priority, e.g. {'high/medium': 'P1'}.",
    )
    redact_keys: list[str] = Field(
        default_factory=list, description="Extra regexes: values under matching keys are redacted."
    )
    redaction_key_file: str | None = Field(
        default=None,
        description=(
            "File holding a secret key for redaction fingerprints (a mounted Secret), so a "
            "fingerprint in the CMDB cannot be checked against guessed values; default: the "
            "cluster's name (fingerprints still show that a value changed)."
        ),
    )
    redact_values: list[str] = Field(
        default_factory=list, description="Extra regexes: matching values are redacted."
    )

    @field_validator("priority_matrix")
    @classmethod
    def _cells(cls, cells: dict[str, Priority]) -> dict[str, Priority]:
        levels = ("high", "medium", "low")
        for cell in cells:
            impact, _, urgency = cell.partition("/")
            if impact not in levels or urgency not in levels:
                raise ValueError(
                    f"priority matrix cell {cell!r} is not impact/urgency with each of high, "
                    "medium or low, e.g. high/medium=P1"
                )
        return cells

    @model_validator(mode="after")
    def _webhook_needs_tls(self) -> Settings:
        if self.webhook_port is not None and not (self.webhook_cert_file and self.webhook_key_file):
            raise ValueError(
                "the admission webhook (OPSLEDGER_WEBHOOK_PORT) serves HTTPS only: set "
                "OPSLEDGER_WEBHOOK_CERT_FILE and OPSLEDGER_WEBHOOK_KEY_FILE too"
            )
        if self.webhook_register_url and not self.webhook_ca_file:
            raise ValueError(
                "OPSLEDGER_WEBHOOK_REGISTER_URL needs OPSLEDGER_WEBHOOK_CA_FILE (the caBundle)"
            )
        if self.receiver_port is not None and not self.receiver_token_file:
            raise ValueError(
                "the Alertmanager receiver (OPSLEDGER_RECEIVER_PORT) only accepts authenticated "
                "requests: set OPSLEDGER_RECEIVER_TOKEN_FILE to a file holding the bearer token"
            )
        if self.forge and not (self.forge_url and self.forge_repository and self.forge_token_file):
            raise ValueError(
                "OPSLEDGER_FORGE needs OPSLEDGER_FORGE_URL, OPSLEDGER_FORGE_REPOSITORY "
                "(owner/name) and OPSLEDGER_FORGE_TOKEN_FILE"
            )
        if self.approval_mode == "forge" and not self.forge:
            raise ValueError(
                "OPSLEDGER_APPROVAL_MODE=forge reads approving reviews from the forge: set "
                "OPSLEDGER_FORGE (and its URL, repository and token file), or use signed"
            )
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        plain = {
            "KUBECONFIG": "kubeconfig",
            "OPSLEDGER_CLUSTER": "cluster",
            "OPSLEDGER_CMDB_URL": "cmdb_url",
            "OPSLEDGER_CMDB_BRANCH": "cmdb_branch",
            "OPSLEDGER_PROMETHEUS_URL": "prometheus_url",
            "OPSLEDGER_ALERTMANAGER_URL": "alertmanager_url",
            "OPSLEDGER_METRICS_PORT": "metrics_port",
            "OPSLEDGER_HEALTH_PORT": "health_port",
            "OPSLEDGER_BIND_ADDRESS": "bind_address",
            "OPSLEDGER_PEERING": "peering",
            "OPSLEDGER_PRIORITY": "priority",
            "OPSLEDGER_PEERING_LIFETIME": "peering_lifetime",
            "OPSLEDGER_CMDB_WORKDIR": "cmdb_workdir",
            "OPSLEDGER_CMDB_DEBOUNCE": "cmdb_debounce",
            "OPSLEDGER_CMDB_MAX_BATCH": "cmdb_max_batch",
            "OPSLEDGER_CMDB_RETRY_INTERVAL": "cmdb_retry_interval",
            "OPSLEDGER_IMPACT_INTERVAL": "impact_interval",
            "OPSLEDGER_CHANGE_INTERVAL": "change_interval",
            "OPSLEDGER_SLO_INTERVAL": "slo_interval",
            "OPSLEDGER_SLO_PROMETHEUS_RULES": "slo_prometheus_rules",
            "OPSLEDGER_INCIDENT_INTERVAL": "incident_interval",
            "OPSLEDGER_REQUEST_INTERVAL": "request_interval",
            "OPSLEDGER_CATALOG_INTERVAL": "catalog_interval",
            "OPSLEDGER_WEBHOOK_PORT": "webhook_port",
            "OPSLEDGER_WEBHOOK_CERT_FILE": "webhook_cert_file",
            "OPSLEDGER_WEBHOOK_KEY_FILE": "webhook_key_file",
            "OPSLEDGER_WEBHOOK_REGISTER_URL": "webhook_register_url",
            "OPSLEDGER_WEBHOOK_CA_FILE": "webhook_ca_file",
            "OPSLEDGER_WEBHOOK_NAME": "webhook_name",
            "OPSLEDGER_WEBHOOK_FAILURE_POLICY": "webhook_failure_policy",
            "OPSLEDGER_WEBHOOK_TIMEOUT": "webhook_timeout",
            "OPSLEDGER_OPERATOR_USERNAME": "operator_username",
            "OPSLEDGER_FORGE": "forge",
            "OPSLEDGER_FORGE_URL": "forge_url",
            "OPSLEDGER_FORGE_REPOSITORY": "forge_repository",
            "OPSLEDGER_FORGE_TOKEN_FILE": "forge_token_file",
            "OPSLEDGER_APPROVAL_MODE": "approval_mode",
            "OPSLEDGER_REDACTION_KEY_FILE": "redaction_key_file",
            "OPSLEDGER_RECEIVER_PORT": "receiver_port",
            "OPSLEDGER_RECEIVER_TOKEN_FILE": "receiver_token_file",
            "OPSLEDGER_RECEIVER_NAMESPACE": "receiver_namespace",
            "OPSLEDGER_RECEIVER_RESOLVE": "receiver_resolve",
            "OPSLEDGER_RECEIVER_SERVICE_LABEL": "receiver_service_label",
            "OPSLEDGER_RECEIVER_ITEM_LABEL": "receiver_item_label",
            "OPSLEDGER_PROBLEM_THRESHOLD": "problem_threshold",
            "OPSLEDGER_PROBLEM_PERIOD": "problem_period",
            "OPSLEDGER_SUSPECT_WINDOW": "suspect_window",
            "OPSLEDGER_MONTHLY_REVIEW": "monthly_review",
            "OPSLEDGER_CHANGE_SILENCES": "change_silences",
            "OPSLEDGER_LEADER_LEASE_NAMESPACE": "leader_lease_namespace",
            "OPSLEDGER_DISCOVERY_INFRA_NAMESPACE": "discovery_infra_namespace",
            "OPSLEDGER_KPI_WINDOW": "kpi_window",
            "OPSLEDGER_KPI_INTERVAL": "kpi_interval",
            "OPSLEDGER_HEALTH_INTERVAL": "health_interval",
            "OPSLEDGER_HEALTH_CHECKS_FILE": "health_checks_file",
            "OPSLEDGER_CAPACITY_LOOKBACK": "capacity_lookback",
            "OPSLEDGER_CAPACITY_HORIZON": "capacity_horizon",
            "OPSLEDGER_CAPACITY_INCIDENT_WITHIN": "capacity_incident_within",
            "OPSLEDGER_LATENCY_METRIC": "latency_metric",
            "OPSLEDGER_REQUEST_METRIC": "request_metric",
        }
        for var, name in plain.items():
            if env.get(var):
                values[name] = env[var]
        if env.get("OPSLEDGER_KUBECONFIG"):  # the operator's own identity, beside kubectl's
            values["kubeconfig"] = env["OPSLEDGER_KUBECONFIG"]
        for var, name in (
            ("OPSLEDGER_NAMESPACES", "namespaces"),
            ("OPSLEDGER_DISCOVERY_KINDS", "discovery_kinds"),
            ("OPSLEDGER_DISCOVERY_NAMESPACES", "discovery_namespaces"),
        ):
            if env.get(var):
                values[name] = [n.strip() for n in env[var].split(",") if n.strip()]
        for var, name in (
            ("OPSLEDGER_PRIORITY_MATRIX", "priority_matrix"),  # high/medium=P1,low/high=P2
            ("OPSLEDGER_SLO_RULE_LABELS", "slo_rule_labels"),  # release=prometheus,team=web
        ):
            if env.get(var):
                values[name] = {
                    key.strip(): value.strip()
                    for key, _, value in (part.partition("=") for part in env[var].split(","))
                    if key.strip()
                }
        if env.get("OPSLEDGER_DISCOVERY_SELECTOR"):
            values["discovery_selector"] = env["OPSLEDGER_DISCOVERY_SELECTOR"]
        for var, name in (
            ("OPSLEDGER_REDACT_KEYS", "redact_keys"),
            ("OPSLEDGER_REDACT_VALUES", "redact_values"),
        ):
            if env.get(var):  # one regex per line (regexes may contain commas)
                values[name] = [line for line in env[var].splitlines() if line.strip()]
        return cls.model_validate(values)


class DeskSettings(BaseModel):
    """Everything `opsledger desk` (the service desk's web application) needs to know."""

    kubeconfig: str | None = Field(
        default=None,
        description="Path of the desk's kubeconfig (a read-mostly identity that may impersonate "
        "the people it serves); unset means in-cluster credentials.",
    )
    bind_address: str = Field(default="0.0.0.0", description="Address the desk listens on.")
    port: int = Field(default=8090, ge=1, le=65535, description="Port of the desk's pages.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or networks of the authenticating proxy (oauth2-proxy): its "
        "X-Forwarded-User/-Email/-Groups headers are believed only from these.",
    )
    anonymous_read: bool = Field(
        default=False, description="Let people nobody signed in read the pages (never write)."
    )
    public_status: bool = Field(
        default=False,
        description="Serve the status page (/status, /api/v2/summary.json) to anyone.",
    )
    page_name: str = Field(
        default="OpsLedger", description="The status page's name.", max_length=100
    )
    secret_file: str | None = Field(
        default=None,
        description="A file holding the key the forms' CSRF tokens are signed with (shared by "
        "the desk's replicas); unset: a random key per process.",
    )
    cmdb_url: str | None = Field(
        default=None,
        description="The CMDB remote, read (never written) for the CMDB page's history of each "
        "record; unset: the page says where the history is instead.",
    )
    cmdb_branch: str = Field(default="main", description="The CMDB's protected branch.")
    cluster: str = Field(
        default="local", description="The cluster's name in the CMDB (OPSLEDGER_CLUSTER)."
    )
    prometheus_url: str | None = Field(
        default=None,
        description="Prometheus, asked for each objective's error budget over its window (the "
        "operator's opsledger_slo_error_budget_remaining) to draw its burn-down.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                ipaddress.ip_network(text.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(
                    f"OPSLEDGER_DESK_TRUSTED_PROXIES: {text!r} is not an address or network "
                    "(e.g. 10.0.0.0/8)"
                ) from exc
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DeskSettings:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for var, name in {
            "OPSLEDGER_DESK_KUBECONFIG": "kubeconfig",
            "OPSLEDGER_DESK_BIND_ADDRESS": "bind_address",
            "OPSLEDGER_DESK_PORT": "port",
            "OPSLEDGER_DESK_ANONYMOUS_READ": "anonymous_read",
            "OPSLEDGER_DESK_PUBLIC_STATUS": "public_status",
            "OPSLEDGER_DESK_PAGE_NAME": "page_name",
            "OPSLEDGER_DESK_SECRET_FILE": "secret_file",
            "OPSLEDGER_DESK_CMDB_URL": "cmdb_url",
            "OPSLEDGER_DESK_PROMETHEUS_URL": "prometheus_url",
            "OPSLEDGER_CMDB_BRANCH": "cmdb_branch",
            "OPSLEDGER_CLUSTER": "cluster",
        }.items():
            if env.get(var):
                values[name] = env[var]
        if not values.get("kubeconfig") and env.get("KUBECONFIG"):
            values["kubeconfig"] = env["KUBECONFIG"]
        if env.get("OPSLEDGER_DESK_TRUSTED_PROXIES"):
            values["trusted_proxies"] = [
                n.strip() for n in env["OPSLEDGER_DESK_TRUSTED_PROXIES"].split(",") if n.strip()
            ]
        return cls.model_validate(values)
