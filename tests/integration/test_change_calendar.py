"""The change calendar end to end: a blackout and a shared calendar's event hold approved
changes; a freeze exception lets one change through, approved under the approval policy's
exceptions rule; the freeze reaches the real Prometheus as a metric and an alert, and a pipeline
asks the operator's window endpoint. On the real API server calling the operator's webhooks and
a real CMDB remote.

Bob is the requester. Carol and Dana may approve changes; only Carol may approve a freeze
exception. Both ServiceLevels' maintenance windows are always open; shop has a blackout covering
the whole run, payments names the CMDB's release-freezes calendar, whose event covers it too.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_api_client import PrometheusConnect

from opsledger.devenv.cmdb_remote import ensure_cmdb_remote
from opsledger.devenv.environment import DevEnvironment
from opsledger.domain.calendars import parse
from tests.support import (
    Kubectl,
    OperatorProcess,
    approve_proposal,
    git,
    proposed,
    shop,
    wait_for,
    webhook_settings,
)

NS = "calendar"
BOB = ("--as=bob", "--as-group=system:masters")
CAROL = ("Carol Manager", "carol@example.com")
DANA = ("Dana Reviewer", "dana@example.com")
POLICY = """rules:
- approvers: {users: [carol, dana]}
required: {low: 1, medium: 1, high: 1}
exceptions:
  approvers: {users: [carol]}
people:
  bob: {kubernetes: [bob], git: [bob@example.com]}
  carol: {git: [carol@example.com]}
  dana: {git: [dana@example.com]}
"""
REASON = "quarter-end batch: no changes"


def _calendar() -> str:
    """An export as calendar programs write it: one event around now, one a year ago."""
    stamp = "%Y%m%dT%H%M%SZ"
    now = datetime.now(UTC)
    events = [
        ("freeze@example", "Release freeze", now - timedelta(hours=1), now + timedelta(hours=2)),
        ("old@example", "Last year's freeze", now - timedelta(days=365), now - timedelta(days=364)),
    ]
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Example Corp//Release calendar//EN"]
    for uid, summary, start, end in events:
        lines += [
            "BEGIN:VEVENT",
            f"UID:{uid}",
            f"DTSTAMP:{now:{stamp}}",
            f"SUMMARY:{summary}",
            f"DTSTART:{start:{stamp}}",
            f"DTEND:{end:{stamp}}",
            "END:VEVENT",
        ]
    return "\r\n".join([*lines, "END:VCALENDAR", ""])


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cmdb")
    bare = folder / "cmdb.git"
    ensure_cmdb_remote(bare)
    work = folder / "admin"
    git("clone", "--quiet", str(bare), str(work))
    (work / "approval-policy.yaml").write_text(POLICY)
    (work / "calendars").mkdir()
    (work / "calendars" / "release-freezes.ics").write_text(_calendar())
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "Approval policy and the release freezes", cwd=work, who=DANA)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    return bare


@pytest.fixture(scope="module")
def operator(
    devenv: DevEnvironment, crds: None, remote: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    folder = tmp_path_factory.mktemp("operator")
    proc = OperatorProcess(devenv, folder / "operator.log").start(
        env={
            "OPSLEDGER_CMDB_URL": str(remote),
            "OPSLEDGER_CMDB_WORKDIR": str(folder / "cmdb"),
            **webhook_settings(devenv),
        }
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def blacked_out(kubectl: Kubectl, operator: OperatorProcess) -> None:
    """shop, with a daily blackout that began two minutes ago and lasts two hours."""
    began = datetime.now(UTC) - timedelta(minutes=2)
    blackout = (
        "\n  blackouts:\n"
        f'  - {{schedule: "{began.minute} {began.hour} * * *", duration: 2h, reason: "{REASON}"}}'
    )
    kubectl("apply", "-f", "-", input=shop(NS, replicas=1, freezes=blackout))
    kubectl(
        "apply",
        "-f",
        "-",
        input=f"""
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {{name: payments, namespace: {NS}}}
spec:
  service: payments
  maintenanceWindows: [{{schedule: "* * * * *", duration: 2m}}]
  calendars: [{{name: release-freezes, timeZone: Europe/Berlin}}]
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: ledger, namespace: {NS}}}
spec: {{service: payments}}
""",
    )


def _create(
    kubectl: Kubectl, name: str, exception: str = "", service: str = "shop", target: str = "web"
) -> str:
    kubectl(
        "apply",
        "-f",
        "-",
        *BOB,
        input=f"""
apiVersion: opsledger.io/v1alpha1
kind: Change
metadata: {{name: {name}, namespace: {NS}}}
spec:
  type: normal
  summary: {name}
  service: {service}
  targets: [{target}]{exception}
""",
    )
    proposed(kubectl, NS, name)
    return f"changes/test/{NS}/{name}"


def _exception(hours: int = 1) -> str:
    expires = (datetime.now(UTC) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f'\n  freezeException: {{reason: "CVE-2026-1234 fix", expires: "{expires}"}}'


def _get(kubectl: Kubectl, name: str) -> dict[str, Any]:
    found: dict[str, Any] = kubectl.json("get", "change", name, "-n", NS)
    return found


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"].get("conditions", []) if c["type"] == kind)


def _phase(kubectl: Kubectl, name: str, phase: str) -> dict[str, Any] | None:
    obj = _get(kubectl, name)
    return obj if (obj.get("status") or {}).get("phase") == phase else None


def test_a_blackout_holds_an_approved_change(
    devenv: DevEnvironment, kubectl: Kubectl, remote: Path, blacked_out: None, tmp_path: Path
) -> None:
    branch = _create(kubectl, "held")
    approve_proposal(devenv, tmp_path, branch, DANA, remote=remote)
    held = wait_for(lambda: _phase(kubectl, "held", "Scheduled"), what="held approved")
    wait_for(
        lambda: _condition(_get(kubectl, "held"), "WindowOpen")["status"] == "False",
        what="the window decision",
    )
    window = _condition(_get(kubectl, "held"), "WindowOpen")
    assert window["reason"] == "OutsideWindow"
    assert window["message"].startswith("in a blackout until ")
    assert REASON in window["message"]
    assert "next eligible window" in window["message"]
    assert held["status"]["approval"]["approver"] == "dana"


def test_a_freeze_exception_needs_the_approver_the_policy_names_and_then_lets_one_through(
    devenv: DevEnvironment, kubectl: Kubectl, remote: Path, blacked_out: None, tmp_path: Path
) -> None:
    # Dana may approve the change, not its exception: merged, it approves nothing yet.
    branch = _create(kubectl, "by-dana", _exception())
    approve_proposal(devenv, tmp_path, branch, DANA, remote=remote)

    def refused() -> dict[str, Any] | None:
        found = _condition(_get(kubectl, "by-dana"), "Approved")
        return found if found.get("reason") == "ExceptionNotApproved" else None

    condition = wait_for(refused, what="the exception refused")
    assert (
        "the change is approved by dana, but its freeze exception needs 1" in (condition["message"])
    )
    assert "from carol, other than the requester; has none" in condition["message"]
    assert _get(kubectl, "by-dana")["status"]["phase"] == "PendingApproval"

    # Carol may: the change starts inside the blackout, and says why.
    branch = _create(kubectl, "by-carol", _exception())
    approve_proposal(devenv, tmp_path, branch, CAROL, remote=remote)
    running = wait_for(lambda: _phase(kubectl, "by-carol", "InProgress"), what="started")
    assert running["status"]["approval"]["exceptionApprover"] == "carol"
    window = _condition(running, "WindowOpen")
    assert window["status"] == "True"
    assert window["message"].startswith("freeze exception until ")
    assert f"lifts the blackout ({REASON}" in window["message"]
    # ... while the change without one still waits.
    assert _get(kubectl, "held")["status"]["phase"] == "Scheduled"
    kubectl("patch", "change", "by-carol", "-n", NS, "--type=merge", "-p", '{"spec":{"done":true}}')


def test_an_exception_is_part_of_what_is_approved(kubectl: Kubectl, blacked_out: None) -> None:
    """Bob adds an exception to his approved, held change: refused (an approved spec is frozen),
    and a standard change (pre-approved, no pull request) cannot carry one at all."""
    edited = kubectl.run(
        "patch",
        "change",
        "held",
        "-n",
        NS,
        *BOB,
        "--type=merge",
        "-p",
        '{"spec":{"freezeException":{"reason":"me","expires":"2099-01-01T00:00:00Z"}}}',
        check=False,
    )
    assert edited.returncode != 0
    assert "its spec is frozen" in edited.stderr
    standard = kubectl.run(
        "apply",
        "-f",
        "-",
        *BOB,
        input=f"""
apiVersion: opsledger.io/v1alpha1
kind: Change
metadata: {{name: sneaky, namespace: {NS}}}
spec:
  type: standard
  template: restart
  summary: sneaky
  service: shop
  targets: [web]{_exception()}
""",
        check=False,
    )
    assert standard.returncode != 0
    assert "only a normal change may carry one" in standard.stderr


def test_a_shared_calendar_s_event_holds_an_approved_change(
    devenv: DevEnvironment, kubectl: Kubectl, remote: Path, blacked_out: None, tmp_path: Path
) -> None:
    branch = _create(kubectl, "pay-release", service="payments", target="ledger")
    approve_proposal(devenv, tmp_path, branch, DANA, remote=remote)
    wait_for(lambda: _phase(kubectl, "pay-release", "Scheduled"), what="approved")

    def held() -> dict[str, Any] | None:
        found = _condition(_get(kubectl, "pay-release"), "WindowOpen")
        # (until the operator has read the calendar, it holds the change saying so)
        return found if "held by calendar release-freezes: " in found["message"] else None

    window = wait_for(held, what="the calendar's event holding the change")
    assert window["status"] == "False"
    assert window["message"].startswith("held by calendar release-freezes: Release freeze until")


def test_the_freeze_reaches_prometheus_and_the_pipeline_endpoint(
    devenv: DevEnvironment, blacked_out: None
) -> None:
    prometheus = PrometheusConnect(url=devenv.url("prometheus"), disable_ssl=True)

    def frozen() -> set[str]:
        found = prometheus.get_current_metric_value(
            f'opsledger_change_freeze_active{{namespace="{NS}"}} == 1'
        )
        return {f["metric"]["service"] for f in found} or set()

    assert wait_for(lambda: frozen() == {"shop", "payments"} or None, timeout=90, what="frozen")

    def alerting() -> set[str]:
        found = prometheus.get_current_metric_value(
            f'ALERTS{{alertname="OpsLedgerChangeFreeze",namespace="{NS}",alertstate="firing"}}'
        )
        return {f["metric"]["service"] for f in found}

    wait_for(lambda: alerting() == {"shop", "payments"} or None, timeout=90, what="alerts")

    port = devenv.ports()["operator-receiver"]
    base = f"http://127.0.0.1:{port}/v1/window"
    with urllib.request.urlopen(f"{base}?namespace={NS}&service=shop", timeout=5) as r:
        answer = json.load(r)
    assert answer["allowed"] is False
    assert answer["rule"] == "blackout"
    assert REASON in answer["reason"]
    assert set(answer) == {"allowed", "rule", "reason", "next"}
    with urllib.request.urlopen(f"{base}?namespace={NS}&service=payments", timeout=5) as r:
        assert json.load(r)["rule"] == "calendar"
    # The same calendar as a feed people subscribe to: the release freeze and the change it holds.
    feed = f"http://127.0.0.1:{port}/v1/calendar.ics?namespace={NS}&service=payments&days=7"
    with urllib.request.urlopen(feed, timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/calendar")
        text = r.read().decode()
    now = datetime.now(UTC)
    events = {
        h.what for h in parse("feed", text).holds(now - timedelta(days=1), now + timedelta(days=8))
    }
    assert "calendar feed: calendar release-freezes: Release freeze" in events
    assert any(e.startswith("calendar feed: change pay-release (Scheduled)") for e in events), (
        events
    )
    for query, status in (
        (f"?namespace={NS}&service=nope", 404),
        ("?service=shop", 400),
        (f"?namespace={NS}&service=shop&at=yesterday", 400),
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + query, timeout=5)
        assert refused.value.code == status, query
        assert "error" in json.load(refused.value)
