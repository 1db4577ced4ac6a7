"""An emergency change's post-implementation review: due once it has ended, recorded with who
broke glass, closed only by a merged record of this very change."""

from __future__ import annotations

import yaml

from opsledger.domain.change_review import review_due, review_message, review_record, reviewed
from opsledger.models.change import ChangePhase

SPEC = {"summary": "Stop the bleeding", "targets": ["web"], "requester": {"username": "carol"}}


def test_the_review_is_due_once_an_emergency_change_has_ended() -> None:
    assert review_due(ChangePhase.COMPLETED, {"reviewRequired": True})
    assert review_due(ChangePhase.ROLLED_BACK, {"reviewRequired": True})
    assert not review_due(ChangePhase.IN_PROGRESS, {"reviewRequired": True})
    assert not review_due(ChangePhase.COMPLETED, {"reviewRequired": False})


def test_the_review_record_names_who_broke_glass_and_binds_the_change() -> None:
    text = review_record(
        cluster="c",
        namespace="ns",
        name="fire",
        uid="u-1",
        spec=SPEC,
        status={"phase": "Completed"},
    )
    record = yaml.safe_load(text)
    assert record["requester"] == "carol"
    assert record["phase"] == "Completed"
    assert record["questions"]
    assert reviewed(text, "u-1")
    assert not reviewed(text, "u-2")  # another Change of the same name
    assert not reviewed(None, "u-1")
    assert not reviewed("{not yaml", "u-1")
    assert "created by **carol**" in review_message("c", "ns", "fire", SPEC)
