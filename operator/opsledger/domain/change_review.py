"""An emergency change's post-implementation review, in the domain.

An emergency change starts at once and approves itself; what makes that acceptable is that it is
reviewed afterwards. Once it has ended, the operator proposes a review record in the CMDB
repository (a branch, and a pull request where a forge is configured) saying who broke glass,
what was done and how it ended; `reviewRequired` stays true until reviewers merge it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from opsledger.domain import changes
from opsledger.domain.records import to_yaml
from opsledger.models.change import ChangePhase
from opsledger.models.records import ChangeReviewRecord, RecordMetadata

QUESTIONS = (
    "Was an emergency change justified, or could this have waited for a window?",
    "Did the change do what its summary says, and only that?",
    "What follow-up (a problem record, a standard-change template, a fix) is needed?",
)


def review_due(phase: ChangePhase | None, status: Mapping[str, Any]) -> bool:
    """An emergency change that has ended and whose review is not merged yet."""
    return bool(status.get("reviewRequired")) and phase in changes.FINAL


def review_branch(cluster: str, namespace: str, name: str) -> str:
    return f"reviews/{cluster}/{namespace}/{name}"


def review_record(
    *,
    cluster: str,
    namespace: str,
    name: str,
    uid: str | None,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
) -> str:
    """The review record (YAML): who broke glass, what was done (`spec`, redacted), how it
    ended, and what reviewers are asked."""
    record = ChangeReviewRecord.model_validate(
        {
            "metadata": RecordMetadata(cluster=cluster, namespace=namespace, name=name, uid=uid),
            "requester": (spec.get("requester") or {}).get("username"),
            "summary": spec.get("summary"),
            "targets": list(spec.get("targets") or []),
            "plan": list(spec.get("plan") or []),
            "phase": status.get("phase"),
            "transitions": list(status.get("transitions") or []),
            "incident": status.get("incident"),
            "questions": list(QUESTIONS),
        }
    )
    return to_yaml(record)


def review_message(cluster: str, namespace: str, name: str, spec: Mapping[str, Any]) -> str:
    who = (spec.get("requester") or {}).get("username") or "unknown (no webhook recorded one)"
    lines = [
        f"review({cluster}/{namespace}/{name}): emergency change {spec.get('summary', '')}"[:120],
        "",
        f"Post-implementation review of an emergency change created by **{who}**. It started at "
        "once, without approval or window; merge this pull request once it has been reviewed.",
        "",
        *(f"- {q}" for q in QUESTIONS),
    ]
    return "\n".join(lines) + "\n"


def reviewed(content: str | None, uid: str | None) -> bool:
    """Whether the protected branch's review record is this change's (merged)."""
    if not content:
        return False
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError:
        return False
    metadata = data.get("metadata") if isinstance(data, dict) else None
    return isinstance(metadata, dict) and metadata.get("uid") == uid
