"""Which replica leads: the one Kopf's peering lets handle objects.

With several replicas, Kopf pauses the handlers of every replica but the live one of highest
priority (peers announce themselves, their priority and lifetime in a KopfPeering's status).
The operator's own loops (health, SLOs, KPIs, the monthly review, the sweeps) and change
execution follow the very same rule on the very same object, so one replica does everything
that writes and the others stand by: two elections could choose two replicas. A peer is alive
until its last keep-alive plus its lifetime; a standby takes over within that lifetime of the
leader's death. Every replica serves the webhook and the Alertmanager receiver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from opsledger.domain.times import parse_time


@dataclass(frozen=True)
class Leadership:
    leading: bool
    reason: str


def judge(
    peers: Mapping[str, Mapping[str, Any]], me: str, priority: int, now: datetime
) -> Leadership:
    """Whether `me` (of `priority`) leads among `peers` (a KopfPeering's status) at `now`."""
    if me not in peers:
        return Leadership(False, "standing by: it has not announced itself in the peering yet")
    alive = {}
    for identity, peer in peers.items():
        if identity == me or not isinstance(peer, Mapping):
            continue
        seen = parse_time(str(peer.get("lastseen") or ""))
        lifetime = timedelta(seconds=int(peer.get("lifetime") or 0))
        if seen is not None and seen + lifetime > now:
            alive[identity] = int(peer.get("priority") or 0)
    higher = sorted(i for i, p in alive.items() if p > priority)
    if higher:
        return Leadership(False, f"standing by: {higher[0]} has a higher priority")
    same = sorted(i for i, p in alive.items() if p == priority)
    if same:
        return Leadership(False, f"standing by: {same[0]} has the same priority (Kopf pauses both)")
    return Leadership(True, "leading: no live peer has a higher priority")
