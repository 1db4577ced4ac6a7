"""Approval through a real forge (`forge` approval mode): the operator opens the pull request on
Gitea, a reviewer the approval policy allows approves and squash-merges it there, and the change
runs; a closed pull request rejects. Tried as someone would get around it: the requester
approving and merging their own proposal, a merge without any approving review, a review by
someone the policy does not name.

The CMDB remote in this module is the Gitea repository itself (over HTTP with a token), so
the merge the operator reads back is the one Gitea made; the admission webhook records who
created each Change (kubectl --as a Gitea user's name makes them the same person).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from opsledger.devenv.environment import DevEnvironment
from opsledger.devenv.gitea import OWNER, REVIEWER, GiteaServer
from tests.support import Kubectl, OperatorProcess, shop, wait_for, webhook_settings

NS = "forge"


@pytest.fixture(scope="module")
def gitea(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GiteaServer]:
    server = GiteaServer(tmp_path_factory.mktemp("gitea"))
    try:
        server.up()
    except Exception:
        server.down()
        raise
    yield server
    server.down()


@pytest.fixture(scope="module")
def operator(
    devenv: DevEnvironment,
    crds: None,
    gitea: GiteaServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    folder = tmp_path_factory.mktemp("operator")
    token = str(gitea.token_file(OWNER))
    proc = OperatorProcess(devenv, folder / "operator.log").start(
        env={
            "OPSLEDGER_CLUSTER": "forge",
            "OPSLEDGER_CMDB_URL": gitea.clone_url,
            "OPSLEDGER_CMDB_WORKDIR": str(folder / "cmdb"),
            "OPSLEDGER_CMDB_USERNAME": OWNER,
            "OPSLEDGER_CMDB_TOKEN_FILE": token,
            "OPSLEDGER_FORGE": "gitea",
            "OPSLEDGER_FORGE_URL": gitea.url,
            "OPSLEDGER_FORGE_REPOSITORY": gitea.repository,
            "OPSLEDGER_FORGE_TOKEN_FILE": token,
            "OPSLEDGER_APPROVAL_MODE": "forge",
            **webhook_settings(devenv),
        }
    )
    yield proc
    proc.stop()


POLICY = """# Who may approve changes to the shop: rita and vera (never the requester).
rules:
- match: {services: [shop]}
  approvers: {users: [rita, vera]}
required: {low: 1, medium: 1, high: 2}
"""


@pytest.fixture(scope="module")
def shop_with_web(gitea: GiteaServer, kubectl: Kubectl, operator: OperatorProcess) -> None:
    # The change manager puts the approval policy on main (in real life, by pull request).
    gitea.api(
        "POST",
        f"/repos/{gitea.repository}/contents/approval-policy.yaml",
        {
            "content": base64.b64encode(POLICY.encode()).decode(),
            "message": "Add the approval policy",
            "branch": "main",
        },
    )
    kubectl("apply", "-f", "-", input=shop(NS, replicas=1, item="criticality: high"))


def _approval_condition(kubectl: Kubectl, name: str) -> dict[str, Any]:
    obj = _get(kubectl, name)
    return next(c for c in obj["status"].get("conditions", []) if c["type"] == "Approved")


def _waiting_for_approvals(kubectl: Kubectl, name: str, saying: str) -> dict[str, Any]:
    def missing() -> dict[str, Any]:
        condition = _approval_condition(kubectl, name)
        # on a timeout, the last condition says where the approval stood
        assert condition["reason"] == "ApprovalsMissing", condition
        assert saying in condition["message"], condition
        return condition

    result: dict[str, Any] = wait_for(missing, timeout=90, what=f"{name} merged, not approved")
    assert _get(kubectl, name)["status"]["phase"] == "PendingApproval"
    return result


def _review(gitea: GiteaServer, number: int, user: str) -> None:
    """Approve as `user`, once Gitea has worked out the pull request (as a person reviews what
    the page shows): a review Gitea records against no commit yet counts for nothing."""
    pull = f"/repos/{gitea.repository}/pulls/{number}"
    wait_for(
        lambda: gitea.api("GET", pull).get("mergeable"), what="Gitea to check the pull request"
    )
    gitea.api(
        "POST",
        f"/repos/{gitea.repository}/pulls/{number}/reviews",
        {"event": "APPROVED", "body": "Looks safe."},
        user=user,
    )


def _change(name: str, summary: str, image: str) -> str:
    return f"""
apiVersion: opsledger.io/v1alpha1
kind: Change
metadata: {{name: {name}, namespace: {NS}}}
spec:
  type: normal
  summary: {summary}
  service: shop
  targets: [web]
  plan:
  - target: {{apiVersion: apps/v1, kind: Deployment, name: web}}
    patchType: merge
    patch: {{spec: {{template: {{spec: {{containers: [{{name: app, image: "{image}"}}]}}}}}}}}
  checks:
    post: [{{name: prometheus-up, query: 'vector(1)', above: 0}}]
  soak: 1s
"""


def _get(kubectl: Kubectl, name: str) -> dict[str, Any]:
    result: dict[str, Any] = kubectl.json("get", "change", name, "-n", NS)
    return result


def _pull_number(kubectl: Kubectl, name: str) -> int:
    def number() -> int | None:
        approval = _get(kubectl, name).get("status", {}).get("approval") or {}
        value = approval.get("pullRequestNumber")
        return int(value) if value else None

    result: int = wait_for(number, timeout=60, what=f"the pull request of {name}")
    return result


def _squash_merge(gitea: GiteaServer, number: int) -> None:
    """Press the merge button as the reviewer, the way a person does: again when the base
    branch moved under it. The operator keeps committing item records to main, and Gitea
    answers 409 when such a push lands between its merge and its update of main."""
    pull = f"/repos/{gitea.repository}/pulls/{number}"

    def merged() -> bool:
        # Gitea checks mergeability in the background; the merge button waits for it too.
        if not gitea.api("GET", pull).get("mergeable"):
            return False
        try:
            gitea.api(
                "POST",
                f"{pull}/merge",
                {"Do": "squash", "delete_branch_after_merge": True},
                user=REVIEWER,
            )
        except RuntimeError as exc:
            # PushRejected, PushOutOfDate, "merge push out of date"
            if "HTTP 409" in str(exc) and "push" in str(exc).lower():
                return False
            raise
        return True

    wait_for(merged, timeout=60, what="the reviewer's squash merge on Gitea")


def test_a_pull_request_approved_and_squash_merged_on_gitea_approves_the_change(
    gitea: GiteaServer, kubectl: Kubectl, shop_with_web: None
) -> None:
    kubectl("apply", "-f", "-", input=_change("upgrade-web", "Upgrade web to 2.0", "web:2.0"))
    number = _pull_number(kubectl, "upgrade-web")
    pull = gitea.api("GET", f"/repos/{gitea.repository}/pulls/{number}")
    assert pull["head"]["ref"] == "changes/forge/forge/upgrade-web"
    assert pull["base"]["ref"] == "main"
    assert pull["title"] == "change(forge/forge/upgrade-web): Upgrade web to 2.0"
    body = pull["body"]
    for expected in ("**Window:**", "**Risk:** medium", "**Affected items:** web", "Plan:"):
        assert expected in body, body
    assert "merge patch of Deployment web" in body
    approved = _get(kubectl, "upgrade-web")
    assert approved["status"]["phase"] == "PendingApproval"
    condition = next(c for c in approved["status"]["conditions"] if c["type"] == "Approved")
    assert f"pull request #{number}" in condition["message"]

    _review(gitea, number, REVIEWER)
    _squash_merge(gitea, number)

    def completed() -> dict[str, Any] | None:
        obj = _get(kubectl, "upgrade-web")
        assert obj["status"]["phase"] == "Completed", [
            (c["reason"], c["message"])
            for c in obj["status"].get("conditions", [])
            if c["type"] == "Approved"
        ]
        return obj

    done = wait_for(completed, timeout=120, what="the change approved on Gitea and completed")
    approval = done["status"]["approval"]
    assert approval["approver"].startswith(REVIEWER)
    assert approval["reviewers"] == [REVIEWER]
    assert approval["pullRequestNumber"] == number
    deployment = kubectl.json("get", "deployment", "web", "-n", NS)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2.0"


def test_a_pull_request_closed_without_merging_rejects_the_change(
    gitea: GiteaServer, kubectl: Kubectl, shop_with_web: None
) -> None:
    kubectl("apply", "-f", "-", input=_change("risky", "Try web 3.0", "web:3.0"))
    number = _pull_number(kubectl, "risky")
    gitea.api(
        "PATCH", f"/repos/{gitea.repository}/pulls/{number}", {"state": "closed"}, user=REVIEWER
    )
    rejected = wait_for(
        lambda: _get(kubectl, "risky")["status"]["phase"] == "Rejected" and _get(kubectl, "risky"),
        timeout=60,
        what="the change rejected",
    )
    condition = next(c for c in rejected["status"]["conditions"] if c["type"] == "Approved")
    assert condition["reason"] == "PullRequestClosed"
    image = kubectl.json("get", "deployment", "web", "-n", NS)["spec"]["template"]["spec"]
    assert image["containers"][0]["image"] != "web:3.0"


def test_the_requester_approving_and_merging_their_own_proposal_approves_nothing(
    gitea: GiteaServer, kubectl: Kubectl, shop_with_web: None
) -> None:
    as_rita = ("--as=rita", "--as-group=system:masters")
    kubectl.run("apply", "-f", "-", *as_rita, input=_change("mine", "Rita's own", "web:4.0"))
    assert _get(kubectl, "mine")["spec"]["requester"]["username"] == "rita"
    number = _pull_number(kubectl, "mine")
    body = gitea.api("GET", f"/repos/{gitea.repository}/pulls/{number}")["body"]
    assert "**Requester:** rita" in body
    _review(gitea, number, REVIEWER)  # rita approves her own change...
    _squash_merge(gitea, number)  # ...and merges it
    condition = _waiting_for_approvals(kubectl, "mine", "rita is the requester")
    reviews = gitea.api("GET", f"/repos/{gitea.repository}/pulls/{number}/reviews")
    assert "rita is the requester" in condition["message"], [
        (r["commit_id"], r["stale"], r["dismissed"], r["state"]) for r in reviews
    ]
    assert "medium risk needs 1 approving review(s) from rita, vera" in condition["message"]
    image = kubectl.json("get", "deployment", "web", "-n", NS)["spec"]["template"]["spec"]
    assert image["containers"][0]["image"] != "web:4.0"

    # Someone the policy does not name approves nothing either...
    kubectl.run("apply", "-f", "-", *as_rita, input=_change("vetted", "Vetted", "web:5.0"))
    number = _pull_number(kubectl, "vetted")
    _review(gitea, number, "mallory")
    _squash_merge(gitea, number)
    condition = _waiting_for_approvals(kubectl, "vetted", "mallory may not")
    assert "mallory may not approve changes to shop" in condition["message"]

    # ...while a second person the policy allows does, whoever presses the merge button.
    kubectl.run("apply", "-f", "-", *as_rita, input=_change("seconded", "Seconded", "web:5.1"))
    number = _pull_number(kubectl, "seconded")
    _review(gitea, number, "vera")
    _squash_merge(gitea, number)

    def by_vera() -> dict[str, Any]:
        obj = _get(kubectl, "seconded")
        approval = obj["status"].get("approval") or {}
        assert approval.get("approvedAt"), _approval_condition(kubectl, "seconded")
        return obj

    approved = wait_for(by_vera, timeout=90, what="the change approved by vera")
    assert approved["status"]["approval"]["approver"] == "vera"
    assert approved["status"]["approval"]["reviewers"] == ["vera"]


def test_a_merge_without_an_approving_review_approves_nothing(
    gitea: GiteaServer, kubectl: Kubectl, shop_with_web: None
) -> None:
    kubectl("apply", "-f", "-", input=_change("unreviewed", "Unreviewed", "web:6.0"))
    number = _pull_number(kubectl, "unreviewed")
    _squash_merge(gitea, number)
    condition = _waiting_for_approvals(kubectl, "unreviewed", "has none")
    assert "has none" in condition["message"]


def test_a_secret_in_a_plan_never_reaches_the_pull_request(
    gitea: GiteaServer, kubectl: Kubectl, shop_with_web: None
) -> None:
    secret = "S3cr3t-in-a-pull-request"
    manifest = _change("with-secret", "Set the database password", "web:7.0").replace(
        'image: "web:7.0"', f'image: "web:7.0", env: [{{name: MYSQL_PWD, value: "{secret}"}}]'
    )
    kubectl("apply", "-f", "-", input=manifest)
    number = _pull_number(kubectl, "with-secret")
    pull = gitea.api("GET", f"/repos/{gitea.repository}/pulls/{number}")
    assert "MYSQL_PWD" in pull["body"]  # what it does is shown...
    assert "web:7.0" in pull["body"]
    assert secret not in pull["body"]  # ...what it is configured with is not
    assert "<redacted " in pull["body"]
    files = gitea.api("GET", f"/repos/{gitea.repository}/pulls/{number}/files")
    assert files
    for changed in files:
        content = gitea.api(
            "GET",
            f"/repos/{gitea.repository}/contents/{changed['filename']}?ref={pull['head']['sha']}",
        )
        record = base64.b64decode(content["content"]).decode()
        assert "MYSQL_PWD" in record
        assert secret not in record
