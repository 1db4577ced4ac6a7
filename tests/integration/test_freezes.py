"""A freeze suspends the CronJobs of its service for its length, and resumes them after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support import Kubectl, OperatorProcess, wait_for, wait_for_event

NS = "frozen-jobs"


def _cronjob(kubectl: Kubectl, name: str) -> dict[str, Any]:
    found: dict[str, Any] = kubectl.json("get", "cronjob", name, "-n", NS)
    return found


def test_a_freeze_suspends_its_services_cronjobs_and_resumes_them_after(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    now = datetime.now(UTC)
    end = now + timedelta(seconds=40)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    start = (now - timedelta(minutes=1)).strftime(stamp)
    kubectl("create", "namespace", NS)
    kubectl(
        "apply",
        "-f",
        "-",
        input=f"""
apiVersion: batch/v1
kind: CronJob
metadata: {{name: nightly-import, namespace: {NS}}}
spec:
  schedule: "0 2 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{{name: import, image: "import:1.0"}}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {{name: paused-by-hand, namespace: {NS}}}
spec:
  schedule: "0 3 * * *"
  suspend: true
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{{name: report, image: "report:1.0"}}]
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: nightly-import, namespace: {NS}}}
spec:
  service: shop
  source: {{apiVersion: batch/v1, kind: CronJob, name: nightly-import}}
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: paused-by-hand, namespace: {NS}}}
spec:
  service: shop
  source: {{apiVersion: batch/v1, kind: CronJob, name: paused-by-hand}}
---
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {{name: shop, namespace: {NS}}}
spec:
  service: shop
  freezes:
  - {{start: "{start}", end: "{end.strftime(stamp)}", reason: "stock-take"}}
""",
    )
    suspended = wait_for(
        lambda: (c := _cronjob(kubectl, "nightly-import"))["spec"].get("suspend") and c,
        timeout=60,
        what="nightly-import suspended for the freeze",
    )
    note = suspended["metadata"]["annotations"]["opsledger.io/suspended-for-freeze"]
    assert note == f"until {end.strftime(stamp)}: stock-take"
    wait_for_event(kubectl, NS, "nightly-import", "SuspendedForFreeze")

    resumed = wait_for(
        lambda: (c := _cronjob(kubectl, "nightly-import"))["spec"].get("suspend") is False and c,
        timeout=90,
        what="nightly-import resumed after the freeze",
    )
    assert "opsledger.io/suspended-for-freeze" not in (resumed["metadata"].get("labels") or {})
    # The one suspended by hand before the freeze stays suspended: it is not OpsLedger's.
    assert _cronjob(kubectl, "paused-by-hand")["spec"]["suspend"] is True
