"""The class of a configuration item, defaulted from the kind of its source object."""

from __future__ import annotations

from opsledger.models.configitem import CIClass

KIND_TO_CLASS: dict[str, CIClass] = {
    **dict.fromkeys(
        ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"],
        CIClass.WORKLOAD,
    ),
    "Service": CIClass.SERVICE,
    "Node": CIClass.NODE,
    "Namespace": CIClass.NAMESPACE,
    **dict.fromkeys(["PersistentVolume", "PersistentVolumeClaim", "StorageClass"], CIClass.STORAGE),
    **dict.fromkeys(["Ingress", "Gateway", "HTTPRoute"], CIClass.INGRESS),
    "NetworkPolicy": CIClass.NETWORK,
}


def effective_class(declared: str | None, source_kind: str | None) -> CIClass:
    """spec.class when given; else the class for the source's kind; else Other."""
    if declared:
        return CIClass(declared)
    if source_kind:
        return KIND_TO_CLASS.get(source_kind, CIClass.OTHER)
    return CIClass.OTHER
