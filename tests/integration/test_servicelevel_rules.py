"""A PrometheusRule beside every ServiceLevel (OPSLEDGER_SLO_PROMETHEUS_RULES), on the real API
server: published as `opsledger slo rules` prints it, refused politely once the cluster no
longer serves PrometheusRules (the running operator discovered them before), published again
when they return, and deleted with its ServiceLevel by Kubernetes' garbage collector.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsledger.devenv.environment import DevEnvironment
from tests.support import (
    SELF_MEASURED_OBJECTIVE,
    Kubectl,
    OperatorProcess,
    approve_proposal,
    availability_slo,
    opsledger,
    proposed,
    wait_for,
    wait_for_event,
    wait_for_webhooks,
    webhook_settings,
)

NS = "slorules"
CRDS = Path(__file__).resolve().parents[1] / "e2e" / "fixtures" / "prometheus-operator-crds.yaml"


@pytest.fixture(scope="module")
def rule_crd(kubectl: Kubectl) -> Iterator[None]:
    """The Prometheus Operator's CRDs (a hand-written subset), installed for this module and
    left installed, as the chart's tests expect them for the whole session."""
    _install_crds(kubectl)
    yield
    _install_crds(kubectl)


def _install_crds(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(CRDS))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS))


@pytest.fixture(scope="module")
def operator(
    devenv: DevEnvironment,
    crds: None,
    rule_crd: None,
    kubectl: Kubectl,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    kubectl("create", "namespace", NS)
    proc = OperatorProcess(devenv, tmp_path_factory.mktemp("operator") / "operator.log").start(
        env={
            "OPSLEDGER_SLO_PROMETHEUS_RULES": "true",
            "OPSLEDGER_SLO_RULE_LABELS": "release=prometheus",
            "OPSLEDGER_SLO_INTERVAL": "2",
            # the webhooks freeze an approved spec and keep Changes' status the operator's
            **webhook_settings(devenv),
        }
    )
    wait_for_webhooks(kubectl)
    yield proc
    proc.stop()


def _condition(kubectl: Kubectl, name: str = "shop") -> dict[str, Any] | None:
    level = kubectl.json("get", "servicelevel", name, "-n", NS)
    found = [
        c for c in level.get("status", {}).get("conditions", []) if c["type"] == "RulesPublished"
    ]
    return found[0] if found else None


def _rule(kubectl: Kubectl) -> dict[str, Any] | None:
    result = kubectl.run("get", "prometheusrule", "shop-slo", "-n", NS, "-o", "yaml", check=False)
    return yaml.safe_load(result.stdout) if result.returncode == 0 else None


def _expected(tmp_path: Path, manifest: str) -> dict[str, Any]:
    """What `opsledger slo rules -o prometheusrule` prints for the same manifest."""
    path = tmp_path / "shop.yaml"
    path.write_text(manifest)
    printed = opsledger(
        "slo", "rules", str(path), "-o", "prometheusrule", "--label", "release=prometheus"
    )
    assert printed.returncode == 0, printed.stderr
    result: dict[str, Any] = yaml.safe_load(printed.stdout)
    return result


def test_the_rule_follows_its_service_level_and_the_crds_coming_and_going(
    kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path
) -> None:
    kubectl("apply", "-f", "-", input=availability_slo(NS, 99.9))
    rule = wait_for(lambda: _rule(kubectl), what="the PrometheusRule shop-slo")
    level = kubectl.json("get", "servicelevel", "shop", "-n", NS)
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    [owner] = rule["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "ServiceLevel",
        "shop",
        level["metadata"]["uid"],
    )
    assert rule["spec"] == _expected(tmp_path, availability_slo(NS, 99.9))["spec"]
    published = wait_for(
        lambda: (c := _condition(kubectl)) and c["status"] == "True" and c,
        what="RulesPublished=True",
    )
    assert published["message"] == "PrometheusRule shop-slo: 12 rules for 1 objective(s)"

    # The Prometheus Operator is uninstalled under the running operator, which discovered its
    # kinds before; then the objective is loosened.
    kubectl("delete", "-f", str(CRDS), "--wait=true")
    kubectl("apply", "-f", "-", input=availability_slo(NS, 99.5))
    refused = wait_for(
        lambda: (c := _condition(kubectl)) and c["status"] == "False" and c,
        what="RulesPublished=False once there is no PrometheusRule CRD",
    )
    assert refused["reason"] == "PrometheusRuleUnavailable"
    assert "install the Prometheus Operator's CRDs" in refused["message"]
    wait_for_event(kubectl, NS, "shop", "PrometheusRuleUnavailable")
    # a ServiceLevel without objectives needs no rule, CRD or not
    kubectl(
        "apply",
        "-f",
        "-",
        input=f"{{apiVersion: opsledger.io/v1alpha1, kind: ServiceLevel, "
        f"metadata: {{name: windows-only, namespace: {NS}}}, spec: {{service: batch}}}}",
    )
    quiet = wait_for(
        lambda: (c := _condition(kubectl, "windows-only")) and c,
        what="RulesPublished on a ServiceLevel without objectives",
    )
    assert (quiet["status"], quiet["reason"]) == ("True", "NoObjectives")

    # It comes back: the next try publishes the looser objective's rules, untouched by anyone.
    # The page threshold is now 14.4 × 0.5 % instead of 14.4 × 0.1 %.
    _install_crds(kubectl)
    looser = _expected(tmp_path, availability_slo(NS, 99.5))["spec"]
    rewritten = wait_for(
        lambda: (r := _rule(kubectl)) and r["spec"] == looser and r,
        what="the PrometheusRule published again for 99.5 %",
    )
    page = next(
        r
        for g in rewritten["spec"]["groups"]
        for r in g["rules"]
        if r.get("alert") == "SLOErrorBudgetBurnPage"
    )
    assert "> 0.072 and" in page["expr"]
    wait_for(
        lambda: (c := _condition(kubectl)) and c["status"] == "True",
        what="RulesPublished=True again",
    )

    # the ServiceLevel goes, and Kubernetes takes its rule with it
    kubectl("delete", "servicelevel", "shop", "-n", NS)
    wait_for(
        lambda: _rule(kubectl) is None, timeout=90, what="the PrometheusRule garbage-collected"
    )


DANA = ("--as=dana", "--as-group=team-ops")  # a namespace user: edit, and Changes, in NS
DANA_RBAC = f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: dana-edits, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: dana}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: changes, namespace: {NS}}}
rules:
- apiGroups: [opsledger.io]
  resources: [changes, changes/status]
  verbs: [get, list, watch, create, update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: dana-changes, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: changes}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: dana}}]
"""
# Measured on what the local Prometheus has: its own HTTP API's requests (health must be known
# for the change to start).
BUDGET = f"""
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {{name: budget, namespace: {NS}}}
spec:
  service: shop
{SELF_MEASURED_OBJECTIVE}"""
FAILOVER = f"""
apiVersion: opsledger.io/v1alpha1
kind: Change
metadata: {{name: failover, namespace: {NS}}}
spec:
  type: normal
  summary: Fail the shop over to the second region
  service: shop
  plannedImpact:
    objectives: [availability, throughput]
    reason: connections drain while the primary moves
"""


def _change_status(kubectl: Kubectl) -> dict[str, Any]:
    status: dict[str, Any] = kubectl.json("get", "change", "failover", "-n", NS)["status"]
    if status.get("phase") not in ("InProgress", "Verifying", "Completed"):
        conditions = {c["type"]: (c["reason"], c["message"]) for c in status.get("conditions", [])}
        raise AssertionError(f"{status.get('phase')}: {conditions}")
    return status


def _rule_text(kubectl: Kubectl, name: str) -> str:
    result = kubectl.run("get", "prometheusrule", name, "-n", NS, "-o", "yaml", check=False)
    return result.stdout if result.returncode == 0 else ""


def _exclusions(kubectl: Kubectl) -> list[dict[str, Any]]:
    level = kubectl.json("get", "servicelevel", "budget", "-n", NS)
    found: list[dict[str, Any]] = level.get("status", {}).get("budgetExclusions") or []
    return found


def test_planned_work_is_left_out_of_the_budget_only_as_approved_and_only_once_it_ran(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path
) -> None:
    """Dana's approved failover declares its impact on availability. She tries to widen the
    declared impact after approval and to write the change's status herself: both refused,
    with the reason. While it runs the ServiceLevel leaves its time out provisionally, and the
    PrometheusRule measures without it; once it completes the interval stays, with its end."""
    _install_crds(kubectl)
    kubectl("apply", "-f", "-", input=DANA_RBAC)
    kubectl("apply", "-f", "-", input=BUDGET)
    kubectl("apply", "-f", "-", *DANA, input=FAILOVER)
    proposed(kubectl, NS, "failover")
    assert _exclusions(kubectl) == []  # proposed is not running

    approve_proposal(
        devenv, tmp_path, f"changes/test/{NS}/failover", ("Alice Approver", "alice@example.com")
    )
    wait_for(
        lambda: _change_status(kubectl).get("phase") == "InProgress",
        what="the approved failover in progress",
    )
    widened = kubectl.run(
        "patch", "change", "failover", "-n", NS, *DANA, "--type=json",
        "-p", '[{"op":"add","path":"/spec/plannedImpact/objectives/-","value":"latency"}]',
        check=False,
    )  # fmt: skip
    assert widened.returncode != 0
    assert "approved by Alice Approver <alice@example.com> exactly as it stands" in widened.stderr
    forged = kubectl.run(
        "patch", "change", "failover", "-n", NS, *DANA, "--subresource=status", "--type=merge",
        "-p", '{"status":{"execution":{"startedAt":"2026-11-01T00:00:00Z"}}}',
        check=False,
    )  # fmt: skip
    assert forged.returncode != 0
    assert "only the OpsLedger operator writes a Change's status" in forged.stderr

    [running] = wait_for(
        lambda: _exclusions(kubectl), what="the running failover left out of the budget"
    )
    change = kubectl.json("get", "change", "failover", "-n", NS)
    assert running == {
        "change": "failover",
        "objectives": ["availability"],  # the ServiceLevel has no throughput objective
        "start": change["status"]["execution"]["startedAt"],
        "state": "InProgress",
    }
    wait_for_event(kubectl, NS, "budget", "BudgetExclusion")
    rule = wait_for(
        lambda: (r := _rule_text(kubectl, "budget-slo")) and "[30d:5m]" in r and yaml.safe_load(r),
        what="the PrometheusRule measuring without the failover",
    )
    start = datetime.fromisoformat(running["start"].replace("Z", "+00:00")).timestamp()
    [month] = [
        r
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if r.get("record") == "opsledger_slo:error_ratio:rate30d"
    ]
    assert f"vector(time()) > {start:.3f}" in month["expr"]

    kubectl("patch", "change", "failover", "-n", NS, *DANA, "--type=merge",
            "-p", '{"spec":{"done":true}}')  # fmt: skip
    [final] = wait_for(
        lambda: [e for e in _exclusions(kubectl) if e["state"] == "Completed"] or None,
        timeout=90,
        what="the completed failover's interval kept",
    )
    done = kubectl.json("get", "change", "failover", "-n", NS)
    assert done["status"]["phase"] == "Completed"
    assert final["start"] == running["start"]
    assert final["end"] == done["status"]["execution"]["finishedAt"]
    # The record outlives the Change: deleting it does not bring the hour back into the budget.
    kubectl("delete", "change", "failover", "-n", NS)
    time.sleep(5)  # two evaluations at OPSLEDGER_SLO_INTERVAL=2
    assert _exclusions(kubectl) == [final]
