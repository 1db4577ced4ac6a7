"""The validating admission webhook, served by the operator over TLS.

Two endpoints, each answering the API server's AdmissionReview:

- `/guard` — protected workloads (Deployments, StatefulSets, DaemonSets and their `scale`
  subresource): the facts are read from the API server at the moment of the request (items,
  changes in progress, the service's windows), and `domain.admission` decides.
- `/validate` — OpsLedger's own kinds, beyond what the CRD schema can say: the spec through its
  model (a cron expression, a time zone), and a Change's targets must exist.

In the local environment the operator registers the ValidatingWebhookConfiguration for its own
endpoint at start and removes it when it stops (as Kopf's managed admission does); in a cluster
the Helm chart ships the configuration. A request the handler cannot parse gets HTTP 400 and a
log line; a failure reading the facts denies with the reason (the failure policy then no longer
matters: the API server received an answer).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kopf
from aiohttp import web
from pydantic import BaseModel, ValidationError

from opsledger.domain import admission
from opsledger.domain.admission import ActiveChange, Facts, Guardian, Review
from opsledger.domain.observe import api_group
from opsledger.domain.validation import describe
from opsledger.domain.windows import decide
from opsledger.handlers.common import context
from opsledger.models.change import ChangePhase, ChangeSpec
from opsledger.models.configitem import ConfigurationItemSpec
from opsledger.models.incident import IncidentSpec
from opsledger.models.servicelevel import ServiceLevelSpec
from opsledger.models.settings import Settings
from opsledger.services.context import Context

log = logging.getLogger("opsledger.admission")

WORKLOADS = {"deployments": "Deployment", "statefulsets": "StatefulSet", "daemonsets": "DaemonSet"}
SPEC_MODELS: dict[str, type[BaseModel]] = {
    "changes": ChangeSpec,
    "servicelevels": ServiceLevelSpec,
    "incidents": IncidentSpec,
    "configurationitems": ConfigurationItemSpec,
}


class BadReviewError(ValueError):
    """The request body is not an AdmissionReview the webhook can answer."""


def webhook_configuration(settings: Settings, base_url: str, ca_bundle: bytes) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration pointing the API server at `base_url`."""
    common = {
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
    ca = base64.b64encode(ca_bundle).decode()
    workloads = [*WORKLOADS, "deployments/scale", "statefulsets/scale"]
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {
            "name": settings.webhook_name,
            "labels": {"app.kubernetes.io/managed-by": "opsledger"},
        },
        "webhooks": [
            {
                "name": "guard.opsledger.io",
                "clientConfig": {"url": f"{base_url}/guard", "caBundle": ca},
                "rules": [
                    {
                        "apiGroups": ["apps"],
                        "apiVersions": ["v1"],
                        "resources": workloads,
                        "operations": ["CREATE", "UPDATE", "DELETE"],
                        "scope": "Namespaced",
                    }
                ],
                **common,
            },
            {
                "name": "validate.opsledger.io",
                "clientConfig": {"url": f"{base_url}/validate", "caBundle": ca},
                "rules": [
                    {
                        "apiGroups": ["opsledger.io"],
                        "apiVersions": ["v1alpha1"],
                        "resources": sorted(SPEC_MODELS),
                        "operations": ["CREATE", "UPDATE"],
                        "scope": "Namespaced",
                    }
                ],
                **common,
            },
        ],
    }


def _response(uid: str, allowed: bool, message: str = "", code: int = 403) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        response["status"] = {"code": code, "reason": "Forbidden", "message": message}
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
    """The two endpoints, reading facts through the Context's clients."""

    def __init__(self, ctx: Context, operator: str | None) -> None:
        self.ctx = ctx
        self.operator = operator

    async def _answer(self, http: web.Request, decide_fn: Any) -> web.Response:
        try:
            uid, request = parse_review(await http.json())
        except (ValueError, BadReviewError) as exc:
            log.warning("rejected a malformed admission request from %s: %s", http.remote, exc)
            return web.json_response({"error": str(exc)}, status=400)
        try:
            allowed, message = await decide_fn(request)
        except Exception as exc:  # reading the facts failed: deny, and say why
            log.exception("admission check failed")
            allowed, message = False, f"OpsLedger could not check this request: {exc}"
        self.ctx.metrics.admissions.labels(
            http.path.strip("/"), "allowed" if allowed else "denied"
        ).inc()
        return web.json_response(_response(uid, allowed, message))

    async def guard(self, http: web.Request) -> web.Response:
        return await self._answer(http, self._guard)

    async def validate(self, http: web.Request) -> web.Response:
        return await self._answer(http, self._validate)

    async def _guard(self, request: Mapping[str, Any]) -> tuple[bool, str]:
        resource = request.get("resource") or {}
        plural = str(resource.get("resource", ""))
        kind = WORKLOADS.get(plural)
        if kind is None:
            return True, f"{plural} is not guarded"
        api_version = f"{resource.get('group')}/{resource.get('version')}"
        review = Review(
            operation=str(request.get("operation", "")),
            username=str((request.get("userInfo") or {}).get("username", "")),
            namespace=str(request.get("namespace") or ""),
            kind=kind,
            name=str(request.get("name") or ""),
            subresource=request.get("subResource") or None,
            old=request.get("oldObject"),
            new=request.get("object"),
        )
        if admission.exempt(review, self.operator) is not None:
            return True, ""
        facts, parent, levels = await asyncio.to_thread(self._facts, review, api_version)
        if parent is not None:
            review = Review(**{**review.__dict__, "parent": parent})
        verdict = admission.judge(review, facts)
        if verdict.allowed:
            return True, verdict.message
        guardian = verdict.guardian
        window, reason = None, None
        level = levels.get(guardian.service) if guardian and guardian.service else None
        if level is not None:
            try:
                sl = ServiceLevelSpec.model_validate(level)
            except ValidationError:
                sl = None
            if sl is not None:
                decision = decide(
                    self.ctx.clock(), windows=sl.maintenance_windows, freezes=sl.freezes
                )
                window, reason = decision.next, decision.reason
        return False, admission.denial(review, guardian, window=window, window_reason=reason)

    def _facts(
        self, review: Review, api_version: str
    ) -> tuple[Facts, dict[str, Any] | None, dict[str, Any]]:
        """Items following the object, changes in progress, the namespace's service levels."""
        kube = self.ctx.kube
        assert kube is not None
        parent = None
        if review.subresource is not None:
            parent = kube.get(api_version, review.kind, review.name, review.namespace)
        guardians = []
        for item in kube.list_namespaced_custom("configurationitems", review.namespace):
            spec = item.get("spec") or {}
            source = spec.get("source") or {}
            if (
                source.get("kind") == review.kind
                and source.get("name") == review.name
                and api_group(str(source.get("apiVersion", ""))) == api_group(api_version)
            ):
                guardians.append(
                    Guardian(
                        name=str(item["metadata"]["name"]),
                        protected=bool(spec.get("protected")),
                        service=spec.get("service"),
                        criticality=spec.get("criticality"),
                    )
                )
        changes = [
            ActiveChange(
                str(c["metadata"]["name"]), tuple((c.get("spec") or {}).get("targets") or ())
            )
            for c in kube.list_namespaced_custom("changes", review.namespace)
            if (c.get("status") or {}).get("phase") == ChangePhase.IN_PROGRESS
        ]
        levels = {}
        if any(g.service for g in guardians):
            for level in kube.list_namespaced_custom("servicelevels", review.namespace):
                spec = level.get("spec") or {}
                if spec.get("service"):
                    levels[str(spec["service"])] = spec
        facts = Facts(operator=self.operator, guardians=guardians, changes=changes)
        return facts, parent, levels

    async def _validate(self, request: Mapping[str, Any]) -> tuple[bool, str]:
        plural = str((request.get("resource") or {}).get("resource", ""))
        model = SPEC_MODELS.get(plural)
        new = request.get("object") or {}
        old = request.get("oldObject") or {}
        username = str((request.get("userInfo") or {}).get("username", ""))
        if model is None or username == self.operator:
            return True, ""
        if request.get("operation") == "UPDATE" and old.get("spec") == new.get("spec"):
            return True, "the spec is unchanged"  # metadata only: finalizers, annotations
        what = f"{new.get('kind', plural)} {request.get('namespace')}/{request.get('name')}"
        try:
            spec = model.model_validate(dict(new.get("spec") or {}))
        except ValidationError as exc:
            return (
                False,
                f"{what} is invalid: {describe(exc)}. Fix the manifest and apply it again.",
            )
        if isinstance(spec, ChangeSpec) and spec.targets:
            old_targets = set((old.get("spec") or {}).get("targets") or ())
            if set(spec.targets) != old_targets:
                missing = await asyncio.to_thread(
                    self._missing_items, str(request.get("namespace")), spec.targets
                )
                if missing:
                    return False, (
                        f"{what} is invalid: spec.targets names ConfigurationItems that do not "
                        f"exist in namespace {request.get('namespace')}: {', '.join(missing)}. "
                        "Create them first (kubectl get ci lists the existing ones) or fix the "
                        "names."
                    )
        return True, ""

    def _missing_items(self, namespace: str, targets: list[str]) -> list[str]:
        assert self.ctx.kube is not None
        names = {
            str(i["metadata"]["name"])
            for i in self.ctx.kube.list_namespaced_custom("configurationitems", namespace)
        }
        return [t for t in targets if t not in names]


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


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Serve the webhook while the operator runs (when a port is configured)."""
    if settings.webhook_port is None:
        return
    runners: list[web.AppRunner] = []
    tasks: list[asyncio.Task[None]] = []

    @kopf.on.startup(registry=registry, id="admission-webhook")
    async def serve(memo: kopf.Memo, **_: Any) -> None:
        ctx = context(memo)
        assert ctx.kube is not None
        kube = ctx.kube
        operator = settings.operator_username or await asyncio.to_thread(kube.whoami)
        hook = Webhook(ctx, operator)
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/guard", hook.guard)
        app.router.add_post("/validate", hook.validate)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        assert settings.webhook_cert_file
        assert settings.webhook_key_file
        serving = ServingCertificate(settings.webhook_cert_file, settings.webhook_key_file)
        site = web.TCPSite(
            runner, settings.bind_address, settings.webhook_port, ssl_context=serving.context
        )
        await site.start()
        runners.append(runner)
        tasks.append(asyncio.create_task(serving.watch(), name="webhook-certificate"))
        log.info(
            "admission webhook on https://%s:%d (the operator is %s)",
            settings.bind_address,
            settings.webhook_port,
            operator,
        )
        if settings.webhook_register_url:
            assert settings.webhook_ca_file
            body = webhook_configuration(
                settings,
                settings.webhook_register_url.rstrip("/"),
                Path(settings.webhook_ca_file).read_bytes(),
            )
            await asyncio.to_thread(kube.put_validating_webhook, body)
            log.info("registered ValidatingWebhookConfiguration %s", settings.webhook_name)

    @kopf.on.cleanup(registry=registry, id="admission-webhook-stop")
    async def stop(memo: kopf.Memo, **_: Any) -> None:
        ctx = context(memo)
        if settings.webhook_register_url and ctx.kube is not None:
            await asyncio.to_thread(ctx.kube.delete_validating_webhook, settings.webhook_name)
        for task in tasks:
            task.cancel()
        for runner in runners:
            await runner.cleanup()
