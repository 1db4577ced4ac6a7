"""Approval without a forge (`signed` approval mode): the commit that brings a change's record
onto the protected branch must carry a good SSH signature, checked by real `git` against the
repository's allowed-signers file, from a person the approval policy allows who is not the
requester. Tried as someone would get around it: an unsigned merge with the right record, the
requester signing, a key that is not allowed signing under an allowed name, and a merge that
adds its own key to allowed-signers.

The module has its own CMDB remote, so its policy files touch no other module.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opsledger.devenv.cmdb_remote import ensure_cmdb_remote
from opsledger.devenv.environment import DevEnvironment
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

NS = "signed"
BOB = ("--as=bob", "--as-group=system:masters")  # the requester
ALICE = ("Alice Approver", "alice@example.com")
POLICY = """rules:
- match: {services: [shop]}
  approvers: {users: [alice, bob, carol]}
required: {low: 1, medium: 2, high: 2}
people:
  alice: {signers: [alice@example.com]}
  bob: {kubernetes: [bob], signers: [bob@example.com]}
  carol: {signers: [carol@example.com]}
"""


def _key(folder: Path, name: str) -> Path:
    key = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True
    )
    return key


def _signer_line(principal: str, key: Path) -> str:
    kind, blob = Path(f"{key}.pub").read_text().split()[:2]
    return f'{principal} namespaces="git" {kind} {blob}\n'


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    return {name: _key(folder, name) for name in ("alice", "bob", "carol", "mallory")}


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Path]) -> Path:
    """A CMDB remote whose main holds the policy and the allowed signers (alice's and bob's)."""
    folder = tmp_path_factory.mktemp("cmdb")
    bare = folder / "cmdb.git"
    ensure_cmdb_remote(bare)
    work = folder / "admin"
    git("clone", "--quiet", str(bare), str(work))
    (work / "approval-policy.yaml").write_text(POLICY)
    (work / "allowed-signers").write_text(
        "".join(_signer_line(f"{n}@example.com", keys[n]) for n in ("alice", "bob", "carol"))
    )
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "Approval policy and allowed signers", cwd=work, who=ALICE)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    return bare


@pytest.fixture(scope="module")
def operator(
    devenv: DevEnvironment,
    crds: None,
    remote: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    folder = tmp_path_factory.mktemp("operator")
    proc = OperatorProcess(devenv, folder / "operator.log").start(
        env={
            "OPSLEDGER_CMDB_URL": str(remote),
            "OPSLEDGER_CMDB_WORKDIR": str(folder / "cmdb"),
            "OPSLEDGER_APPROVAL_MODE": "signed",
            **webhook_settings(devenv),
        }
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def shop_ns(kubectl: Kubectl, operator: OperatorProcess) -> None:
    kubectl("apply", "-f", "-", input=shop(NS, replicas=1))
    # A critical item: changes to it are medium risk, which needs two approvals.
    kubectl(
        "apply",
        "-f",
        "-",
        input=f"""
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: vault, namespace: {NS}}}
spec: {{service: shop, criticality: high}}
""",
    )


Approve = Callable[..., None]


@pytest.fixture
def approve(devenv: DevEnvironment, remote: Path, tmp_path: Path) -> Approve:
    """Merge a proposal into this module's remote, signed with `signing_key` where given."""

    def merge(branch: str, who: tuple[str, str], signing_key: Path | None = None) -> None:
        approve_proposal(devenv, tmp_path, branch, who, remote=remote, signing_key=signing_key)

    return merge


pytestmark = pytest.mark.usefixtures("shop_ns")


def _create(kubectl: Kubectl, name: str, target: str = "web") -> str:
    kubectl.run(
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
  service: shop
  targets: [{target}]
  schedule: {{notBefore: "2099-01-01T00:00:00Z"}}
""",
    )
    proposed(kubectl, NS, name)
    return f"changes/test/{NS}/{name}"


def _approval(kubectl: Kubectl, name: str) -> dict[str, Any]:
    obj = kubectl.json("get", "change", name, "-n", NS)
    found: dict[str, Any] = next(
        c for c in obj["status"].get("conditions", []) if c["type"] == "Approved"
    )
    return found


def _not_approved(kubectl: Kubectl, name: str) -> str:
    def missing() -> str | None:
        condition = _approval(kubectl, name)
        return condition["message"] if condition["reason"] == "ApprovalsMissing" else None

    message: str = wait_for(missing, timeout=60, what=f"{name} merged but not approved")
    phase = kubectl.json("get", "change", name, "-n", NS)["status"]["phase"]
    assert phase == "PendingApproval"
    return message


def test_an_unsigned_merge_with_the_right_record_approves_nothing(
    kubectl: Kubectl, approve: Approve
) -> None:
    branch = _create(kubectl, "unsigned")
    approve(branch, ALICE)
    message = _not_approved(kubectl, "unsigned")
    assert "needs 1 signed commit(s) by a key in allowed-signers from alice, bob, carol" in message
    assert "has none" in message


def test_the_requester_signing_their_own_merge_approves_nothing(
    kubectl: Kubectl, approve: Approve, keys: dict[str, Path]
) -> None:
    branch = _create(kubectl, "self-signed")
    approve(branch, ("Bob Requester", "bob@example.com"), keys["bob"])
    assert "bob@example.com is the requester" in _not_approved(kubectl, "self-signed")


def test_a_key_that_is_not_allowed_approves_nothing_even_under_an_allowed_name(
    kubectl: Kubectl, approve: Approve, keys: dict[str, Path]
) -> None:
    branch = _create(kubectl, "wrong-key")
    approve(branch, ALICE, keys["mallory"])
    assert "has none" in _not_approved(kubectl, "wrong-key")


def test_a_merge_that_admits_its_own_key_approves_nothing(
    kubectl: Kubectl, remote: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    branch = _create(kubectl, "own-key")
    work = tmp_path / "mallory"
    git("clone", "--quiet", str(remote), str(work))
    signing = ("-c", "gpg.format=ssh", "-c", f"user.signingkey={keys['mallory']}")
    for _ in range(5):  # the operator pushes too: a lost race is merged again
        git("fetch", "--quiet", "origin", cwd=work)
        git("reset", "--quiet", "--hard", "origin/main", cwd=work)
        git("merge", "--no-ff", "--no-commit", f"origin/{branch}", cwd=work, who=ALICE)
        with (work / "allowed-signers").open("a") as signers:
            signers.write(_signer_line("alice@example.com", keys["mallory"]))
        git("add", "-A", cwd=work)
        git(*signing, "commit", "-S", "--quiet", "-m", f"Merge {branch}", cwd=work, who=ALICE)
        pushed = subprocess.run(
            ["git", "push", "--quiet", "origin", "HEAD:main"], cwd=work, check=False
        )
        if pushed.returncode == 0:
            break
    else:
        raise AssertionError("could not push the self-admitting merge")
    verified = subprocess.run(
        ["git", "-c", f"gpg.ssh.allowedSignersFile={work / 'allowed-signers'}", "verify-commit",
         "HEAD"], cwd=work, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verified.returncode == 0  # by the file it brings, the signature is good...
    assert "has none" in _not_approved(kubectl, "own-key")  # ...but that file is not in force yet


def test_a_merge_signed_by_an_allowed_person_approves_the_change(
    kubectl: Kubectl,
    approve: Approve,
    keys: dict[str, Path],
    remote: Path,
    tmp_path: Path,
) -> None:
    branch = _create(kubectl, "signed-off")
    approve(branch, ALICE, keys["alice"])

    def approved() -> dict[str, Any] | None:
        obj: dict[str, Any] = kubectl.json("get", "change", "signed-off", "-n", NS)
        return obj if obj["status"].get("phase") == "Scheduled" else None

    obj = wait_for(approved, timeout=60, what="the signed merge approving the change")
    assert obj["status"]["approval"]["approver"] == "alice"
    commit = obj["status"]["approval"]["commit"]
    signers = tmp_path / "allowed-signers"
    signers.write_text(git("--git-dir", str(remote), "show", f"{commit}^1:allowed-signers"))
    checked = git(
        "--git-dir", str(remote), "-c", "gpg.format=ssh",
        "-c", f"gpg.ssh.allowedSignersFile={signers}",
        "log", "-1", "--format=%s|%G?|%GS", commit,
    )  # fmt: skip
    assert checked.strip() == f"Merge {branch}|G|alice@example.com"


def test_a_change_that_needs_two_approvals_counts_signed_approval_commits_on_its_branch(
    kubectl: Kubectl, approve: Approve, keys: dict[str, Path], remote: Path, tmp_path: Path
) -> None:
    one = _create(kubectl, "one-key", target="vault")
    approve(one, ALICE, keys["alice"])
    message = _not_approved(kubectl, "one-key")
    assert "medium risk needs 2 signed commit" in message
    assert "has 1 (alice)" in message

    both = _create(kubectl, "two-keys", target="vault")
    # Carol signs an approval commit on the proposal branch; Alice signs the merge.
    work = tmp_path / "carol"
    git("clone", "--quiet", "--branch", both, str(remote), str(work))
    carol = ("Carol Second", "carol@example.com")
    signing = ("-c", "gpg.format=ssh", "-c", f"user.signingkey={keys['carol']}")
    git(*signing, "commit", "--allow-empty", "-S", "--quiet", "-m", "Approved", cwd=work, who=carol)
    git("push", "--quiet", "origin", f"HEAD:{both}", cwd=work)
    approve(both, ALICE, keys["alice"])

    def approved() -> dict[str, Any] | None:
        obj: dict[str, Any] = kubectl.json("get", "change", "two-keys", "-n", NS)
        return obj if obj["status"].get("phase") == "Scheduled" else None

    obj = wait_for(approved, timeout=60, what="two signed approvals approving the change")
    assert obj["status"]["approval"]["approver"] == "alice, carol"
    assert obj["status"]["risk"] == "medium"
