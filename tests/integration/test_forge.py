"""Approval through a real forge: the operator opens the pull request on Gitea, a reviewer
approves and squash-merges it there, and the change runs; a closed pull request rejects.

The CMDB remote in this module is the Gitea repository itself (over HTTP with a token), so
the merge the operator reads back is the one Gitea made.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from opsledger.devenv.environment import DevEnvironment
from opsledger.devenv.gitea import OWNER, REVIEWER, GiteaServer
from tests.support import Kubectl, OperatorProcess, shop, wait_for

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
        }
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def shop_with_web(kubectl: Kubectl, operator: OperatorProcess) -> None:
    kubectl("apply", "-f", "-", input=shop(NS, replicas=1, item="criticality: high"))


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
            if "HTTP 409" in str(exc) and "Push" in str(exc):  # PushRejected, PushOutOfDate
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

    gitea.api(
        "POST",
        f"/repos/{gitea.repository}/pulls/{number}/reviews",
        {"event": "APPROVED", "body": "Looks safe."},
        user=REVIEWER,
    )
    _squash_merge(gitea, number)

    done = wait_for(
        lambda: (
            _get(kubectl, "upgrade-web")["status"]["phase"] == "Completed"
            and _get(kubectl, "upgrade-web")
        ),
        timeout=120,
        what="the change approved on Gitea and completed",
    )
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
