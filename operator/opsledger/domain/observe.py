"""What the operator records about a live Kubernetes object, by kind.

Only configuration and slow-moving state goes in: images, replicas, resources, selectors, ports,
capacity. Timestamps, resource versions and heartbeats stay out, so an unchanged object renders
to the same record and a restart writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opsledger.domain.redaction import Redactor
from opsledger.models.configitem import RelationshipType

Extractor = Callable[[dict[str, Any], Redactor], dict[str, Any]]

WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"})
CLUSTER_SCOPED_KINDS = frozenset({"Node", "Namespace", "PersistentVolume", "StorageClass"})

# Live state shown in the CI's status but kept out of the Git record: it moves with every pod
# that starts or stops, and the CMDB is an audit trail of configuration, not a metrics store.
VOLATILE_KEYS = frozenset({"readyReplicas"})


def recorded(observed: dict[str, Any]) -> dict[str, Any]:
    """The part of an observation that goes into the CMDB record."""
    return {k: v for k, v in observed.items() if k not in VOLATILE_KEYS}


def api_group(api_version: str) -> str:
    """The API group of an apiVersion: apps for apps/v1, "" (the core group) for v1."""
    group, _, version = api_version.rpartition("/")
    return group if version else api_version


def source_key(
    api_version: str, kind: str, namespace: str | None, name: str
) -> tuple[str, str, str, str]:
    """How a source object is identified across ConfigurationItems: (group, kind, namespace,
    name). The version is left out (apps/v1beta1 and apps/v1 serve the same object); the group
    is not, so an apps Deployment and a Deployment of some other API group never collide."""
    namespace = "" if kind in CLUSTER_SCOPED_KINDS else (namespace or "")
    return (api_group(api_version), kind, namespace, name)


def observe(obj: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    """The recorded attributes of `obj` (a Kubernetes object as returned by the API)."""
    kind = obj.get("kind", "")
    metadata = obj.get("metadata", {})
    observed: dict[str, Any] = {
        "uid": metadata.get("uid"),
        "labels": redactor.mapping(metadata.get("labels") or {}),
    }
    annotations = redactor.annotations(metadata.get("annotations"))
    if annotations:
        observed["annotations"] = annotations
    extract: Extractor | None = _EXTRACTORS.get(kind)
    if extract is None and kind in WORKLOAD_KINDS:
        extract = _workload
    if extract is not None:
        observed.update(extract(obj, redactor))
    return {k: v for k, v in observed.items() if v not in (None, {}, [])}


def _containers(pod_spec: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    containers = pod_spec.get("containers") or []
    result: dict[str, Any] = {
        "images": {c["name"]: c.get("image", "") for c in containers},
        "resources": {
            c["name"]: c.get("resources") or {} for c in containers if c.get("resources")
        },
    }
    env = {c["name"]: redactor.env(c.get("env")) for c in containers if c.get("env")}
    if env:
        result["env"] = env
    init = pod_spec.get("initContainers") or []
    if init:
        result["initImages"] = {c["name"]: c.get("image", "") for c in init}
    if pod_spec.get("serviceAccountName"):
        result["serviceAccount"] = pod_spec["serviceAccountName"]
    return result


def _workload(obj: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    spec = obj.get("spec", {})
    status = obj.get("status", {})
    template = spec.get("template", {})
    result = _containers(template.get("spec", {}), redactor)
    if obj.get("kind") == "DaemonSet":
        result["replicas"] = status.get("desiredNumberScheduled", 0)
        result["readyReplicas"] = status.get("numberReady", 0)
    else:
        result["replicas"] = spec.get("replicas", 1)
        result["readyReplicas"] = status.get("readyReplicas", 0)
    result["selector"] = redactor.mapping((spec.get("selector") or {}).get("matchLabels") or {})
    result["podLabels"] = redactor.mapping((template.get("metadata") or {}).get("labels") or {})
    return result


def _service(obj: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    spec = obj.get("spec", {})
    ports = [
        {k: p[k] for k in ("name", "port", "targetPort", "protocol", "nodePort") if k in p}
        for p in spec.get("ports") or []
    ]
    return {
        "type": spec.get("type", "ClusterIP"),
        "selector": redactor.mapping(spec.get("selector") or {}),
        "ports": ports,
    }


def _node(obj: dict[str, Any], _: Redactor) -> dict[str, Any]:
    status = obj.get("status", {})
    info = status.get("nodeInfo") or {}
    return {
        "capacity": status.get("capacity") or {},
        "allocatable": status.get("allocatable") or {},
        "kubeletVersion": info.get("kubeletVersion"),
        "osImage": info.get("osImage"),
        "conditions": {c["type"]: c["status"] for c in status.get("conditions") or []},
        "unschedulable": bool(obj.get("spec", {}).get("unschedulable", False)),
    }


def _namespace(obj: dict[str, Any], _: Redactor) -> dict[str, Any]:
    return {"phase": obj.get("status", {}).get("phase")}


def _ingress(obj: dict[str, Any], _: Redactor) -> dict[str, Any]:
    spec = obj.get("spec", {})
    backends = []
    for rule in spec.get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            service = (path.get("backend") or {}).get("service") or {}
            if service.get("name"):
                backends.append(
                    {
                        "host": rule.get("host", "*"),
                        "path": path.get("path", "/"),
                        "service": service["name"],
                    }
                )
    return {
        "className": spec.get("ingressClassName"),
        "hosts": sorted({r.get("host", "*") for r in spec.get("rules") or []}),
        "backends": backends,
        "tls": sorted({h for t in spec.get("tls") or [] for h in t.get("hosts") or []}),
    }


def _pvc(obj: dict[str, Any], _: Redactor) -> dict[str, Any]:
    spec = obj.get("spec", {})
    return {
        "storageClass": spec.get("storageClassName"),
        "requested": ((spec.get("resources") or {}).get("requests") or {}).get("storage"),
        "accessModes": spec.get("accessModes") or [],
        "volume": spec.get("volumeName"),
        "phase": obj.get("status", {}).get("phase"),
    }


_EXTRACTORS: dict[str, Extractor] = {
    "Service": _service,
    "Node": _node,
    "Namespace": _namespace,
    "Ingress": _ingress,
    "PersistentVolumeClaim": _pvc,
}


def owner_relationships(obj: dict[str, Any]) -> list[tuple[RelationshipType, str, str, str]]:
    """partOf edges to the object's controllers: (type, owner apiVersion, kind, name)."""
    return [
        (
            RelationshipType.PART_OF,
            ref.get("apiVersion", ""),
            ref.get("kind", ""),
            ref.get("name", ""),
        )
        for ref in obj.get("metadata", {}).get("ownerReferences") or []
        if ref.get("controller")
    ]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a Service's (non-empty) selector matches a pod template's labels."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())
