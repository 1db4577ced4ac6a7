"""What one change-calendar decision costs (a benchmark, not a test).

In-process, N decisions each (domain/windows.decide, what the start gate, the webhook's denials,
/v1/window and `opsledger window` all call), for:

- a weekly window (the common case);
- the issue's dense ServiceLevel: a window every minute for one second inside a year-long freeze;
- a weekly window with a Friday blackout and a year of daily shared-calendar events (365 holds);
- the worst valid input: a minutely window and an identical blackout, which never leave a gap, so
  the search takes MAX_STEPS turns and says it stopped.

The floor, measured in the same run: croniter's get_next for the weekly schedule, one call, the
cost of a single step of the occurrence walk decisions used to take (2-3 s of them for the dense
input). The figure that matters is each case's ratio to that floor.

    .venv/bin/python bench/window_decisions.py [N]     # default 2000

Prints a table and writes bench/results/window_decisions.json.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from croniter import croniter

from opsledger.domain.windows import MAX_STEPS, Hold, decide
from opsledger.models.servicelevel import Blackout, Freeze, MaintenanceWindow

ROOT = Path(__file__).resolve().parents[1]
AT = datetime(2026, 12, 2, 9, 0, 30, tzinfo=UTC)


def _timed(step: Callable[[int], object], count: int) -> tuple[float, float]:
    """(median, p99) of one call, in microseconds."""
    times = []
    for i in range(count):
        started = time.perf_counter()
        step(i)
        times.append((time.perf_counter() - started) * 1e6)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def main(count: int) -> None:
    weekly = [MaintenanceWindow(schedule="0 22 * * 6", duration="4h", timeZone="Europe/Berlin")]
    dense = [MaintenanceWindow(schedule="* * * * *", duration="1s")]
    year = [Freeze(start=AT - timedelta(days=1), end=AT + timedelta(days=363), reason="migration")]
    friday = [Blackout(schedule="0 15 * * 5", duration="9h", reason="Friday")]
    daily = [
        Hold(AT + timedelta(days=d, hours=3), AT + timedelta(days=d, hours=5), "calendar", "c")
        for d in range(365)
    ]
    same = [Blackout(schedule="* * * * *", duration="1s", reason="always")]
    # Vary the moment a little, so no answer is a cached one.
    moments = [AT + timedelta(seconds=7 * i) for i in range(count)]
    cases: dict[str, Callable[[int], object]] = {
        "weekly window": lambda i: decide(moments[i], windows=weekly),
        "dense window in a year-long freeze": lambda i: decide(
            moments[i], windows=dense, freezes=year
        ),
        "weekly + blackout + 365 calendar events": lambda i: decide(
            moments[i], windows=weekly, blackouts=friday, holds=daily
        ),
        f"minutely window = minutely blackout ({MAX_STEPS:,} steps, stops)": lambda i: decide(
            moments[i], windows=dense, blackouts=same
        ),
    }
    walk = croniter("0 22 * * 6", AT)
    floor = _timed(lambda _: walk.get_next(datetime), count * 5)
    rows = {
        name: _timed(case, count if "stops" not in name else max(50, count // 40))
        for name, case in cases.items()
    }
    print(f"{'case':<62}{'median µs':>11}{'p99 µs':>10}{'× floor':>9}")
    label = "floor: one croniter get_next (one step of a walk)"
    print(f"{label:<62}{floor[0]:>11.1f}{floor[1]:>10.1f}{1:>9.1f}")
    for name, (median, p99) in rows.items():
        print(f"{name:<62}{median:>11.1f}{p99:>10.1f}{median / floor[0]:>9.1f}")
    result = {
        "count": count,
        "floor_us": {"median": floor[0], "p99": floor[1]},
        "cases_us": {name: {"median": m, "p99": p} for name, (m, p) in rows.items()},
    }
    out = ROOT / "bench" / "results" / "window_decisions.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
