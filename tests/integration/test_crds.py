"""The API server itself enforces the schemas generated from the models."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import Kubectl

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("crds")


def _change(name: str, spec: str) -> str:
    return f"""
apiVersion: opsledger.io/v1alpha1
kind: Change
metadata: {{name: {name}, namespace: crd-checks}}
spec:
{spec}
"""


@pytest.fixture(scope="module", autouse=True)
def namespace(kubectl: Kubectl) -> None:
    kubectl("create", "namespace", "crd-checks")


def test_every_example_is_accepted_by_the_server(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(ROOT / "examples" / "00-namespace.yaml"))
    result = kubectl.run("apply", "--dry-run=server", "-f", str(ROOT / "examples"))
    assert result.stdout.count("(server dry run)") == len(list((ROOT / "examples").glob("*.yaml")))


def test_a_change_window_that_ends_before_it_starts_is_rejected(kubectl: Kubectl) -> None:
    manifest = _change(
        "backwards",
        """  type: normal
  summary: Upgrade web
  service: shop
  schedule: {notBefore: "2026-12-01T22:00:00Z", notAfter: "2026-12-01T21:00:00Z"}""",
    )
    result = kubectl.run("apply", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    assert "spec.schedule.notAfter" in result.stderr
    assert "notAfter must be later than notBefore" in result.stderr


def test_a_standard_change_must_name_its_template(kubectl: Kubectl) -> None:
    manifest = _change("no-template", "  type: standard\n  summary: Rotate certs\n  service: shop")
    result = kubectl.run("apply", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    assert "spec.template" in result.stderr
    assert "pre-approved template" in result.stderr


def test_the_type_of_a_change_cannot_be_changed(kubectl: Kubectl) -> None:
    kubectl(
        "apply", "-f", "-", input=_change("fixed", "  type: normal\n  summary: a\n  service: s")
    )
    result = kubectl.run(
        "apply",
        "-f",
        "-",
        input=_change("fixed", "  type: emergency\n  summary: a\n  service: s"),
        check=False,
    )
    assert result.returncode != 0
    assert "spec.type is immutable" in result.stderr


def test_a_wrong_enum_value_names_the_field_and_the_allowed_values(kubectl: Kubectl) -> None:
    manifest = """
apiVersion: opsledger.io/v1alpha1
kind: Incident
metadata: {name: bad-impact, namespace: crd-checks}
spec: {title: Checkout down, impact: huge}
"""
    result = kubectl.run("apply", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    assert 'spec.impact: Unsupported value: "huge"' in result.stderr
    assert '"high", "medium", "low"' in result.stderr


def test_a_closed_incident_cannot_be_reopened(kubectl: Kubectl) -> None:
    closed = """
apiVersion: opsledger.io/v1alpha1
kind: Incident
metadata: {name: closed-one, namespace: crd-checks}
spec: {title: Old outage, state: Closed, resolution: Restarted the database}
"""
    kubectl("apply", "-f", "-", input=closed)
    result = kubectl.run(
        "patch",
        "incident",
        "closed-one",
        "-n",
        "crd-checks",
        "--type=merge",
        "-p",
        '{"spec": {"state": "InProgress"}}',
        check=False,
    )
    assert result.returncode != 0
    assert "cannot be reopened" in result.stderr


def test_kubectl_explain_shows_the_model_descriptions(kubectl: Kubectl) -> None:
    out = kubectl("explain", "changes.spec.schedule")
    assert "When the change may start" in out
    assert "Earliest start (RFC 3339)" in out
    out = kubectl("explain", "ci.spec.protected")
    assert "approved Change" in out


def test_short_names_and_the_itsm_category(kubectl: Kubectl) -> None:
    resources = kubectl("api-resources", "--api-group=opsledger.io", "--categories=itsm")
    for line in (
        ("incidents", "inc"),
        ("changes", "chg"),
        ("servicelevels", "slo"),
        (
            "configurationitems",
            "ci",
        ),
    ):
        assert any(line[0] in row and line[1] in row.split() for row in resources.splitlines())


def test_the_source_of_a_configuration_item_cannot_be_changed(kubectl: Kubectl) -> None:
    def item(source: str) -> str:
        return f"""
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: pinned, namespace: crd-checks}}
spec:
  source: {{apiVersion: apps/v1, kind: Deployment, name: {source}}}
"""

    kubectl("apply", "-f", "-", input=item("web"))
    result = kubectl.run("apply", "-f", "-", input=item("api"), check=False)
    assert result.returncode != 0
    assert "spec.source: Invalid value" in result.stderr
    assert "spec.source is immutable" in result.stderr


@pytest.mark.parametrize(
    "schedule",
    ["0 0 22 * * 6", "R 22 * * 6", "H 22 * * 6", "0 22 L * *", "0 22 * * 6#2", "0 22 ? * 6"],
)
def test_a_schedule_outside_the_five_field_cron_dialect_is_rejected(
    kubectl: Kubectl, schedule: str
) -> None:
    # Seconds, random and hashed values, L, # and ? are read differently by each cron library:
    # the API server refuses them (CEL), with no operator running.
    manifest = f"""
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {{name: odd-cron, namespace: crd-checks}}
spec:
  service: shop
  maintenanceWindows: [{{schedule: "{schedule}", duration: 4h}}]
"""
    result = kubectl.run("apply", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    assert "spec.maintenanceWindows[0].schedule" in result.stderr
    assert "schedule is not a five-field cron expression" in result.stderr
    assert "seconds, R, H, L, W, # and ? are not supported" in result.stderr
    daily = manifest.replace(schedule, "@daily")
    kubectl("apply", "--dry-run=server", "-f", "-", input=daily)
