"""Faults: generated hostile input at the running operator's doors.

Hypothesis generates malformed bodies, AdmissionReviews of OpsLedger's four kinds with hostile
specs (huge and control-character strings, bad cron, zones, durations and PromQL, wrong types)
and Alertmanager notifications with hostile labels. They go to the real operator's webhook
(HTTPS, as the API server calls it) and receiver. Every answer must be an answer: 400 with a
reason for what is not a request, a denial with a readable message for an invalid object, never
a 5xx, a crash or a hot loop; the operator keeps answering /healthz throughout. A sample of the
specs also goes through the real API server (`kubectl apply --dry-run=server`).
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsledger.devenv.environment import DevEnvironment
from tests.support import Kubectl, OperatorProcess, webhook_settings

NS = "fuzzed"
KINDS = {
    "changes": "Change",
    "servicelevels": "ServiceLevel",
    "incidents": "Incident",
    "configurationitems": "ConfigurationItem",
}
HOSTILE = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=20),
    st.sampled_from(
        [
            "",
            "\x00",
            "R R * * *",
            "* * * * * *",
            "0 0 31 2 *",
            "Mars/Olympus",
            "../../etc/passwd",
            "99999999h",
            "-1s",
            "x) or vector(1) or (y",
            "sum(rate(x[5m])) # )",
            "{{.window}}",
            "a" * 70_000,
            "🙂" * 1000,
            "${jndi:ldap://x}",
            "<script>alert(1)</script>",
            "'; DROP TABLE cmdb; --",
        ]
    ),
)
SCALAR = st.one_of(HOSTILE, st.integers(), st.floats(allow_nan=True), st.booleans(), st.none())
JSON = st.recursive(
    SCALAR,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(HOSTILE, children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "type", "summary", "service", "targets", "plan", "checks", "schedule", "template",
    "objectives", "maintenanceWindows", "freezes", "errorBudgetPolicy", "title", "impact",
    "urgency", "state", "class", "source", "protected", "monitoring", "relationships",
]  # fmt: skip
SPEC = st.dictionaries(st.sampled_from(FIELDS) | HOSTILE, JSON, max_size=6)


def _review(plural: str, spec: Any, operation: str) -> dict[str, Any]:
    obj = {
        "apiVersion": "opsledger.io/v1alpha1",
        "kind": KINDS[plural],
        "metadata": {"name": "fuzzed", "namespace": NS},
        "spec": spec,
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "fuzz-1",
            "kind": {"group": "opsledger.io", "version": "v1alpha1", "kind": KINDS[plural]},
            "resource": {"group": "opsledger.io", "version": "v1alpha1", "resource": plural},
            "namespace": NS,
            "name": "fuzzed",
            "operation": operation,
            "userInfo": {"username": "mallory", "groups": ["system:authenticated"]},
            "object": obj,
            "oldObject": obj if operation == "UPDATE" else None,
        },
    }


class Doors:
    """The running operator's webhook and receiver, called as the API server and Alertmanager do."""

    def __init__(self, devenv: DevEnvironment) -> None:
        env = devenv.env()
        self.webhook = f"https://127.0.0.1:{env['OPSLEDGER_WEBHOOK_PORT']}"
        self.tls = ssl.create_default_context(cafile=env["OPSLEDGER_WEBHOOK_CA_FILE"])
        self.receiver = f"http://127.0.0.1:{devenv.ports()['operator-receiver']}/alertmanager"
        self.token = devenv.receiver_token_file.read_text().strip()
        self.health = f"http://127.0.0.1:{devenv.ports()['operator-health']}/healthz"

    def post(self, url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        context = self.tls if url.startswith("https") else None
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                return int(response.status), json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def alive(self) -> bool:
        started = time.monotonic()
        with urllib.request.urlopen(self.health, timeout=5) as response:
            ok = response.status == 200
        return ok and time.monotonic() - started < 2


@pytest.fixture(scope="module")
def doors(
    devenv: DevEnvironment, kubectl: Kubectl, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Doors]:
    kubectl("create", "namespace", NS)
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    proc = OperatorProcess(devenv, log).start(env=webhook_settings(devenv))
    yield Doors(devenv)
    proc.stop()
    assert "Traceback" not in proc.output().split("Signal SIGTERM")[0] or _only_logged(proc)


def _only_logged(proc: OperatorProcess) -> bool:
    """Tracebacks the operator logged on purpose (a failed check it then denied) are fine; an
    unhandled one in aiohttp's server would read 'Error handling request'."""
    return "Error handling request" not in proc.output()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.one_of(JSON.map(json.dumps), st.binary(max_size=200).map(bytes.hex)))
def test_bodies_that_are_no_review_get_a_400_with_the_reason(doors: Doors, body: str) -> None:
    for path in ("/guard", "/validate", "/mutate"):
        status, answer = doors.post(doors.webhook + path, body.encode())
        assert status in (200, 400), (path, status, answer)
        if status == 400:
            assert "error" in json.loads(answer)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    plural=st.sampled_from(sorted(KINDS)),
    spec=SPEC | JSON,
    operation=st.sampled_from(["CREATE", "UPDATE"]),
)
def test_hostile_specs_are_answered_with_a_readable_denial(
    doors: Doors, plural: str, spec: Any, operation: str
) -> None:
    status, answer = doors.post(
        doors.webhook + "/validate", json.dumps(_review(plural, spec, operation)).encode()
    )
    assert status == 200, answer
    response = answer["response"]
    assert response["uid"] == "fuzz-1"
    if not response["allowed"]:
        message = response["status"]["message"]
        assert message
        assert len(message) <= 4096
        assert "could not check this request" not in message, message  # a crash, said politely


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    labels=st.dictionaries(HOSTILE, HOSTILE, max_size=5),
    annotations=st.dictionaries(HOSTILE, HOSTILE, max_size=3),
    starts=st.one_of(st.just("2026-12-01T10:00:00Z"), HOSTILE),
    status=st.sampled_from(["firing", "resolved", "weird"]),
    fingerprint=HOSTILE,
)
def test_hostile_notifications_never_get_a_5xx(
    doors: Doors,
    labels: dict[str, str],
    annotations: dict[str, str],
    *,
    starts: str,
    status: str,
    fingerprint: str,
) -> None:
    alert = {
        "status": status,
        "labels": {"alertname": "Fuzzed", **labels},
        "annotations": annotations,
        "startsAt": starts,
        "fingerprint": fingerprint,
    }
    body = json.dumps({"version": "4", "status": status, "alerts": [alert]}).encode()
    code, answer = doors.post(doors.receiver, body, {"Authorization": f"Bearer {doors.token}"})
    assert code in (200, 400), (code, answer)


def test_the_operator_still_answers_after_the_fuzzing(
    doors: Doors, kubectl: Kubectl, tmp_path: Path
) -> None:
    assert doors.alive()
    # And through the real API server: a few hostile manifests are refused, with a message.
    for spec in (
        {"service": "x" * 70_000},
        {"maintenanceWindows": [{"schedule": "R * * * *", "duration": "1h"}]},
    ):
        manifest = {
            "apiVersion": "opsledger.io/v1alpha1",
            "kind": "ServiceLevel",
            "metadata": {"name": "fuzzed", "namespace": NS},
            "spec": {"service": "shop", **spec},
        }
        result = kubectl.run(
            "apply", "--dry-run=server", "-f", "-", input=json.dumps(manifest), check=False
        )
        assert result.returncode != 0
        assert "spec." in result.stderr, result.stderr
