"""A PrometheusRule beside every ServiceLevel (OPSLEDGER_SLO_PROMETHEUS_RULES), on the real API
server: published as `opsledger slo rules` prints it, refused politely once the cluster no
longer serves PrometheusRules (the running operator discovered them before), published again
when they return, and deleted with its ServiceLevel by Kubernetes' garbage collector.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsledger.devenv.environment import DevEnvironment
from tests.support import (
    Kubectl,
    OperatorProcess,
    availability_slo,
    opsledger,
    wait_for,
    wait_for_event,
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
        }
    )
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
