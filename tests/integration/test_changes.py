"""Changes end to end: approval by a real git merge, windows, health gates through the real
Prometheus, execution against the real API server, rollback and the Incident it opens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from opsledger.devenv.environment import DevEnvironment
from tests.support import (
    Kubectl,
    OperatorProcess,
    approve_proposal,
    git,
    proposed,
    remote_record,
    shop,
    wait_for,
)


def _now() -> datetime:
    return datetime.now(UTC)


def _rfc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _setup(kubectl: Kubectl, namespace: str, *, freeze: bool = False) -> None:
    freezes = ""
    if freeze:
        start, end = _rfc(_now() - timedelta(minutes=5)), _rfc(_now() + timedelta(hours=1))
        freezes = f"""
  freezes:
  - {{start: "{start}", end: "{end}", reason: "release freeze for the holidays"}}"""
    kubectl("apply", "-f", "-", input=shop(namespace, freezes=freezes))


def _change(namespace: str, name: str, body: str) -> str:
    return f"""
apiVersion: opsledger.io/v1alpha1
kind: Change
metadata: {{name: {name}, namespace: {namespace}}}
spec:
{body}"""


def _get(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = kubectl.json("get", "change", name, "-n", namespace)
    return result


def _in_phase(kubectl: Kubectl, namespace: str, name: str, *phases: str) -> dict[str, Any] | None:
    obj = _get(kubectl, namespace, name)
    return obj if obj.get("status", {}).get("phase") in phases else None


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def _branches(devenv: DevEnvironment) -> list[str]:
    out = git("--git-dir", str(devenv.cmdb_remote), "branch", "--format=%(refname:short)")
    return out.split()


def _deployment(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    result: dict[str, Any] = kubectl.json("get", "deployment", "web", "-n", namespace)
    return result


def test_a_normal_change_is_approved_by_merge_and_runs_in_its_window(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path
) -> None:
    ns = "chg-happy"
    _setup(kubectl, ns)
    not_before = _now() + timedelta(seconds=25)
    kubectl(
        "apply",
        "-f",
        "-",
        input=_change(
            ns,
            "upgrade-web",
            f"""
  type: normal
  summary: Upgrade web to 2.0
  service: shop
  targets: [web]
  schedule: {{notBefore: "{_rfc(not_before)}"}}
  plan:
  - target: {{apiVersion: apps/v1, kind: Deployment, name: web}}
    patchType: merge
    patch: {{spec: {{template: {{spec: {{containers: [{{name: app, image: "web:2.0"}}]}}}}}}}}
  checks:
    pre: [{{name: prometheus-up, query: 'vector(1)', above: 0}}]
    post: [{{name: prometheus-up, query: 'vector(1)', above: 0}}]
  soak: 2s
""",
        ),
    )
    branch = "changes/test/chg-happy/upgrade-web"
    pending = proposed(kubectl, ns, "upgrade-web")
    assert branch in _branches(devenv)
    proposal = remote_record(
        devenv, ref=branch, path="clusters/test/chg-happy/changes/upgrade-web.yaml"
    )
    assert proposal is not None
    assert proposal["phase"] == "PendingApproval"
    assert proposal["specHash"].startswith("sha256:")
    assert remote_record(devenv, "clusters/test/chg-happy/changes/upgrade-web.yaml") is None
    obj = _get(kubectl, ns, "upgrade-web")
    assert obj["status"]["phase"] == "PendingApproval"
    assert branch in _condition(obj, "Approved")["message"]
    assert pending == proposal_commit(devenv, branch)

    approve_proposal(devenv, tmp_path, branch, ("Alice Approver", "alice@example.com"))
    scheduled = wait_for(
        lambda: _in_phase(kubectl, ns, "upgrade-web", "Scheduled"), what="approved and scheduled"
    )
    approval = scheduled["status"]["approval"]
    assert approval["approver"] == "Alice Approver <alice@example.com>"
    merges = git("--git-dir", str(devenv.cmdb_remote), "log", "--merges", "--format=%H %cn")
    assert f"{approval['commit']} Alice Approver" in merges  # the merge commit, not the proposal
    # Inside the maintenance window, but before schedule.notBefore: it waits for that.
    assert scheduled["status"]["window"]["start"] == _rfc(not_before)
    assert _condition(scheduled, "WindowOpen")["status"] == "False"
    assert _deployment(kubectl, ns)["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "web:1.0"
    )

    done = wait_for(
        lambda: _in_phase(kubectl, ns, "upgrade-web", "Completed", "RolledBack", "Failed"),
        timeout=90,
        what="the change to finish",
    )
    assert done["status"]["phase"] == "Completed", done["status"]
    phases = [t["phase"] for t in done["status"]["transitions"]]
    assert phases == [
        "PendingApproval",
        "Approved",
        "Scheduled",
        "InProgress",
        "Verifying",
        "Completed",
    ]
    started = next(t["at"] for t in done["status"]["transitions"] if t["phase"] == "InProgress")
    assert started >= _rfc(not_before)
    # Its service and item were silenced in Alertmanager while it ran, and no longer are.
    silences = _silences(devenv, ns, "upgrade-web")
    assert len(silences) == 2
    assert {s["state"] for s in silences} == {"expired"}
    assert _condition(done, "Silenced")["reason"] == "Ended"
    patched = _deployment(kubectl, ns)
    assert patched["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2.0"
    assert patched["spec"]["replicas"] == 2  # a merge patch: what it does not name stays

    def recorded() -> dict[str, Any] | None:
        record = remote_record(
            devenv, ref="main", path="clusters/test/chg-happy/changes/upgrade-web.yaml"
        )
        return record if record and record["phase"] == "Completed" else None

    record = wait_for(recorded, what="the Completed record on main")

    def stamped() -> str | None:
        log = git(
            "--git-dir",
            str(devenv.cmdb_remote),
            "log",
            "--format=%B",
            "main",
            "--",
            "clusters/test/chg-happy/configurationitems/web.yaml",
        )
        return log if "during Change chg-happy/upgrade-web" in log else None

    # The item's record follows the patched Deployment, its commit naming the change.
    wait_for(stamped, what="the item's record committed with the change's name")
    item = remote_record(
        devenv, ref="main", path="clusters/test/chg-happy/configurationitems/web.yaml"
    )
    assert item is not None
    assert "web:2.0" in yaml.safe_dump(item["observed"])
    assert record["approval"]["approver"] == "Alice Approver <alice@example.com>"
    assert record["specHash"] == proposal["specHash"]
    assert [t["phase"] for t in record["transitions"]][-1] == "Completed"


def proposal_commit(devenv: DevEnvironment, branch: str) -> str:
    return git("--git-dir", str(devenv.cmdb_remote), "rev-parse", branch).strip()


def test_a_freeze_holds_an_approved_change_and_an_edit_voids_its_approval(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path
) -> None:
    ns = "chg-frozen"
    _setup(kubectl, ns, freeze=True)
    kubectl(
        "apply",
        "-f",
        "-",
        input=_change(
            ns,
            "rotate-certs",
            """
  type: normal
  summary: Rotate the web certificates by hand
  service: shop
  targets: [web]
""",
        ),
    )
    branch = "changes/test/chg-frozen/rotate-certs"
    first = proposed(kubectl, ns, "rotate-certs")
    approve_proposal(devenv, tmp_path, branch, ("Bob Reviewer", "bob@example.com"), how="squash")
    held = wait_for(
        lambda: _in_phase(kubectl, ns, "rotate-certs", "Scheduled"), what="approved (squash)"
    )
    assert held["status"]["approval"]["approver"] == "Bob Reviewer <bob@example.com>"
    time.sleep(4)  # several ticks inside the freeze
    held = _get(kubectl, ns, "rotate-certs")
    assert held["status"]["phase"] == "Scheduled"
    window = _condition(held, "WindowOpen")
    assert window["status"] == "False"
    assert "frozen until" in window["message"]
    assert "release freeze for the holidays" in window["message"]

    kubectl(
        "patch",
        "change",
        "rotate-certs",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec": {"summary": "Rotate the web and api certificates by hand"}}',
    )

    def reproposed() -> dict[str, Any] | None:
        obj = _get(kubectl, ns, "rotate-certs")
        approval = obj["status"].get("approval") or {}
        commit = approval.get("proposalCommit")
        return obj if commit and commit != first else None

    obj = wait_for(reproposed, what="a new proposal after the edit")
    assert obj["status"]["phase"] == "PendingApproval"
    assert "approver" not in obj["status"]["approval"]
    assert any(
        t["phase"] == "PendingApproval" and "approval is void" in (t.get("reason") or "")
        for t in obj["status"]["transitions"]
    )
    proposal = remote_record(
        devenv, ref=branch, path="clusters/test/chg-frozen/changes/rotate-certs.yaml"
    )
    assert proposal is not None
    assert proposal["spec"]["summary"] == "Rotate the web and api certificates by hand"
    time.sleep(3)  # the stale approval on main does not count
    assert _get(kubectl, ns, "rotate-certs")["status"]["phase"] == "PendingApproval"

    git("--git-dir", str(devenv.cmdb_remote), "branch", "-D", branch)
    rejected = wait_for(lambda: _in_phase(kubectl, ns, "rotate-certs", "Rejected"), what="rejected")
    assert "deleted without being merged" in rejected["status"]["transitions"][-1]["reason"]


def test_unknown_or_bad_health_keeps_a_change_waiting_until_health_returns(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path
) -> None:
    ns = "chg-health"
    _setup(kubectl, ns)
    healthy_from = _now() + timedelta(seconds=40)
    devenv.table.stop("prometheus")
    try:
        kubectl(
            "apply",
            "-f",
            "-",
            input=_change(
                ns,
                "scale-web",
                f"""
  type: normal
  summary: Scale web to 3
  service: shop
  targets: [web]
  plan:
  - target: {{apiVersion: apps/v1, kind: Deployment, name: web}}
    patchType: json
    patch: [{{op: replace, path: /spec/replicas, value: 3}}]
  checks:
    pre: [{{name: warmed-up, query: 'vector({healthy_from.timestamp():.0f} - time())', below: 0}}]
""",
            ),
        )
        proposed(kubectl, ns, "scale-web")
        approve_proposal(
            devenv, tmp_path, "changes/test/chg-health/scale-web", ("Carol", "carol@ex.com")
        )

        def unknown() -> dict[str, Any] | None:
            obj = _in_phase(kubectl, ns, "scale-web", "Scheduled")
            if obj is None:
                return None
            gate = next((c for c in obj["status"]["conditions"] if c["type"] == "HealthGate"), {})
            return obj if gate.get("status") == "Unknown" else None

        obj = wait_for(unknown, what="HealthGate=Unknown while Prometheus is stopped")
        assert "did not answer" in _condition(obj, "HealthGate")["message"]
        time.sleep(3)
        assert _get(kubectl, ns, "scale-web")["status"]["phase"] == "Scheduled"
        assert _deployment(kubectl, ns)["spec"]["replicas"] == 2
    finally:
        devenv.up()  # Prometheus back, on the same port and data

    def unhealthy() -> dict[str, Any] | None:
        obj = _get(kubectl, ns, "scale-web")
        gate = _condition(obj, "HealthGate")
        return obj if gate["status"] == "False" else None

    if _now() < healthy_from - timedelta(seconds=5):
        obj = wait_for(unhealthy, what="HealthGate=False while the pre-check fails")
        assert obj["status"]["phase"] == "Scheduled"
        assert "warmed-up is" in _condition(obj, "HealthGate")["message"]
        assert "must be below 0" in _condition(obj, "HealthGate")["message"]

    done = wait_for(
        lambda: _in_phase(kubectl, ns, "scale-web", "Completed", "Failed", "RolledBack"),
        timeout=90,
        what="the change to run once healthy",
    )
    assert done["status"]["phase"] == "Completed", done["status"]
    started = next(t["at"] for t in done["status"]["transitions"] if t["phase"] == "InProgress")
    assert started >= _rfc(healthy_from)
    deployment = _deployment(kubectl, ns)
    assert deployment["spec"]["replicas"] == 3
    # The step's stamp is on the target: a restart would not apply the JSON patch again.
    uid = done["metadata"]["uid"]
    assert deployment["metadata"]["annotations"]["opsledger.io/change-step"] == f"{uid}/0"


def test_a_failing_post_check_restores_the_exact_prior_spec_and_opens_an_incident(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path
) -> None:
    ns = "chg-rollback"
    _setup(kubectl, ns)
    before = _deployment(kubectl, ns)
    kubectl(
        "apply",
        "-f",
        "-",
        input=_change(
            ns,
            "bad-release",
            """
  type: normal
  summary: Release web 3.0 with a new mode
  service: shop
  targets: [web]
  plan:
  - target: {apiVersion: apps/v1, kind: Deployment, name: web}
    patchType: merge
    patch:
      metadata: {labels: {release: "3.0"}}
      spec:
        template:
          spec:
            containers: [{name: app, image: "web:3.0", env: [{name: MODE, value: green}]}]
  - target: {apiVersion: apps/v1, kind: Deployment, name: web}
    patchType: apply
    patch: {spec: {replicas: 5}}
  checks:
    post: [{name: error-ratio, query: 'vector(0.2)', below: 0.01}]
  soak: 1s
""",
        ),
    )
    proposed(kubectl, ns, "bad-release")
    approve_proposal(
        devenv, tmp_path, "changes/test/chg-rollback/bad-release", ("Dan", "dan@ex.com")
    )
    done = wait_for(
        lambda: _in_phase(kubectl, ns, "bad-release", "Completed", "Failed", "RolledBack"),
        timeout=90,
        what="the change to finish",
    )
    assert done["status"]["phase"] == "RolledBack", done["status"]
    assert "error-ratio is 0.2, must be below 0.01" in done["status"]["transitions"][-1]["reason"]
    after = _deployment(kubectl, ns)
    assert after["spec"] == before["spec"]
    assert after["metadata"].get("labels") == before["metadata"].get("labels")
    incident = kubectl.json("get", "incident", done["status"]["incident"], "-n", ns)
    assert incident["spec"]["origin"] == {"type": "change", "reference": "bad-release"}
    assert incident["spec"]["configurationItems"] == ["web"]
    assert "rolled back" in incident["spec"]["title"]
    # While it ran, Alertmanager silenced its service and item; the silences were expired
    # before the rollback's Incident was opened, so its own failure pages.
    silences = _silences(devenv, ns, "bad-release")
    assert sorted(m for s in silences for m in s["matchers"]) == [
        ("configuration_item", "web"),
        ("namespace", ns),
        ("namespace", ns),
        ("service", "shop"),
    ]
    opened = datetime.fromisoformat(incident["metadata"]["creationTimestamp"])
    for silence in silences:
        assert silence["state"] == "expired"
        assert silence["ended"] <= opened + timedelta(seconds=1), (silence, opened)
    assert "silences" not in done["status"]


def _silences(devenv: DevEnvironment, namespace: str, name: str) -> list[dict[str, Any]]:
    """The silences OpsLedger made in the real Alertmanager for a change, expired ones too."""
    with urllib.request.urlopen(f"{devenv.url('alertmanager')}/api/v2/silences", timeout=5) as r:
        every = json.load(r)
    return [
        {
            "matchers": [(m["name"], m["value"]) for m in s["matchers"]],
            "state": s["status"]["state"],
            "ended": datetime.fromisoformat(s["endsAt"].replace("Z", "+00:00")),
        }
        for s in every
        if f"Change {namespace}/{name} is in progress" in s["comment"]
    ]


def _plan(devenv: DevEnvironment, manifest: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "opsledger",
            "change",
            "plan",
            str(manifest),
            "--prometheus",
            devenv.url("prometheus"),
            "-o",
            "json",
            *extra,
        ],
        env={**os.environ, "KUBECONFIG": str(devenv.kubeconfig)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def test_change_plan_and_status_show_conflicts_and_risk(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path
) -> None:
    ns = "chg-plan"
    _setup(kubectl, ns)
    kubectl(
        "apply",
        "-f",
        "-",
        input=f"""
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: web, namespace: {ns}}}
spec:
  service: shop
  criticality: critical
  source: {{apiVersion: apps/v1, kind: Deployment, name: web}}
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: checkout, namespace: {ns}}}
spec:
  service: shop
  relationships: [{{type: dependsOn, target: web}}]
---"""
        + _change(
            ns,
            "hands-on",
            """
  type: emergency
  summary: Fix web by hand
  service: shop
  targets: [web]
""",
        ),
    )
    wait_for(
        lambda: _in_phase(kubectl, ns, "hands-on", "InProgress"), what="the permit in progress"
    )
    manifest = tmp_path / "upgrade.yaml"
    manifest.write_text(
        _change(
            ns,
            "upgrade",
            """
  type: normal
  summary: Upgrade checkout's backend
  service: shop
  targets: [web]
  checks:
    pre: [{name: prometheus-up, query: 'vector(1)', above: 0}]
""",
        )
    )
    code, report = _plan(devenv, manifest)
    assert code == 1
    assert [c["change"] for c in report["conflicts"]] == ["hands-on"]
    assert report["conflicts"][0]["inProgress"] is True
    assert "change hands-on is in progress on the same items" in report["blockers"]
    assert report["health"]["status"] == "Healthy"
    assert report["window"]["next"] is not None
    assert "criticality critical" in report["risk"]["factors"], report["risk"]
    assert "1 dependent item(s)" in report["risk"]["factors"], report["risk"]
    assert report["risk"]["level"] == "high"

    kubectl("apply", "-f", str(manifest))

    def flagged() -> dict[str, Any] | None:
        obj = _get(kubectl, ns, "upgrade")
        status = obj.get("status", {})
        return obj if status.get("conflicts") == ["hands-on"] and status.get("risk") else None

    obj = wait_for(flagged, what="the conflict and risk in status")
    conflict = _condition(obj, "Conflict")
    assert conflict["status"] == "True"
    assert "hands-on (in progress)" in conflict["message"]
    assert obj["status"]["risk"] == "high"

    kubectl("patch", "change", "hands-on", "-n", ns, "--type=merge", "-p", '{"spec":{"done":true}}')
    wait_for(lambda: _in_phase(kubectl, ns, "hands-on", "Completed"), what="the permit done")
    code, report = _plan(devenv, manifest)
    assert report["conflicts"] == []
    assert code == 0, report["blockers"]
    assert report["ok"] is True


def test_standard_emergency_and_cancelled_changes(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path
) -> None:
    ns = "chg-types"
    _setup(kubectl, ns)
    kubectl(
        "apply",
        "-f",
        "-",
        input=_change(
            ns,
            "restart-web",
            """
  type: standard
  template: restart-workload
  summary: Restart web
  service: shop
  targets: [web]
""",
        )
        + "\n---"
        + _change(
            ns,
            "stretched",
            """
  type: standard
  template: restart-workload
  summary: Restart web, and scale it up while at it
  service: shop
  targets: [web]
  plan:
  - target: {apiVersion: apps/v1, kind: Deployment, name: web}
    patch: {spec: {replicas: 9}}
""",
        )
        + "\n---"
        + _change(
            ns,
            "firefight",
            """
  type: emergency
  summary: Stop the bleeding
  service: shop
  targets: [api]
""",
        )
        + "\n---"
        + _change(
            ns,
            "someday",
            """
  type: normal
  summary: Maybe later
  service: shop
  targets: [db]
  cancelled: true
""",
        ),
    )

    def no_template() -> dict[str, Any] | None:
        obj = _get(kubectl, ns, "restart-web")
        approved = next(
            (c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Approved"), {}
        )
        return obj if approved.get("reason") == "TemplateNotFound" else None

    waiting = wait_for(no_template, what="the standard change waiting for its template")
    assert waiting["status"]["phase"] == "PendingApproval"
    assert "standard-changes/restart-workload.yaml" in _condition(waiting, "Approved")["message"]

    # The change manager adds the template to the CMDB's protected branch.
    work = tmp_path / "cmdb"
    git("clone", "--quiet", str(devenv.cmdb_remote), str(work))
    (work / "standard-changes").mkdir(exist_ok=True)
    (work / "standard-changes" / "restart-workload.yaml").write_text(
        "summary: Rolling restart of a workload\nrisk: low\n"
    )
    git("add", "-A", cwd=work)
    who = ("Dana Manager", "dana@example.com")
    git("commit", "--quiet", "-m", "Add the restart-workload standard change", cwd=work, who=who)
    for _ in range(5):
        if subprocess.run(["git", "push", "--quiet"], cwd=work, check=False).returncode == 0:
            break
        git("pull", "--quiet", "--rebase", cwd=work, who=who)  # the rebase recommits as Dana

    running = wait_for(
        lambda: _in_phase(kubectl, ns, "restart-web", "InProgress"),
        timeout=90,
        what="the standard change pre-approved and started",
    )

    # The same template does not pre-approve a plan it does not allow: that one is proposed.
    def outside() -> dict[str, Any] | None:
        obj = _get(kubectl, ns, "stretched")
        approved = next(
            (c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Approved"), {}
        )
        return approved if approved.get("reason") == "OutsideTemplate" else None

    condition = wait_for(outside, timeout=60, what="the stretched standard change proposed")
    assert "it leaves standard-change template restart-workload" in condition["message"]
    assert "the change has a plan; the template allows none" in condition["message"]
    assert _get(kubectl, ns, "stretched")["status"]["phase"] == "PendingApproval"
    assert "changes/test/chg-types/stretched" in _branches(devenv)
    assert _deployment(kubectl, ns)["spec"]["replicas"] != 9
    # `opsledger change plan --template` says the same before anything is applied.
    stretched = tmp_path / "stretched.yaml"
    stretched.write_text(yaml.safe_dump(_get(kubectl, ns, "stretched") | {"status": {}}))
    template = work / "standard-changes" / "restart-workload.yaml"
    _, report = _plan(devenv, stretched, "--template", str(template))
    assert report["template"]["misfits"] == [
        "the change has a plan; the template allows none (a permit only)"
    ]
    assert running["status"]["approval"]["approver"].startswith(
        "standard-change template restart-workload (by Dana Manager"
    )

    emergency = wait_for(
        lambda: _in_phase(kubectl, ns, "firefight", "InProgress"), what="the emergency started"
    )
    assert emergency["status"]["reviewRequired"] is True
    assert "review" in emergency["status"]["approval"]["approver"]
    assert [t["phase"] for t in emergency["status"]["transitions"]] == [
        "PendingApproval",
        "Approved",
        "Scheduled",
        "InProgress",
    ]

    cancelled = wait_for(lambda: _in_phase(kubectl, ns, "someday", "Cancelled"), what="cancelled")
    assert "cancelled" in cancelled["status"]["transitions"][-1]["reason"]
    assert "changes/test/chg-types/someday" not in _branches(devenv)  # nothing was proposed


def test_a_running_change_edited_past_a_missing_webhook_applies_nothing_and_fails(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path
) -> None:
    """No admission webhook here (as when it is not installed): the edit reaches the API
    server, and the executor's own check of the approved hash is what stops it."""
    ns = "chg-tamper"
    _setup(kubectl, ns)
    kubectl(
        "apply",
        "-f",
        "-",
        input=_change(ns, "by-hand", "  type: normal\n  summary: By hand\n  service: shop\n"
                      "  targets: [web]\n"),
    )  # fmt: skip
    branch = f"changes/test/{ns}/by-hand"
    proposed(kubectl, ns, "by-hand")
    approve_proposal(devenv, tmp_path, branch, ("Alice Approver", "alice@example.com"))
    wait_for(lambda: _in_phase(kubectl, ns, "by-hand", "InProgress"), timeout=90, what="running")
    step = (
        '{"spec":{"plan":[{"target":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"},'
        '"patch":{"spec":{"replicas":7}}}]}}'
    )
    kubectl("patch", "change", "by-hand", "-n", ns, "--type=merge", "-p", step)
    failed = wait_for(
        lambda: _in_phase(kubectl, ns, "by-hand", "Failed", "Completed", "Verifying"),
        timeout=60,
        what="the edited change stopped",
    )
    assert failed["status"]["phase"] == "Failed", failed["status"]
    assert _condition(failed, "Approved")["reason"] == "ApprovalVoided"
    assert (
        "the spec running is not the one approved" in failed["status"]["transitions"][-1]["reason"]
    )
    assert _deployment(kubectl, ns)["spec"]["replicas"] == 2  # the unapproved step never ran
    incident = kubectl.json("get", "incident", "by-hand-rollback", "-n", ns)
    assert "not the one approved" in incident["spec"]["description"]
