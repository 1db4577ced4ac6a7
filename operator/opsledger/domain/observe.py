"""What the operator records about a live Kubernetes object, by kind.

Only configuration and slow-moving state goes in: images, replicas, resources, selectors, ports,
capacity. Timestamps, resource versions and heartbeats stay out, so an unchanged object renders
to the same record and a restart writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opsledger.domain.redaction import Redactor
from opsledger.models.configitem import RelationshipType

# The guard's mark on a protecting item's source (domain/admission.py says why): the operator
# puts both on, so neither is the object's own configuration.
PROTECTED_LABEL = "opsledger.io/protected"
PROTECTED_BY = "opsledger.io/protected-by"

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
    labels = dict(metadata.get("labels") or {})
    raw_annotations = dict(metadata.get("annotations") or {})
    if raw_annotations.pop(PROTECTED_BY, None) is not None:
        labels.pop(PROTECTED_LABEL, None)  # the guard's own mark, not the object's configuration
    observed: dict[str, Any] = {
        "uid": metadata.get("uid"),
        "labels": redactor.mapping(labels),
    }
    annotations = redactor.annotations(raw_annotations or None)
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
    claims = workload_claims(obj)
    if claims:
        result["claims"] = claims
    return result


def workload_claims(obj: dict[str, Any]) -> list[str]:
    """The PersistentVolumeClaims a workload's pods mount: named in the pod template, and for a
    StatefulSet the ones its volumeClaimTemplates make (<template>-<name>-<ordinal>)."""
    spec = obj.get("spec", {})
    volumes = ((spec.get("template") or {}).get("spec") or {}).get("volumes") or []
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in volumes
        if (v.get("persistentVolumeClaim") or {}).get("claimName")
    }
    if obj.get("kind") == "StatefulSet":
        name = (obj.get("metadata") or {}).get("name", "")
        for template in spec.get("volumeClaimTemplates") or []:
            tpl = (template.get("metadata") or {}).get("name")
            if tpl:
                claims |= {f"{tpl}-{name}-{i}" for i in range(int(spec.get("replicas", 1)))}
    return sorted(claims)


def infrastructure_edges(
    kind: str, observed: Mapping[str, Any], nodes: list[str]
) -> list[tuple[RelationshipType, str, str]]:
    """Edges from an object to the infrastructure it uses: (type, kind, name) of the target.

    A workload runs on the nodes of its pods and stores in the claims it mounts; a claim
    stores in its bound volume; an Ingress exposes its backend Services.
    """
    edges: list[tuple[RelationshipType, str, str]] = []
    if kind in WORKLOAD_KINDS:
        edges += [(RelationshipType.RUNS_ON, "Node", n) for n in sorted(set(nodes))]
        edges += [
            (RelationshipType.STORES_IN, "PersistentVolumeClaim", c)
            for c in observed.get("claims") or []
        ]
    elif kind == "PersistentVolumeClaim" and observed.get("volume"):
        edges.append((RelationshipType.STORES_IN, "PersistentVolume", observed["volume"]))
    elif kind == "Ingress":
        services = sorted({b["service"] for b in observed.get("backends") or []})
        edges += [(RelationshipType.EXPOSES, "Service", s) for s in services]
    return edges


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


def _pv(obj: dict[str, Any], _: Redactor) -> dict[str, Any]:
    spec = obj.get("spec", {})
    claim = spec.get("claimRef") or {}
    return {
        "capacity": (spec.get("capacity") or {}).get("storage"),
        "storageClass": spec.get("storageClassName"),
        "accessModes": spec.get("accessModes") or [],
        "reclaimPolicy": spec.get("persistentVolumeReclaimPolicy"),
        "claim": f"{claim['namespace']}/{claim['name']}" if claim.get("name") else None,
        "phase": obj.get("status", {}).get("phase"),
    }


_EXTRACTORS: dict[str, Extractor] = {
    "PersistentVolume": _pv,
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
