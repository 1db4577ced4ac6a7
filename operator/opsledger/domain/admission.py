"""The admission guard in the domain: may this request change a protected workload now?

A workload is protected when it carries the label `opsledger.io/protected=true`, or when a
ConfigurationItem with `spec.protected: true` follows it as its source. A request that would
change a protected workload is allowed only while an approved Change that targets a protecting
item is InProgress: a permit (no plan) lets its requester in; a plan lets in only the operator
carrying it out. Everything that does not change
what the workload runs passes: status and metadata-only updates, the operator's own requests,
the cluster's own controllers, and anything in kube-system.

The webhook handler gathers the facts (the request, the items, the changes, the next window);
this module only decides, so every rule is testable without a server or a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsledger.domain.observe import PROTECTED_BY, PROTECTED_LABEL
from opsledger.domain.times import rfc3339
from opsledger.domain.windows import Interval

# PROTECTED_BY is set beside the label when the operator put it there (for an item with
# spec.protected): the operator takes its own label off again when the item stops protecting it.
EXEMPT_NAMESPACES = frozenset({"kube-system"})
# Users of the control plane itself: controllers that scale, roll out and garbage-collect, the
# kubelets that finish deleting the pods of their node (NodeRestriction keeps each to its own),
# and kube-system's service accounts. Names, exactly; prefixes ending in a colon.
EXEMPT_USERS = frozenset(
    {"system:kube-controller-manager", "system:kube-scheduler", "system:apiserver"}
)
EXEMPT_USER_PREFIXES = ("system:serviceaccount:kube-system:", "system:node:")
# Top-level fields that do not change what a workload runs.
NOT_WORKLOAD = frozenset({"metadata", "status", "apiVersion", "kind"})
# Metadata that does change a workload's fate: an owner whose deletion takes it along (the
# garbage collector), finalizers that hold or release its deletion.
FATEFUL_METADATA = ("ownerReferences", "finalizers")


# The webhook for what carries no labels of the workload it reaches (scale, a Pod's exec...),
# and its match condition naming the namespaces that hold protected objects.
GUARD_SUBRESOURCES = "guard-subresources.opsledger.io"
NAMESPACES_CONDITION = "namespaces-with-protected-objects"


def namespaces_condition(namespaces: Iterable[str] | None) -> dict[str, str]:
    """The match condition sending subresource requests only from these namespaces (None:
    from all, until the operator knows where the protected objects are)."""
    if namespaces is None:
        expression = "true"
    else:
        quoted = ", ".join(f"'{n}'" for n in sorted(namespaces))
        expression = f"request.namespace in [{quoted}]"
    return {"name": NAMESPACES_CONDITION, "expression": expression}


@dataclass(frozen=True)
class Guardian:
    """A ConfigurationItem that follows the workload as its source."""

    name: str
    protected: bool
    service: str | None = None
    criticality: str | None = None
    created: str = ""  # creationTimestamp: the eldest protecting item is the authority


@dataclass(frozen=True)
class ActiveChange:
    """A Change in this namespace that is InProgress, with the CI names it targets."""

    name: str
    targets: tuple[str, ...]
    # A permit (no plan) lets its requester work on the targets; a plan is the operator's to
    # carry out, so it lets nobody else in. None: no requester was recorded (no webhook then).
    permit: bool = True
    requester: str | None = None


@dataclass(frozen=True)
class Review:
    """What the API server asks: who does what to which object."""

    operation: str  # CREATE | UPDATE | DELETE | CONNECT
    username: str
    namespace: str
    kind: str
    name: str
    subresource: str | None = None
    old: Mapping[str, Any] | None = None
    new: Mapping[str, Any] | None = None
    # For a subresource request (scale): the workload itself, whose labels decide.
    parent: Mapping[str, Any] | None = None
    # For a request that reaches the workload through another object (a Pod it runs, an
    # autoscaler that scales it): what is done, for the message ("exec into Pod web-7d9-x").
    through: str | None = None


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    message: str
    # For a denial: the CI that protects the object, for the handler to look up its window.
    guardian: Guardian | None = None
    busy: str = ""  # a change in progress on it that does not let this user in, and why


@dataclass
class Facts:
    """What the handler found out about the object's protection."""

    operator: str | None = None  # the operator's own username
    guardians: Sequence[Guardian] = field(default_factory=tuple)
    changes: Sequence[ActiveChange] = field(default_factory=tuple)


def exempt(review: Review, operator: str | None) -> str | None:
    """Why a request passes without looking at protection, or None."""
    reasons = (
        (review.namespace in EXEMPT_NAMESPACES, f"namespace {review.namespace} is not guarded"),
        (bool(operator) and review.username == operator, "the operator's own request"),
        (control_plane(review.username), "a control-plane component"),
        (review.subresource == "status", "a status update"),
        (review.operation == "CONNECT" and review.through is None, "not a change to the object"),
        (
            review.operation == "UPDATE" and review.subresource is None and _metadata_only(review),
            "a metadata-only update",
        ),
    )
    return next((why for applies, why in reasons if applies), None)


def control_plane(username: str) -> bool:
    """Whether `username` is a component of the control plane (or a node's kubelet)."""
    return username in EXEMPT_USERS or username.startswith(EXEMPT_USER_PREFIXES)


def metadata_only(review: Review) -> bool:
    """Whether an UPDATE leaves what the object runs and its fate as they were."""
    return review.operation == "UPDATE" and _metadata_only(review)


def _metadata_only(review: Review) -> bool:
    """Whether only metadata (or status) differs, and the protection label is not taken off
    (adding it is fine: that only makes the guard stricter)."""
    old, new = review.old or {}, review.new or {}
    workload = {k for k in {*old, *new} if k not in NOT_WORKLOAD}
    if any(old.get(k) != new.get(k) for k in workload):
        return False
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    if any(old_meta.get(k) != new_meta.get(k) for k in FATEFUL_METADATA):
        return False
    # Who put the protection label on: naming an unprotected item there would make the
    # operator take the label off.
    if (old_meta.get("annotations") or {}).get(PROTECTED_BY) != (
        new_meta.get("annotations") or {}
    ).get(PROTECTED_BY):
        return False
    unprotects = (
        _labels(old).get(PROTECTED_LABEL) == "true" and _labels(new).get(PROTECTED_LABEL) != "true"
    )
    return not unprotects


def _labels(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions) selects these labels; an empty
    selector selects nothing (as a workload's would not be accepted)."""
    match = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match and not expressions:
        return False
    if any(labels.get(k) != v for k, v in match.items()):
        return False
    return all(_holds(e, labels) for e in expressions)


def _holds(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator = expression.get("key"), expression.get("operator")
    values = set(expression.get("values") or ())
    present = key in labels
    value = labels.get(str(key))
    return {
        "In": present and value in values,
        "NotIn": not (present and value in values),
        "Exists": present,
        "DoesNotExist": not present,
    }.get(str(operator), False)


def labelled(review: Review) -> bool:
    """Whether the object (before or after the request, or its parent) carries the label."""
    return any(
        _labels(obj).get(PROTECTED_LABEL) == "true"
        for obj in (review.old, review.new, review.parent)
    )


def judge(review: Review, facts: Facts) -> Verdict:
    """Allow or deny one request; a denial's message says what, why and what to do."""
    why = exempt(review, facts.operator)
    if why is not None:
        return Verdict(True, why)
    protectors = sorted((g for g in facts.guardians if g.protected), key=_seniority)
    if not protectors and not labelled(review):
        return Verdict(True, "not protected")
    # Only a change targeting the protecting item opens the workload: the eldest protected item
    # that follows it (as the item's DuplicateSource condition says). Anyone may create another
    # item following the same workload, protected or not, with a more lenient service or owner:
    # a decoy, not an authority. A workload protected by its label alone is opened by changes
    # to the item its opsledger.io/protected-by annotation names (the guard keeps both), or by
    # none.
    names = {protectors[0].name} if protectors else set(_named_by(review))
    busy = ""
    for change in facts.changes:
        if not names.intersection(change.targets):
            continue
        if change.permit and change.requester in (None, review.username):
            return Verdict(True, f"change {change.name} is in progress")
        busy = f"Change {change.name} is in progress on it, but " + (
            f"only its requester, {change.requester}, may work on its targets."
            if change.permit
            else "it is carried out by its plan: only OpsLedger applies it."
        )
    guardian = protectors[0] if protectors else (facts.guardians[0] if facts.guardians else None)
    return Verdict(False, "", guardian, busy)


def _seniority(guardian: Guardian) -> tuple[str, str]:
    return guardian.created, guardian.name


def _named_by(review: Review) -> list[str]:
    """The item a labelled workload's protected-by annotation names (before the request)."""
    for obj in (review.old, review.parent, review.new):
        named = (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(PROTECTED_BY)
        if named:
            return [str(named)]
    return []


def denial(
    review: Review,
    guardian: Guardian | None,
    *,
    window: Interval | None,
    window_reason: str | None,
    busy: str = "",
) -> str:
    """The message a person reads in kubectl's error."""
    what = f"{review.kind} {review.namespace}/{review.name}"
    if guardian is not None:
        details = [f"ConfigurationItem {guardian.name}"]
        if guardian.service:
            details.append(f"service {guardian.service}")
        if guardian.criticality:
            details.append(f"criticality {guardian.criticality}")
        why = f"it is protected ({', '.join(details)})"
        target = guardian.name
    else:
        why = f"it is labelled {PROTECTED_LABEL}=true"
        named = _named_by(review)
        if not named:
            why += (
                f" and names no ConfigurationItem to change it by (annotation {PROTECTED_BY}); "
                "make a ConfigurationItem with spec.protected: true follow it, or have the "
                "annotation set"
            )
        target = named[0] if named else "<item>"
    verb = {"CREATE": "create", "DELETE": "delete"}.get(review.operation, "change")
    action = f"{review.through}, which reaches {what}" if review.through else f"{verb} {what}"
    parts = [
        f"OpsLedger denies this request to {action}: {why}, and no approved Change "
        f"targeting {target} that lets you in is in progress."
    ]
    if busy:
        parts.append(busy)
    if window is not None:
        parts.append(f"The next open window is {rfc3339(window.start)} to {rfc3339(window.end)}.")
    elif window_reason:
        parts.append(f"No window is open: {window_reason}.")
    parts.append(
        f"Apply a Change with spec.targets: [{target}] and have it approved; for an urgent fix "
        "use spec.type: emergency (it skips the window and is reviewed afterwards)."
    )
    return " ".join(parts)
