"""What `kubectl itsm` does, with the user's own kubeconfig (kubectl's identity: RBAC and the
admission webhook see them, not OpsLedger)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from opsledger.adapters.kube import Kube
from opsledger.domain import catalog, explain
from opsledger.domain.calendar_feed import Entry, entries
from opsledger.domain.desk import CALENDAR_PHASES
from opsledger.models import CHANGE, INCIDENT, SERVICE_LEVEL, SERVICE_REQUEST
from opsledger.models.common import API_GROUP, API_VERSION
from opsledger.models.incident import IncidentSpec
from opsledger.models.request import CatalogItem, CatalogParameter
from opsledger.models.servicelevel import ServiceLevelSpec

T = TypeVar("T")


class RefusedError(RuntimeError):
    """The API server said no (RBAC, a CEL rule, a webhook): its own words."""


def refusals(fn: Callable[..., T]) -> Callable[..., T]:
    """The API server's refusals as RefusedError with its message (the CLI imports no client)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except (LookupError, ValueError, FileExistsError):
            raise
        except Exception as exc:
            code = getattr(exc, "status", None)
            if not isinstance(code, int):
                raise
            try:
                message = json.loads(getattr(exc, "body", "") or "{}").get("message")
            except ValueError:
                message = None
            raise RefusedError(message or f"HTTP {code}: {getattr(exc, 'reason', '')}") from exc

    return wrapper


def _list(kube: Kube, plural: str, namespace: str | None) -> list[dict[str, Any]]:
    if namespace:
        return kube.list_namespaced_custom(plural, namespace)
    return kube.list_custom(plural)


@refusals
def status(kube: Kube, namespace: str | None) -> list[explain.ServiceStatus]:
    """The services of `namespace` (None: all) with budgets, open incidents, running changes."""
    return explain.services(
        _list(kube, SERVICE_LEVEL.plural, namespace),
        _list(kube, INCIDENT.plural, namespace),
        _list(kube, CHANGE.plural, namespace),
    )


@refusals
def explain_change(kube: Kube, namespace: str, name: str) -> list[explain.Line]:
    """Why the Change stands where it does. Raises LookupError when there is no such Change."""
    change = kube.get_custom(CHANGE.plural, name, namespace)
    if change is None:
        raise LookupError(f"no Change {name} in namespace {namespace}")
    service = (change.get("spec") or {}).get("service")
    levels = [
        level
        for level in kube.list_namespaced_custom(SERVICE_LEVEL.plural, namespace)
        if (level.get("spec") or {}).get("service") == service
    ]
    return explain.explain(change, levels[0] if levels else None)


@refusals
def open_incident(kube: Kube, namespace: str, name: str, spec: dict[str, Any]) -> str:
    """Create an Incident (its requester is recorded by the webhook). Raises ValueError for a
    spec that is not a valid Incident, FileExistsError when the name is taken."""
    valid = IncidentSpec.model_validate(spec)
    created = kube.create_custom(
        INCIDENT.plural,
        namespace,
        {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": INCIDENT.kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": valid.model_dump(mode="json", by_alias=True, exclude_none=True),
        },
    )
    if created is None:
        raise FileExistsError(f"an Incident {name} already exists in {namespace}")
    return name


@refusals
def move_incident(
    kube: Kube, namespace: str, name: str, state: str, resolution: str | None = None
) -> None:
    """Acknowledge or resolve an Incident (the API server's CEL rules say no where they must).
    Raises LookupError when there is no such Incident."""
    if kube.get_custom(INCIDENT.plural, name, namespace) is None:
        raise LookupError(f"no Incident {name} in namespace {namespace}")
    spec: dict[str, Any] = {"state": state}
    if resolution:
        spec["resolution"] = resolution
    kube.patch_spec(INCIDENT.plural, name, namespace, spec)


@refusals
def offered(kube: Kube, namespace: str) -> list[tuple[str, dict[str, Any]]]:
    """(service, catalog entry) of every item the namespace's ServiceLevels offer."""
    found = []
    for level in kube.list_namespaced_custom(SERVICE_LEVEL.plural, namespace):
        service = str((level.get("spec") or {}).get("service") or "")
        found += [(service, dict(e)) for e in (level.get("status") or {}).get("catalog") or ()]
    return sorted(found, key=lambda f: (f[0], str(f[1].get("name"))))


def misfits(offer: dict[str, Any], parameters: dict[str, str]) -> list[str]:
    """What of `parameters` the offered catalog item (status.catalog's entry) does not allow."""
    item = CatalogItem(
        title=str(offer.get("title") or offer.get("name")),
        parameters=[CatalogParameter.model_validate(p) for p in offer.get("parameters") or ()],
    )
    return catalog.accept(item, parameters)[1]


@refusals
def make_request(
    kube: Kube,
    namespace: str,
    name: str,
    item: str,
    parameters: dict[str, str],
    *,
    why: str | None = None,
) -> str:
    """Create a ServiceRequest (its requester is recorded by the webhook; the operator checks
    the parameters against the catalog item). Raises FileExistsError when the name is taken."""
    created = kube.create_custom(
        SERVICE_REQUEST.plural,
        namespace,
        {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": SERVICE_REQUEST.kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "item": item,
                "parameters": parameters,
                **({"justification": why} if why else {}),
            },
        },
    )
    if created is None:
        raise FileExistsError(f"a ServiceRequest {name} already exists in {namespace}")
    return name


@refusals
def service_level(kube: Kube, namespace: str, service: str) -> ServiceLevelSpec:
    """The ServiceLevel of `service` in `namespace`. Raises LookupError when there is none."""
    for level in kube.list_namespaced_custom(SERVICE_LEVEL.plural, namespace):
        if (level.get("spec") or {}).get("service") == service:
            return ServiceLevelSpec.model_validate(level.get("spec") or {})
    raise LookupError(f"no ServiceLevel for service {service} in namespace {namespace}")


@refusals
def calendar(
    kube: Kube, namespace: str, since: datetime, until: datetime
) -> list[tuple[str, Entry]]:
    """(service, entry) of the namespace's change calendar: windows, blackouts, freezes, and the
    changes scheduled or running."""
    changes: dict[str, list[tuple[str, str, object, object, object]]] = {}
    for c in kube.list_namespaced_custom(CHANGE.plural, namespace):
        status, spec = c.get("status") or {}, c.get("spec") or {}
        if status.get("phase") in CALENDAR_PHASES:
            window = status.get("window") or {}
            changes.setdefault(str(spec.get("service")), []).append(
                (
                    str(c["metadata"]["name"]),
                    str(spec.get("summary") or ""),
                    window.get("start"),
                    window.get("end"),
                    status.get("phase"),
                )
            )
    rows = []
    for level in kube.list_namespaced_custom(SERVICE_LEVEL.plural, namespace):
        try:
            spec = ServiceLevelSpec.model_validate(level.get("spec") or {})
        except ValueError:
            continue
        found = entries(
            spec.service, spec, (), changes.get(spec.service, ()), since=since, until=until
        )
        rows += [(spec.service, e) for e in found]
    return sorted(rows, key=lambda r: (r[1].start, r[0]))
