"""Which replica leads: the rule Kopf's peering pauses handlers by, for the loops too."""

from datetime import UTC, datetime, timedelta

from opsledger.domain.leadership import judge

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def peer(priority: int, seen_ago: float, lifetime: int = 30) -> dict[str, object]:
    return {
        "priority": priority,
        "lifetime": lifetime,
        "lastseen": (NOW - timedelta(seconds=seen_ago)).isoformat(),
    }


def test_the_live_replica_of_highest_priority_leads_and_the_others_stand_by() -> None:
    peers = {"a": peer(200, 1), "b": peer(100, 2)}
    assert judge(peers, "a", 200, NOW).leading
    standby = judge(peers, "b", 100, NOW)
    assert not standby.leading
    assert standby.reason == "standing by: a has a higher priority"


def test_a_dead_leader_is_outlived_within_its_lifetime() -> None:
    # a was SIGKILLed 31 s ago: its keep-alive is older than its lifetime, so b leads.
    peers = {"a": peer(200, 31), "b": peer(100, 1)}
    assert judge(peers, "b", 100, NOW).leading
    assert not judge({"a": peer(200, 29), "b": peer(100, 1)}, "b", 100, NOW).leading


def test_same_priorities_or_an_unannounced_replica_lead_nowhere() -> None:
    # Kopf pauses both replicas of the same priority: so do the loops.
    same = {"a": peer(100, 1), "b": peer(100, 1)}
    assert not judge(same, "a", 100, NOW).leading
    assert not judge(same, "b", 100, NOW).leading
    # Not in the peering yet (just started): it does not lead either.
    assert not judge({"a": peer(200, 1)}, "c", 300, NOW).leading
