"""The validating admission webhook, served by the operator over TLS.

Three endpoints, each answering the API server's AdmissionReview:

- `/guard` — protected workloads (Deployments, StatefulSets, DaemonSets and their `scale`
  subresource);
- `/validate` — OpsLedger's own kinds, beyond what the CRD schema can say, and change control
  (who created a Change, its frozen approved spec, its status, the break-glass right);
- `/mutate` — a Change or Incident being created gets its requester, who the API server says is
  asking.

`services.admission` reads the facts and asks `domain.admission` to decide; this module is the
HTTP side: the reviews in and out, the TLS certificate (reloaded when cert-manager renews it),
and `serve`, which a Kopf startup handler in `handlers/servers.py` calls.

In the local environment the operator registers the Validating- and
MutatingWebhookConfiguration for its own endpoints at start and removes them when it stops (as
Kopf's managed admission does); in a cluster the Helm chart ships the configuration. A request
the handler cannot parse gets HTTP 400 and a log line; a failure reading the facts denies with
the reason (the failure policy then no longer matters: the API server received an answer).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from opsledger.domain import admission
from opsledger.domain.observe import PROTECTED_LABEL
from opsledger.models.settings import Settings
from opsledger.services import admission as service
from opsledger.services import guard_scope
from opsledger.services.admission import SPEC_MODELS, WORKLOADS
from opsledger.services.context import Context

log = logging.getLogger("opsledger.admission")

Decide = Callable[[Context, str | None, Mapping[str, Any]], Awaitable[tuple[bool, str]]]


class BadReviewError(ValueError):
    """The request body is not an AdmissionReview the webhook can answer."""


def _common(settings: Settings) -> dict[str, Any]:
    return {
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "failurePolicy": settings.webhook_failure_policy,
        "timeoutSeconds": settings.webhook_timeout,
        "matchPolicy": "Equivalent",
        "namespaceSelector": {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": sorted(admission.EXEMPT_NAMESPACES),
                }
            ]
        },
    }


def _metadata(settings: Settings) -> dict[str, Any]:
    return {"name": settings.webhook_name, "labels": {"app.kubernetes.io/managed-by": "opsledger"}}


# Requests from the control plane (controllers scaling, rolling out, collecting garbage,
# deleting namespaces) are never sent: the guard would pass them anyway, and while the operator
# is down they must not fail.
NOT_THE_CONTROL_PLANE = {
    "name": "not-the-control-plane",
    "expression": "!("
    + " || ".join(
        [
            "request.userInfo.username in ["
            + ", ".join(f"'{u}'" for u in sorted(admission.EXEMPT_USERS))
            + "]",
            *(
                f"request.userInfo.username.startsWith('{p}')"
                for p in admission.EXEMPT_USER_PREFIXES
            ),
        ]
    )
    + ")",
}


# Evictions by whoever may cordon nodes (a drain, the cluster autoscaler) are never sent to the
# guard: a node drain must not wait for, or on, the operator. A namespace user's eviction is
# judged like a deletion.
NOT_A_DRAIN = {
    "name": "not-a-node-drain",
    "expression": "!has(request.subResource) || request.subResource != 'eviction' || "
    "!authorizer.group('').resource('nodes').check('update').allowed()",
}


def webhook_configuration(
    settings: Settings,
    base_url: str,
    ca_bundle: bytes,
    namespaces: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration pointing the API server at `base_url`.

    The guard is called only for what can change a protected object, so that a stopped
    operator stops nothing else (`failurePolicy: Fail` applies to these alone):
    - `guard.opsledger.io`: the workload kinds, only for objects labelled
      `opsledger.io/protected=true` (an objectSelector; the operator keeps the label on the
      sources of protected items, and refuses its removal outside a change);
    - `guard-subresources.opsledger.io`: what carries no labels of the workload it reaches
      (scale; its ReplicaSets and Jobs; its Pods created, changed, deleted, evicted, exec'd or
      attached into, given debug containers; autoscalers), only from namespaces holding
      protected objects (a match condition the operator keeps up to date).
    """
    common = _common(settings)
    ca = base64.b64encode(ca_bundle).decode()
    by_group: dict[str, list[str]] = {}
    for plural, (group, _) in WORKLOADS.items():
        by_group.setdefault(group, []).append(plural)
    scalable = [f"{p}/scale" for p in ("deployments", "statefulsets", "replicasets")]

    def rule(group: str, version: str, resources: list[str], *operations: str) -> dict[str, Any]:
        return {
            "apiGroups": [group],
            "apiVersions": [version],
            "resources": resources,
            "operations": list(operations),
            "scope": "Namespaced",
        }

    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": _metadata(settings),
        "webhooks": [
            {
                "name": "guard.opsledger.io",
                "clientConfig": {"url": f"{base_url}/guard", "caBundle": ca},
                "rules": [
                    rule(group, "v1", sorted(plurals), "CREATE", "UPDATE", "DELETE")
                    for group, plurals in sorted(by_group.items())
                ],
                "objectSelector": {
                    "matchExpressions": [
                        {"key": PROTECTED_LABEL, "operator": "In", "values": ["true"]}
                    ]
                },
                "matchConditions": [NOT_THE_CONTROL_PLANE],
                **common,
            },
            {
                "name": admission.GUARD_SUBRESOURCES,
                "clientConfig": {"url": f"{base_url}/guard", "caBundle": ca},
                "rules": [
                    rule("apps", "v1", scalable, "UPDATE"),
                    # a protected workload's own ReplicaSets and Jobs, which carry no label
                    rule("apps", "v1", ["replicasets"], "CREATE", "UPDATE", "DELETE"),
                    rule("batch", "v1", ["jobs"], "CREATE", "UPDATE", "DELETE"),
                    rule("", "v1", ["pods"], "CREATE", "UPDATE", "DELETE"),
                    rule("", "v1", ["pods/attach", "pods/exec"], "CONNECT"),
                    rule("", "v1", ["pods/ephemeralcontainers"], "UPDATE"),
                    rule("", "v1", ["pods/eviction"], "CREATE"),
                    rule("autoscaling", "v2", ["horizontalpodautoscalers"], "CREATE", "UPDATE"),
                ],
                "matchConditions": [
                    NOT_THE_CONTROL_PLANE,
                    NOT_A_DRAIN,
                    admission.namespaces_condition(namespaces),
                ],
                **common,
            },
            {
                "name": "validate.opsledger.io",
                "clientConfig": {"url": f"{base_url}/validate", "caBundle": ca},
                "rules": [
                    rule("opsledger.io", "v1alpha1", sorted(SPEC_MODELS), "CREATE", "UPDATE"),
                    # A protecting item is removed only within a change.
                    rule("opsledger.io", "v1alpha1", ["configurationitems"], "DELETE"),
                    # Only the operator writes a Change's status.
                    rule("opsledger.io", "v1alpha1", ["changes/status"], "UPDATE"),
                ],
                **common,
            },
        ],
    }


def mutating_configuration(settings: Settings, base_url: str, ca_bundle: bytes) -> dict[str, Any]:
    """The MutatingWebhookConfiguration that records who creates a Change or an Incident."""
    ca = base64.b64encode(ca_bundle).decode()
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": _metadata(settings),
        "webhooks": [
            {
                "name": "requester.opsledger.io",
                "clientConfig": {"url": f"{base_url}/mutate", "caBundle": ca},
                "rules": [
                    {
                        "apiGroups": ["opsledger.io"],
                        "apiVersions": ["v1alpha1"],
                        "resources": ["changes", "incidents", "servicerequests"],
                        "operations": ["CREATE"],
                        "scope": "Namespaced",
                    }
                ],
                "reinvocationPolicy": "Never",
                **_common(settings),
            }
        ],
    }


MAX_MESSAGE = 4096  # what kubectl shows of a denial; the API server keeps its own limits


def _response(
    uid: str, allowed: bool, message: str = "", code: int = 403, patch: list[Any] | None = None
) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    if not allowed:
        response["status"] = {"code": code, "reason": "Forbidden", "message": message}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def parse_review(document: Any) -> tuple[str, Mapping[str, Any]]:
    """The request's uid and body, or BadReviewError saying what is missing."""
    if not isinstance(document, Mapping) or document.get("kind") != "AdmissionReview":
        raise BadReviewError("the body is not an AdmissionReview")
    request = document.get("request")
    if not isinstance(request, Mapping) or not request.get("uid"):
        raise BadReviewError("the AdmissionReview has no request.uid")
    return str(request["uid"]), request


class Webhook:
    """The two endpoints; the decisions are the admission service's."""

    def __init__(self, ctx: Context, operator: str | None) -> None:
        self.ctx = ctx
        self.operator = operator

    async def _answer(self, http: web.Request, decide: Decide) -> web.Response:
        try:
            uid, request = parse_review(await http.json())
        except (ValueError, BadReviewError) as exc:
            log.warning("rejected a malformed admission request from %s: %s", http.remote, exc)
            return web.json_response({"error": str(exc)}, status=400)
        try:
            allowed, message = await decide(self.ctx, self.operator, request)
        except Exception as exc:  # reading the facts failed: deny, and say why
            log.exception("admission check failed")
            allowed, message = False, f"OpsLedger could not check this request: {exc}"
        self.ctx.metrics.admissions.labels(
            http.path.strip("/"), "allowed" if allowed else "denied"
        ).inc()
        return web.json_response(_response(uid, allowed, message))

    async def guard(self, http: web.Request) -> web.Response:
        return await self._answer(http, service.guard)

    async def validate(self, http: web.Request) -> web.Response:
        return await self._answer(http, service.validate)

    async def mutate(self, http: web.Request) -> web.Response:
        """Allowed, with the patch that records who is asking (nothing is refused here: the
        validating webhook judges the result)."""
        try:
            uid, request = parse_review(await http.json())
        except (ValueError, BadReviewError) as exc:
            log.warning("rejected a malformed admission request from %s: %s", http.remote, exc)
            return web.json_response({"error": str(exc)}, status=400)
        try:
            patch = await service.mutate(self.ctx, self.operator, request)
        except Exception as exc:  # cannot record who asks: refuse rather than admit unnamed
            log.exception("admission mutation failed")
            message = f"OpsLedger could not record who is asking: {exc}"
            return web.json_response(_response(uid, False, message))
        self.ctx.metrics.admissions.labels("mutate", "allowed").inc()
        return web.json_response(_response(uid, True, patch=patch))


RELOAD_INTERVAL = 10.0  # seconds between looks at the certificate files


class ServingCertificate:
    """The webhook's TLS context, reloaded when its files change (cert-manager renews them in
    place; an expired certificate would otherwise stay in use until a restart).

    Loading a new chain into the same SSLContext serves it to every new connection.
    """

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.files = (cert_file, key_file)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._stamp = self._stamps()
        self.context.load_cert_chain(*self.files)

    def _stamps(self) -> tuple[int, ...]:
        return tuple(os.stat(f).st_mtime_ns for f in self.files)

    def reload_if_changed(self) -> bool:
        try:
            stamp = self._stamps()
            if stamp == self._stamp:
                return False
            self.context.load_cert_chain(*self.files)
        except (OSError, ssl.SSLError) as exc:  # half-written files: the next look retries
            log.warning("serving certificate not reloaded yet: %s", exc)
            return False
        self._stamp = stamp
        log.info("reloaded the webhook's serving certificate from %s", self.files[0])
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_INTERVAL)
            self.reload_if_changed()


async def serve(ctx: Context, stack: contextlib.AsyncExitStack) -> str | None:
    """Start the webhook (and, in the local environment, register it); `stack` stops it: the
    configuration is removed first, then the certificate watch, then the server. A failure
    raises (the start is tried again); None: nothing here refuses to start."""
    settings = ctx.settings
    assert settings.webhook_port is not None
    operator = await service.operator_identity(ctx)
    hook = Webhook(ctx, operator)
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/guard", hook.guard)
    app.router.add_post("/validate", hook.validate)
    app.router.add_post("/mutate", hook.mutate)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    assert settings.webhook_cert_file
    assert settings.webhook_key_file
    serving = ServingCertificate(settings.webhook_cert_file, settings.webhook_key_file)
    site = web.TCPSite(
        runner, settings.bind_address, settings.webhook_port, ssl_context=serving.context
    )
    await site.start()
    stack.push_async_callback(runner.cleanup)
    watch = asyncio.create_task(serving.watch(), name="webhook-certificate")
    stack.callback(watch.cancel)
    log.info(
        "admission webhook on https://%s:%d (the operator is %s)",
        settings.bind_address,
        settings.webhook_port,
        operator,
    )
    if settings.webhook_register_url:
        assert settings.webhook_ca_file
        url = settings.webhook_register_url.rstrip("/")
        ca = Path(settings.webhook_ca_file).read_bytes()
        # The subresource guard starts where protected objects already are, never "everywhere":
        # an operator killed before its first refresh must not block pods cluster-wide.
        namespaces = await guard_scope.labelled(ctx)
        for body in (
            mutating_configuration(settings, url, ca),
            webhook_configuration(settings, url, ca, namespaces),
        ):
            stack.push_async_callback(
                service.remove_configuration, ctx, body["kind"], settings.webhook_name
            )
            await service.put_configuration(ctx, body)
            log.info("registered %s %s", body["kind"], settings.webhook_name)
    return None
