"""Kubernetes API access beyond what Kopf does for the handlers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import urllib3
from kubernetes import client, config, dynamic, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ConflictError as DynamicConflictError
from kubernetes.dynamic.exceptions import ForbiddenError, NotFoundError, ResourceNotFoundError

from opsledger.models.common import API_GROUP, API_VERSION

FIELD_MANAGER = "opsledger"
PATCH_CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
}


class ConflictError(RuntimeError):
    """The object changed since the version a write was computed from (HTTP 409)."""


class GoneError(RuntimeError):
    """A watch asked for a resourceVersion the API server no longer keeps (HTTP 410)."""


def api_client(kubeconfig: str | None) -> client.ApiClient:
    """A client from a kubeconfig file, or from the pod's service account when there is none."""
    if kubeconfig:
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
        return api
    config.load_incluster_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


@dataclass(frozen=True)
class Connection:
    """Where and as whom a kubeconfig file connects (for Kopf's own login)."""

    server: str
    ca_path: str | None
    insecure: bool
    certificate_path: str | None
    private_key_path: str | None
    token: str | None


def connection(kubeconfig: str) -> Connection:
    """The API server and credentials of a kubeconfig file, so Kopf's own requests (status
    patches, watches) are made as the same identity as the operator's client, not as whoever
    $KUBECONFIG names."""
    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)  # type: ignore[no-untyped-call]
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
        "authorization"
    )
    token = header.split(" ", 1)[-1] if header else None
    return Connection(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
        token=token,
    )


def missing_crds(api: client.ApiClient, names: Iterable[str]) -> list[str]:
    """Names of the CustomResourceDefinitions that are not installed or not yet established."""
    extensions = client.ApiextensionsV1Api(api)
    missing = []
    for name in names:
        try:
            crd = extensions.read_custom_resource_definition(name)
        except ApiException as exc:
            if exc.status == 404:
                missing.append(name)
                continue
            raise
        conditions = (crd.status.conditions or []) if crd.status else []
        if not any(c.type == "Established" and c.status == "True" for c in conditions):
            missing.append(name)
    return missing


class Kube:
    """Reads of arbitrary objects and status writes, for work outside a Kopf handler's patch."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._dynamic: dynamic.DynamicClient | None = None
        self._lock = threading.Lock()
        self._discovery = threading.Lock()

    def _client(self) -> dynamic.DynamicClient:
        with self._lock:
            if self._dynamic is None:  # discovery happens once, lazily
                self._dynamic = dynamic.DynamicClient(self.api)  # type: ignore[no-untyped-call]
            return self._dynamic

    def namespaced(self, api_version: str, kind: str) -> bool:
        return bool(self._resource(api_version, kind).namespaced)

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        """The object as a dict, or None when it does not exist. Cluster-scoped kinds (Node,
        Namespace, PersistentVolume) ignore `namespace`."""
        resource = self._resource(api_version, kind)
        try:
            if resource.namespaced:
                obj = resource.get(name=name, namespace=namespace)
            else:
                obj = resource.get(name=name)
        except NotFoundError:
            return None
        result: dict[str, Any] = obj.to_dict()
        return result

    def _resource(self, api_version: str, kind: str) -> Any:
        # The dynamic client's discovery cache is not thread-safe: a kind it does not know makes
        # it discover again, and a thread searching meanwhile fails with KeyError('apis'). One
        # lookup at a time (each is a dictionary read once discovered).
        dynamic_client = self._client()
        with self._discovery:
            try:
                return dynamic_client.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError as exc:
                raise LookupError(f"the cluster serves no {kind} in {api_version}") from exc

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str,
        *,
        patch_type: str,
        body: Any,
        field_manager: str = FIELD_MANAGER,
    ) -> dict[str, Any]:
        """Apply a merge, JSON or server-side-apply patch; returns the object as stored."""
        resource = self._resource(api_version, kind)
        scope = {"namespace": namespace} if resource.namespaced else {}
        if patch_type == "apply":
            document = dict(body or {})
            document.setdefault("apiVersion", api_version)
            document.setdefault("kind", kind)
            document.setdefault("metadata", {})["name"] = name
            obj = resource.server_side_apply(
                body=document, name=name, field_manager=field_manager, force_conflicts=True, **scope
            )
        else:
            obj = resource.patch(
                body=body,
                name=name,
                content_type=PATCH_CONTENT_TYPES[patch_type],
                field_manager=field_manager,
                **scope,
            )
        result: dict[str, Any] = obj.to_dict()
        return result

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create or update `body` by server-side apply (the operator owns the fields it sets).
        Raises LookupError when the cluster does not serve its kind and PermissionError when
        the operator may not write it."""
        meta = body.get("metadata") or {}
        kind, api_version = str(body.get("kind")), str(body.get("apiVersion"))
        for attempt in range(2):
            try:
                return self.patch(
                    api_version,
                    kind,
                    str(meta.get("name")),
                    str(meta.get("namespace") or ""),
                    patch_type="apply",
                    body=body,
                )
            except ForbiddenError as exc:
                raise PermissionError(
                    f"the operator may not write {kind} {meta.get('name')}"
                ) from exc
            except NotFoundError as exc:
                # The discovery cache (a file, shared between processes) may still list a kind
                # whose CRD has gone: discover again, and the kind is found or LookupError says so.
                if attempt:
                    raise LookupError(f"the cluster serves no {kind} in {api_version}") from exc
                with self._discovery:
                    self._client().resources.invalidate_cache()
        raise AssertionError("unreachable")

    def restore(
        self, api_version: str, kind: str, name: str, namespace: str, prior: Mapping[str, Any]
    ) -> None:
        """Put back an object's labels, annotations and spec exactly as in `prior` (a replace,
        retried when someone else wrote in between)."""
        resource = self._resource(api_version, kind)
        scope = {"namespace": namespace} if resource.namespaced else {}
        for attempt in range(5):
            current = resource.get(name=name, **scope).to_dict()
            meta = current["metadata"]
            prior_meta = prior.get("metadata") or {}
            for key in ("labels", "annotations"):
                if prior_meta.get(key):
                    meta[key] = prior_meta[key]
                else:
                    meta.pop(key, None)
            current["spec"] = prior.get("spec")
            try:
                resource.replace(body=current, name=name, field_manager=FIELD_MANAGER, **scope)
            except DynamicConflictError:
                if attempt < 4:
                    continue
                raise
            return

    def delete(self, api_version: str, kind: str, name: str, namespace: str) -> None:
        resource = self._resource(api_version, kind)
        scope = {"namespace": namespace} if resource.namespaced else {}
        try:
            resource.delete(name=name, **scope)
        except NotFoundError:
            return
        except ForbiddenError as exc:
            raise PermissionError(f"the operator may not delete {kind} {name}") from exc

    def get_custom(self, plural: str, name: str, namespace: str) -> dict[str, Any] | None:
        try:
            obj = cast(
                dict[str, Any],
                client.CustomObjectsApi(self.api).get_namespaced_custom_object(
                    API_GROUP, API_VERSION, namespace, plural, name
                ),
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    def patch_status(
        self,
        plural: str,
        name: str,
        namespace: str,
        status: dict[str, Any],
        *,
        resource_version: str | None = None,
    ) -> None:
        """Merge `status` into the object's status; LookupError when the object is gone.

        With `resource_version` the patch applies only to that version of the object (else
        ConflictError): a status computed from a listed copy never overwrites a newer write,
        such as another handler's conditions (a merge patch replaces the whole list)."""
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            client.CustomObjectsApi(self.api).patch_namespaced_custom_object_status(
                API_GROUP, API_VERSION, namespace, plural, name, body
            )
        except ApiException as exc:
            if exc.status == 404:
                raise LookupError(f"{plural} {namespace}/{name} does not exist") from exc
            if exc.status == 409:
                raise ConflictError(f"{plural} {namespace}/{name} changed meanwhile") from exc
            raise

    def patch_spec(self, plural: str, name: str, namespace: str, spec: dict[str, Any]) -> None:
        client.CustomObjectsApi(self.api).patch_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, plural, name, {"spec": spec}
        )

    def patch_custom(self, plural: str, name: str, namespace: str, body: dict[str, Any]) -> None:
        """Merge `body` (spec, metadata) into one of OpsLedger's objects."""
        client.CustomObjectsApi(self.api).patch_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, plural, name, body
        )

    def list_custom(self, plural: str) -> list[dict[str, Any]]:
        """Every object of one of OpsLedger's kinds, in all namespaces."""
        result = cast(
            dict[str, Any],
            client.CustomObjectsApi(self.api).list_cluster_custom_object(
                API_GROUP, API_VERSION, plural
            ),
        )
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    def list_versioned(
        self, plural: str, namespace: str | None = None, *, page: int = 500
    ) -> tuple[list[dict[str, Any]], str]:
        """Every object of one of OpsLedger's kinds (in `namespace`, or all), read in pages, and
        the resourceVersion the list is consistent at (to watch from)."""
        api = client.CustomObjectsApi(self.api)
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = (
                {"limit": page, "_continue": token} if token else {"limit": page}
            )
            if namespace:
                listed = api.list_namespaced_custom_object(
                    API_GROUP, API_VERSION, namespace, plural, **kwargs
                )
            else:
                listed = api.list_cluster_custom_object(API_GROUP, API_VERSION, plural, **kwargs)
            result = cast(dict[str, Any], listed)
            items.extend(result.get("items", []))
            meta = result.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    def watch_custom(
        self, plural: str, resource_version: str, timeout: int = 300
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, object) for every change to one of OpsLedger's kinds after `resource_version`,
        in all namespaces, until the server ends the watch (after about `timeout` seconds).
        Raises GoneError when that version is too old to watch from (list again)."""
        stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
            client.CustomObjectsApi(self.api).list_cluster_custom_object,
            API_GROUP,
            API_VERSION,
            plural,
            resource_version=resource_version,
            timeout_seconds=timeout,
            allow_watch_bookmarks=True,
        )
        try:
            for event in stream:
                kind, obj = str(event.get("type")), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise GoneError(str(obj.get("message")))
                    raise RuntimeError(f"watch of {plural} failed: {obj.get('message')}")
                yield kind, obj
        except ApiException as exc:
            if exc.status == 410:
                raise GoneError(str(exc.reason)) from exc
            raise

    def review_token(self, token: str) -> tuple[str, list[str]] | None:
        """Who a bearer token belongs to, as the API server says (a TokenReview): (username,
        groups), or None when it does not accept the token."""
        review = client.AuthenticationV1Api(self.api).create_token_review(
            client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
        )
        status = review.status
        if status is None or not status.authenticated or status.user is None:
            return None
        return str(status.user.username or ""), [str(g) for g in status.user.groups or []]

    def create_custom_as(
        self,
        plural: str,
        namespace: str,
        body: Mapping[str, Any],
        user: str,
        groups: Iterable[str],
    ) -> dict[str, Any]:
        """Create an object as `user` (in `groups`) through Kubernetes impersonation: RBAC decides
        whether they may, and the API server records them as its author. Raises
        PermissionError with the API server's own words when it refuses, ValueError when it
        finds the object invalid."""
        cfg = self.api.configuration
        url = f"{cfg.host}/apis/{API_GROUP}/{API_VERSION}/namespaces/{namespace}/{plural}"
        headers = urllib3.HTTPHeaderDict(
            {"Content-Type": "application/json", "Accept": "application/json"}
        )
        for setting in cfg.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[str(setting["key"])] = str(setting["value"])
        headers["Impersonate-User"] = user
        for group in groups:
            headers.add("Impersonate-Group", group)  # one header per group, as the API expects
        response = self.api.rest_client.pool_manager.request(
            "POST", url, body=json.dumps(body).encode(), headers=headers, timeout=30
        )
        answer = json.loads(response.data or b"{}")
        if response.status == 403:
            raise PermissionError(str(answer.get("message") or "forbidden"))
        if response.status in (400, 409, 422):
            raise ValueError(str(answer.get("message") or f"HTTP {response.status}"))
        if response.status >= 300:
            raise RuntimeError(f"HTTP {response.status}: {answer.get('message')}")
        return cast(dict[str, Any], answer)

    def list_namespaced_custom(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        """Every object of one of OpsLedger's kinds in one namespace, read now (not cached)."""
        result = cast(
            dict[str, Any],
            client.CustomObjectsApi(self.api).list_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, plural
            ),
        )
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    def pod_nodes(self, namespace: str, match_labels: Mapping[str, str]) -> list[str]:
        """The nodes the pods selected by `match_labels` in `namespace` are scheduled on."""
        selector = ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))
        pods = client.CoreV1Api(self.api).list_namespaced_pod(namespace, label_selector=selector)
        return sorted({p.spec.node_name for p in pods.items if p.spec and p.spec.node_name})

    def whoami(self) -> str:
        """The username the API server knows these credentials by (a SelfSubjectReview)."""
        review = client.AuthenticationV1Api(self.api).create_self_subject_review(
            client.V1SelfSubjectReview(
                api_version="authentication.k8s.io/v1", kind="SelfSubjectReview"
            )
        )
        user = review.status.user_info if review.status else None
        if user is None or not user.username:
            raise LookupError("the API server did not say who these credentials belong to")
        return str(user.username)

    def put_webhook_configuration(self, body: dict[str, Any]) -> None:
        """Create or update a Validating- or MutatingWebhookConfiguration (server-side apply)."""
        resource = self._resource("admissionregistration.k8s.io/v1", body["kind"])
        resource.server_side_apply(
            body=body,
            name=body["metadata"]["name"],
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )

    def peers(self, name: str, namespace: str | None) -> dict[str, Any] | None:
        """The status of Kopf's peering object (ClusterKopfPeering, or KopfPeering in
        `namespace`): each peer's identity → priority, lifetime, last seen. None: no object."""
        kind = "KopfPeering" if namespace else "ClusterKopfPeering"
        resource = self._resource("kopf.dev/v1", kind)
        try:
            found = (
                resource.get(name=name, namespace=namespace)
                if namespace
                else resource.get(name=name)
            )
        except NotFoundError:
            return None
        status: dict[str, Any] = found.to_dict().get("status") or {}
        return status

    def hold_lease(self, name: str, namespace: str, holder: str, seconds: int) -> None:
        """Create or renew the Lease `name` as held by `holder` (a new holder counts a
        transition and sets acquireTime)."""
        resource = self._resource("coordination.k8s.io/v1", "Lease")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        try:
            lease = resource.get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "holderIdentity": holder,
                    "leaseDurationSeconds": seconds,
                    "acquireTime": now,
                    "renewTime": now,
                    "leaseTransitions": 0,
                },
            }
            resource.create(body=body, namespace=namespace)
            return
        spec = lease.get("spec") or {}
        changes: dict[str, Any] = {"renewTime": now, "leaseDurationSeconds": seconds}
        if spec.get("holderIdentity") != holder:
            changes |= {
                "holderIdentity": holder,
                "acquireTime": now,
                "leaseTransitions": int(spec.get("leaseTransitions") or 0) + 1,
            }
        resource.patch(
            body={"spec": changes},
            name=name,
            namespace=namespace,
            content_type="application/merge-patch+json",
        )

    def list_namespaced(self, api_version: str, kind: str, namespace: str) -> list[dict[str, Any]]:
        """Every object of a kind in a namespace."""
        listed = self._resource(api_version, kind).get(namespace=namespace)
        return [o.to_dict() for o in listed.items]

    def labelled(self, api_version: str, kind: str, selector: str) -> list[dict[str, Any]]:
        """Every object of a kind whose labels match `selector`, across the cluster."""
        listed = self._resource(api_version, kind).get(label_selector=selector)
        return [o.to_dict() for o in listed.items]

    def labelled_namespaces(self, kinds: Iterable[tuple[str, str]], selector: str) -> set[str]:
        """The namespaces holding objects of `kinds` ((apiVersion, kind)) whose labels match
        `selector`, across the cluster."""
        found: set[str] = set()
        for api_version, kind in kinds:
            listed = self._resource(api_version, kind).get(label_selector=selector)
            found.update(str(o.metadata.namespace) for o in listed.items)
        return found

    def set_match_condition(
        self, configuration: str, webhook: str, condition: Mapping[str, str]
    ) -> bool:
        """Replace the match condition of that name on one webhook of a
        ValidatingWebhookConfiguration (written only when it differs, so it is asked of the
        configuration as it is: a `helm upgrade` that put the chart's back is noticed); False
        when the configuration or webhook is not there."""
        resource = self._resource(
            "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"
        )
        try:
            body = resource.get(name=configuration).to_dict()
        except NotFoundError:
            return False
        for hook in body.get("webhooks") or []:
            if hook.get("name") == webhook:
                current = hook.get("matchConditions") or []
                if dict(condition) in current:
                    return True
                others = [c for c in current if c["name"] != condition["name"]]
                hook["matchConditions"] = [*others, dict(condition)]
                resource.replace(body=body, name=configuration)
                return True
        return False

    def delete_webhook_configuration(self, kind: str, name: str) -> None:
        resource = self._resource("admissionregistration.k8s.io/v1", kind)
        try:
            resource.delete(name=name)
        except NotFoundError:
            return

    def may(
        self,
        user: Mapping[str, Any],
        *,
        namespace: str,
        verb: str,
        group: str,
        resource: str,
        subresource: str | None = None,
    ) -> tuple[bool, str]:
        """Whether RBAC (the API server's authorizers) lets `user` (an AdmissionReview's
        userInfo) do `verb` on the resource; and the authorizer's reason (a SubjectAccessReview)."""
        extra = {str(k): [str(v) for v in vs] for k, vs in (user.get("extra") or {}).items()}
        review = client.V1SubjectAccessReview(
            api_version="authorization.k8s.io/v1",
            kind="SubjectAccessReview",
            spec=client.V1SubjectAccessReviewSpec(
                user=str(user.get("username") or ""),
                uid=user.get("uid") or None,
                groups=[str(g) for g in user.get("groups") or ()],
                extra=extra or None,
                resource_attributes=client.V1ResourceAttributes(
                    namespace=namespace,
                    verb=verb,
                    group=group,
                    resource=resource,
                    subresource=subresource,
                ),
            ),
        )
        answer = client.AuthorizationV1Api(self.api).create_subject_access_review(review)
        status = answer.status
        if status is None:
            return False, "the API server gave no answer"
        return bool(status.allowed), str(status.reason or status.evaluation_error or "")

    def create_custom(
        self, plural: str, namespace: str, body: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Create an object and return it as stored; None when that name already exists."""
        try:
            created = client.CustomObjectsApi(self.api).create_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, plural, body
            )
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise
        return cast(dict[str, Any], created)

    def post_event(
        self, obj: Mapping[str, Any], *, type: str, reason: str, message: str, component: str
    ) -> None:
        """A core/v1 Event about `obj`, for work running outside Kopf's handler context."""
        meta = obj.get("metadata") or {}
        now = datetime.now(UTC)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                generate_name=f"{meta.get('name')}.", namespace=meta.get("namespace")
            ),
            involved_object=client.V1ObjectReference(
                api_version=obj.get("apiVersion"),
                kind=obj.get("kind"),
                name=meta.get("name"),
                namespace=meta.get("namespace"),
                uid=meta.get("uid"),
                resource_version=meta.get("resourceVersion"),
            ),
            type=type,
            reason=reason,
            message=message[:1024],
            source=client.V1EventSource(component=component),
            reporting_component=component,
            reporting_instance=socket.gethostname(),
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )
        client.CoreV1Api(self.api).create_namespaced_event(str(meta.get("namespace")), event)
