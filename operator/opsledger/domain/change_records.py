"""What the CMDB and its reviewers read about a Change: the change record, and the proposal's
commit message (a forge's pull request takes its title and body from it)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from opsledger.domain import changes
from opsledger.domain.redaction import Redactor
from opsledger.domain.times import rfc3339
from opsledger.models.change import ChangePhase, ChangeSpec
from opsledger.models.records import ChangeRecord, RecordMetadata


def change_record(
    *,
    cluster: str,
    namespace: str,
    name: str,
    uid: str | None,
    spec: Mapping[str, Any],
    spec_hash: str | None,
    phase: ChangePhase | None,
    status: Mapping[str, Any],
    targets: Sequence[str],
    proposal: bool,
) -> ChangeRecord:
    """The change record: `spec` as the API server holds it (redacted), `status` as it stands,
    bound to the Change object's `uid`.

    A proposal holds only what reviewers approve; later records also carry who approved it and
    what happened since.
    """
    return ChangeRecord.model_validate(
        {
            "metadata": RecordMetadata(cluster=cluster, namespace=namespace, name=name, uid=uid),
            "spec": spec,
            "specHash": spec_hash,
            "phase": ChangePhase.PENDING_APPROVAL if proposal else phase,
            # (None values only null stale keys in status' merge patch)
            "approval": None
            if proposal
            else {k: v for k, v in (status.get("approval") or {}).items() if v is not None},
            "window": status.get("window"),
            "risk": status.get("risk"),
            "affected": list(targets),
            "incident": None if proposal else status.get("incident"),
            "transitions": [] if proposal else status.get("transitions") or [],
        }
    )


def next_window(now: datetime, spec: ChangeSpec, level: Mapping[str, Any] | None) -> str:
    """The window the change would run in, as text for reviewers."""
    if level is None:
        return f"unknown: no ServiceLevel for service {spec.service}"
    try:
        decision = changes.window_for(now, spec, level)
    except ValidationError:
        return "unknown: the service's ServiceLevel is invalid"
    if decision.next is None:
        return f"none: {decision.reason}"
    return f"{rfc3339(decision.next.start)} to {rfc3339(decision.next.end)}"


def requester_text(spec: ChangeSpec) -> str:
    """Who asked for the change, as the API server said, for reviewers."""
    who = spec.requester
    if who is None:
        return "unknown (no admission webhook recorded one)"
    groups = [g for g in who.groups if g != "system:authenticated"]
    return who.username + (f" (groups: {', '.join(groups)})" if groups else "")


def proposal_message(
    *,
    cluster: str,
    namespace: str,
    name: str,
    spec: ChangeSpec,
    status: Mapping[str, Any],
    affected: Sequence[str],
    window: str,
    note: str = "",
    redactor: Redactor | None = None,
) -> str:
    """The proposal commit's message: what reviewers need to decide, with `window` (the text of
    `next_window`) and the risk and conflicts in `status`; `note` says why a standard change
    is proposed like a normal one. It leaves the cluster (a commit, a pull request's body), so
    everything in it goes through `redactor`."""
    redactor = redactor or Redactor()
    lines = [
        f"change({cluster}/{namespace}/{name}): {redactor.text(spec.summary)}"[:120],
        "",
        f"- **Type:** {spec.type}",
        f"- **Requester:** {requester_text(spec)}",
        f"- **Service:** {spec.service}",
        f"- **Targets:** {', '.join(spec.targets) or 'none'}",
        f"- **Affected items:** {', '.join(affected) or 'none'}",
        f"- **Window:** {window}",
    ]
    if status.get("risk"):
        factors = ", ".join(status.get("riskFactors") or []) or "no factors"
        lines.append(f"- **Risk:** {status['risk']} (score {status.get('riskScore')}: {factors})")
    if status.get("conflicts"):
        lines.append(f"- **Conflicts:** {', '.join(status['conflicts'])}")
    if note:
        lines.append(f"- **Standard change:** {note.rstrip('; ')}")
    lines.append("")
    if spec.plan:
        lines.append("Plan:")
        for p in spec.plan:
            lines.append(f"1. {p.patch_type} patch of {p.target.kind} {p.target.name}:")
            patch = redactor.plan_step(p.patch_type, p.patch)
            lines.append(f"   `{json.dumps(patch, sort_keys=True)[:500]}`")
    else:
        lines.append("No plan: a permit for manual work while the change is in progress.")
    if spec.checks and (spec.checks.pre or spec.checks.post):
        lines.append("")
        lines.append("Health checks:")
        for when, checks in (("pre", spec.checks.pre), ("post", spec.checks.post)):
            for c in checks:
                bound = f"below {c.below:g}" if c.below is not None else f"above {c.above:g}"
                lines.append(f"- {when}: {c.name} `{c.query}` {bound}")
    lines += ["", "Merge this proposal to approve the change; close or delete it to reject it."]
    return "\n".join(lines) + "\n"
