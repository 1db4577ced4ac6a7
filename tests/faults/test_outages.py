"""Faults: the parts OpsLedger depends on go away under it, and come back.

- kube-apiserver restarted (etcd kept): the operator's watches resume by themselves; an item
  created and an item edited right after the restart are both reconciled and recorded.
- The Git remote unreachable across an operator restart (SIGKILL): the records of items created
  during the outage are not kept anywhere but the cluster (each item's CMDBSynced=False says so),
  and that is enough: the restarted operator writes every one of them once the remote is back.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from opsledger.devenv.environment import DevEnvironment
from tests.support import Kubectl, OperatorProcess, remote_text, wait_for


def _ci(name: str, namespace: str, criticality: str = "medium") -> str:
    return f"""
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{class: Service, service: shop, criticality: {criticality}}}
"""


def _condition(kubectl: Kubectl, namespace: str, name: str, type_: str) -> dict[str, Any] | None:
    obj = kubectl.json("get", "ci", name, "-n", namespace)
    return next(
        (c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), None
    )


def _synced(kubectl: Kubectl, namespace: str, name: str) -> bool:
    synced = _condition(kubectl, namespace, name, "CMDBSynced")
    return bool(synced and synced["status"] == "True")


def _record(devenv: DevEnvironment, namespace: str, name: str) -> str | None:
    path = f"clusters/{devenv.cluster}/{namespace}/configurationitems/{name}.yaml"
    return remote_text(devenv, path)


def test_a_restarted_api_server_misses_nothing(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    ns = "outage-api"
    kubectl("create", "namespace", ns)
    kubectl("apply", "-f", "-", input=_ci("before", ns))
    wait_for(lambda: _synced(kubectl, ns, "before"), timeout=60, what="before recorded")

    devenv.table.stop("kube-apiserver")
    time.sleep(5)  # the operator's watches and writes fail meanwhile
    devenv.up()  # the same etcd: every object is still there

    kubectl("apply", "-f", "-", input=_ci("after", ns))
    kubectl("apply", "-f", "-", input=_ci("before", ns, criticality="high"))
    wait_for(lambda: _synced(kubectl, ns, "after"), timeout=120, what="after recorded")
    wait_for(
        lambda: "criticality: high" in (_record(devenv, ns, "before") or ""),
        timeout=120,
        what="the edit made after the restart in before's record",
    )
    assert operator.proc is not None
    assert operator.proc.poll() is None, "the operator survived the API server's restart"


def test_records_made_while_the_remote_is_away_survive_a_restart(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path
) -> None:
    ns = "outage-git"
    kubectl("create", "namespace", ns)
    moved = tmp_path / "remote-away.git"
    shutil.move(devenv.cmdb_remote, moved)
    try:
        names = [f"late-{i}" for i in range(3)]
        kubectl("apply", "-f", "-", input="\n---\n".join(_ci(n, ns) for n in names))
        for name in names:
            wait_for(
                lambda name=name: (
                    (_condition(kubectl, ns, name, "CMDBSynced") or {}).get("status") == "False"
                ),
                timeout=60,
                what=f"{name} unsynced while the remote is away",
            )
        operator.kill()  # no chance to flush anything
        operator.start()
        time.sleep(5)
        assert not any(_synced(kubectl, ns, n) for n in names)
    finally:
        shutil.move(moved, devenv.cmdb_remote)
    for name in names:
        wait_for(lambda name=name: _synced(kubectl, ns, name), timeout=90, what=f"{name} recorded")
        assert "service: shop" in (_record(devenv, ns, name) or "")
