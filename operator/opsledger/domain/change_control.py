"""Change control at the API server's door: who asked, what may still be edited, who writes a
change's status, who may break glass, and which running change the guard may trust.

The admission webhook gathers the request and asks these rules; each returns None to let the
request through, or the refusal the API server shows the user (what was refused, why, and what to
do instead). They read no clock and do no I/O.

- The requester is who the API server says: the mutating webhook writes `spec.requester` from the
  request's authenticated user on create, the validating webhook refuses a create whose requester
  is anyone else (so a missing mutating webhook cannot be used to name someone else), and the
  CRD's CEL rule keeps it from changing afterwards.
- Approved means frozen: once approved, a Change's spec may not be edited (its steering fields
  aside) until it has ended; the executor checks the hash at every step too.
- Only the operator writes a Change's status: `phase` and `approval` are its word, not anyone's
  who may patch `changes/status`.
- An emergency change needs a right of its own, `create` on `changes/emergency`, which RBAC grants
  to whom it may (the webhook asks with a SubjectAccessReview).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from opsledger.domain import changes
from opsledger.models.change import ChangePhase, ChangeSpec, ChangeType

EMERGENCY_SUBRESOURCE = "emergency"  # RBAC: create on changes/emergency breaks glass


def requester(user_info: Mapping[str, Any]) -> dict[str, Any]:
    """spec.requester for the authenticated user in an AdmissionReview's `userInfo`."""
    found: dict[str, Any] = {"username": str(user_info.get("username") or "")}
    if user_info.get("uid"):
        found["uid"] = str(user_info["uid"])
    found["groups"] = sorted(str(g) for g in user_info.get("groups") or ())
    return found


def requester_patch(spec: Mapping[str, Any] | None, user_info: Mapping[str, Any]) -> list[Any]:
    """The JSON patch the mutating webhook returns for a Change being created: its requester
    set to who is creating it, whatever the manifest said."""
    who = requester(user_info)
    if not isinstance(spec, Mapping):
        return [{"op": "add", "path": "/spec", "value": {"requester": who}}]
    return [{"op": "add", "path": "/spec/requester", "value": who}]


def _same(recorded: Any, user_info: Mapping[str, Any]) -> bool:
    if not isinstance(recorded, Mapping):
        return False
    who = requester(user_info)
    return (
        recorded.get("username") == who["username"]
        and recorded.get("uid") == who.get("uid")
        and sorted(recorded.get("groups") or ()) == who["groups"]
    )


def requester_refusal(
    what: str, spec: Mapping[str, Any], user_info: Mapping[str, Any], kind: str = "Change"
) -> str | None:
    """On create: the recorded requester must be the user the API server authenticated."""
    recorded = spec.get("requester")
    user = str(user_info.get("username") or "")
    if recorded is None:
        return (
            f"{what} has no spec.requester: OpsLedger's mutating webhook (requester.opsledger.io) "
            f"records who creates a {kind}, and it did not run. Ask your cluster administrator "
            f"to install OpsLedger's MutatingWebhookConfiguration, then apply the {kind} again."
        )
    if not _same(recorded, user_info):
        named = recorded.get("username") if isinstance(recorded, Mapping) else recorded
        return (
            f"{what} names {named!r} as its requester, but you are {user!r}: the requester is "
            f"who the API server says created the {kind}. Remove spec.requester from the "
            "manifest (OpsLedger fills it in) and apply it again."
        )
    return None


def on_behalf_refusal(what: str, spec: Mapping[str, Any]) -> str | None:
    """On create by anyone but the operator: spec.onBehalfOf is not theirs to set."""
    if spec.get("onBehalfOf") is None:
        return None
    return (
        f"{what} sets spec.onBehalfOf, which only OpsLedger sets, on a Change it makes to fulfil "
        "a ServiceRequest. Remove it; to ask for something from the catalog, create a "
        "ServiceRequest instead."
    )


def _approved_spec(obj: Mapping[str, Any]) -> str | None:
    """The hash of the spec `obj` was approved with, while that approval holds and the change
    has not ended; None otherwise."""
    status = obj.get("status") or {}
    approval = status.get("approval") or {}
    phase = status.get("phase")
    if not approval.get("approvedAt") or phase in {p.value for p in changes.FINAL}:
        return None
    approved = approval.get("specHash")
    return str(approved) if approved else None


def _hash(spec: Any) -> str | None:
    try:
        return changes.spec_hash(ChangeSpec.model_validate(dict(spec or {})))
    except (ValidationError, TypeError, ValueError):
        return None


def frozen_refusal(what: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """On update: an approved change's spec is frozen until it has ended. Only the steering
    fields (spec.cancelled, spec.done) may change."""
    approved = _approved_spec(old)
    if approved is None or _hash(old.get("spec")) != approved:
        return None  # not approved (or its approval is already void): edits are proposed again
    if _hash(new.get("spec")) == approved:
        return None
    approval = (old.get("status") or {}).get("approval") or {}
    by = approval.get("approver") or "its approver"
    phase = (old.get("status") or {}).get("phase")
    return (
        f"{what} is {phase}: it was approved by {by} exactly as it stands, so its spec is frozen "
        "(only spec.cancelled and spec.done may change). To change what it does, cancel it "
        "(spec.cancelled: true) and propose a new Change."
    )


def status_refusal(what: str, username: str, operator: str | None) -> str | None:
    """Only the operator writes a Change's status: its phase and approval are the operator's
    record of what it verified, not a switch for whoever may patch changes/status."""
    if operator is not None and username == operator:
        return None
    return (
        f"{what}: only the OpsLedger operator writes a Change's status (its phase and approval "
        f"are what the operator verified); {username!r} may not. Approve a change by merging its "
        "proposal; cancel one with spec.cancelled: true."
    )


def needs_emergency_right(spec: Mapping[str, Any]) -> bool:
    return spec.get("type") == ChangeType.EMERGENCY.value


def emergency_refusal(what: str, namespace: str, username: str, reason: str) -> str:
    why = f" ({reason})" if reason else ""
    return (
        f"{what} is an emergency change, which starts at once, skips the windows and runs with "
        f"the operator's rights: creating one needs the break-glass right, 'create' on "
        f"'changes/{EMERGENCY_SUBRESOURCE}' in namespace {namespace}, which {username!r} does "
        f"not have{why}. Ask for it to be granted (e.g. a RoleBinding to OpsLedger's "
        "emergency ClusterRole), or make this a normal change."
    )


def verified_in_progress(obj: Mapping[str, Any]) -> bool:
    """Whether the guard may let a change's targets be edited: it is InProgress and its spec is
    exactly the one the operator recorded as approved (a phase alone proves nothing)."""
    status = obj.get("status") or {}
    if status.get("phase") != ChangePhase.IN_PROGRESS.value:
        return False
    approval = status.get("approval") or {}
    approved = approval.get("specHash")
    return (
        bool(approval.get("approvedAt"))
        and approved is not None
        and (_hash(obj.get("spec")) == approved)
    )
