"""CronJobs of a frozen service: suspended for the freeze, resumed after, never someone else's."""

from datetime import UTC, datetime

from opsledger.domain.freezes import (
    SUSPENDED_BY,
    SUSPENDED_LABEL,
    Freeze,
    action,
    frozen_cronjobs,
)

NOW = datetime(2026, 12, 24, 12, 0, tzinfo=UTC)
LEVEL = {
    "freezes": [
        {"start": "2026-12-20T00:00:00Z", "end": "2027-01-04T00:00:00Z", "reason": "holidays"},
        {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", "reason": "past"},
    ]
}


def _cronjob(suspend: bool = False, ours: bool = False, note: str = "") -> dict[str, object]:
    return {
        "metadata": {
            "labels": {SUSPENDED_LABEL: "true"} if ours else {},
            "annotations": {SUSPENDED_BY: note} if note else {},
        },
        "spec": {"suspend": suspend},
    }


def test_a_cronjob_of_a_frozen_service_is_suspended_until_the_freeze_ends() -> None:
    items = [
        {
            "metadata": {"namespace": "shop", "name": "nightly"},
            "spec": {"service": "shop", "source": {"kind": "CronJob", "name": "nightly-import"}},
        },
        {"metadata": {"namespace": "shop", "name": "web"}, "spec": {"service": "shop"}},
        {
            "metadata": {"namespace": "pay", "name": "batch"},
            "spec": {"service": "pay", "source": {"kind": "CronJob", "name": "batch"}},
        },
    ]
    frozen = frozen_cronjobs(items, {("shop", "shop"): LEVEL, ("pay", "pay"): {}}, NOW)
    assert list(frozen) == [("shop", "nightly-import")]
    freeze = frozen[("shop", "nightly-import")]
    patch = action(_cronjob(), freeze)
    assert patch == {
        "metadata": {
            "labels": {SUSPENDED_LABEL: "true"},
            "annotations": {SUSPENDED_BY: "until 2027-01-04T00:00:00Z: holidays"},
        },
        "spec": {"suspend": True},
    }
    done = _cronjob(suspend=True, ours=True, note="until 2027-01-04T00:00:00Z: holidays")
    assert action(done, freeze) is None  # nothing to do twice


def test_only_the_operators_own_suspension_is_lifted() -> None:
    resumed = action(_cronjob(suspend=True, ours=True, note="until …"), None)
    assert resumed is not None
    assert resumed["spec"] == {"suspend": False}
    assert resumed["metadata"]["labels"] == {SUSPENDED_LABEL: None}
    # Suspended by hand: not the operator's to resume, nor to mark during a freeze.
    assert action(_cronjob(suspend=True), None) is None
    holidays = Freeze(NOW, NOW, "holidays")
    assert action(_cronjob(suspend=True), holidays) is None
