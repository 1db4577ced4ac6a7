"""The floor of bench/cmdb_sync.py: a trivial Kopf operator, one create handler that patches the
status of a ConfigurationItem, run with Kopf's defaults on the same CRD and the same machine.

    kopf run --standalone --namespace NS bench/trivial_operator.py
"""

from __future__ import annotations

from typing import Any

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = 100  # no Events: the floor is the reconciliation alone
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")


@kopf.on.create("opsledger.io", "v1alpha1", "configurationitems")
def recorded(patch: kopf.Patch, **_: Any) -> None:
    patch.status["dependents"] = 0
