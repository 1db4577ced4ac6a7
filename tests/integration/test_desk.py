"""The service desk in a real headless Chromium (Debian's, driven by Playwright), against the
real API server and operator: signing in through the authenticating proxy's headers, reading
the services and incidents, reporting an issue that the API server records as made by the
person, and being refused, readably, where RBAC says no, where the form was not the desk's,
and where the headers claim what a proxy never would.

The proxy's part (signing people in, adding X-Forwarded-* to each request) is played by the
browser context's extra headers; the desk believes them because they come from 127.0.0.1, the
allow-listed proxy address, and the test shows it believes nothing else.

Set OPSLEDGER_DESK_SCREENSHOTS to a folder to keep the pages' screenshots (the README's).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from opsledger.devenv.environment import DevEnvironment
from opsledger.devenv.processes import free_ports, stop_child
from tests.support import (
    SELF_MEASURED_OBJECTIVE,
    Kubectl,
    OperatorProcess,
    push_to_cmdb,
    shop,
    wait_for,
    wait_for_webhooks,
    webhook_settings,
)

NS = "desk"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
JANE = {
    "X-Forwarded-User": "jane",
    "X-Forwarded-Email": "jane@example.com",
    "X-Forwarded-Groups": "team-shop",
}
BOB = {"X-Forwarded-User": "bob", "X-Forwarded-Email": "bob@example.com"}
SETUP = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {{name: checkout, namespace: {NS}}}
spec:
  service: checkout
{SELF_MEASURED_OBJECTIVE}  incidentTargets:
  - {{priority: P1, respond: 15m, resolve: 4h}}
---
# A ServiceLevel with windows and no objectives (as many are): listed, with nothing to measure.
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {{name: batch, namespace: {NS}}}
spec:
  service: batch
  maintenanceWindows: [{{schedule: "0 2 * * *", duration: 1h}}]
---
# Jane's team may report incidents and request services in the namespace; Bob may only look.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: reporters, namespace: {NS}}}
rules:
- apiGroups: [opsledger.io]
  resources: [incidents, servicerequests]
  verbs: [get, list, watch, create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: team-shop-reports, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: reporters}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: Group, name: team-shop}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: bob-views, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}}]
"""


@pytest.fixture(scope="module")
def operator(
    devenv: DevEnvironment, crds: None, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator with its webhooks: the mutating one records who reports an Incident."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    proc = OperatorProcess(devenv, log).start(
        env={**webhook_settings(devenv), "OPSLEDGER_SLO_INTERVAL": "2"}
    )
    wait_for_webhooks(kubectl)
    yield proc
    proc.stop()


@contextmanager
def _desk(devenv: DevEnvironment, log: Path, **env: str) -> Iterator[str]:
    """`opsledger desk` on a free loopback port, behind the allow-listed proxy 127.0.0.1."""
    [port] = free_ports(1)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "opsledger", "desk", "--bind-address", "127.0.0.1",
             "--port", str(port), "--trusted-proxy", "127.0.0.1/32"],
            env={**os.environ, "OPSLEDGER_DESK_KUBECONFIG": str(devenv.kubeconfig), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(f"{url}/healthz")[1] == "ok", timeout=60, what=f"the desk ({log})")
        yield url
    finally:
        stop_child(proc)


@pytest.fixture(scope="module")
def desk_url(
    devenv: DevEnvironment,
    kubectl: Kubectl,
    operator: OperatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    kubectl("apply", "-f", "-", input=SETUP)
    cmdb = {
        "OPSLEDGER_DESK_CMDB_URL": str(devenv.cmdb_remote),
        "OPSLEDGER_CLUSTER": devenv.env()["OPSLEDGER_CLUSTER"],
        "OPSLEDGER_DESK_PROMETHEUS_URL": devenv.env()["OPSLEDGER_PROMETHEUS_URL"],
    }
    with _desk(devenv, tmp_path_factory.mktemp("desk") / "desk.log", **cmdb) as url:
        yield url


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _post(url: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()


def _shot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("OPSLEDGER_DESK_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


def _incidents(kubectl: Kubectl) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = kubectl.json("get", "incidents", "-n", NS)["items"]
    return found


def test_nobody_signed_in_reads_nothing_and_headers_from_elsewhere_count_for_nothing(
    desk_url: str, browser: Any, tmp_path: Path
) -> None:
    page = browser.new_page()
    response = page.goto(desk_url + "/")
    assert response.status == 401
    assert "Sign in first" in page.content()
    _shot(page, tmp_path, "desk-sign-in")
    page.close()
    # Headers a proxy would never pass on: Kubernetes' own identities.
    status, text = _get(desk_url + "/", {**JANE, "X-Forwarded-Groups": "system:masters"})
    assert status == 403
    assert "system: group" in text


def test_jane_reports_an_issue_that_the_api_server_records_as_hers(
    desk_url: str, browser: Any, kubectl: Kubectl, tmp_path: Path
) -> None:
    context = browser.new_context(extra_http_headers=JANE, viewport={"width": 1100, "height": 700})
    page = context.new_page()

    def measured() -> bool:
        level = kubectl.json("get", "servicelevel", "checkout", "-n", NS)
        objectives = level.get("status", {}).get("objectives") or [{}]
        if "errorBudgetRemaining" not in objectives[0]:
            raise AssertionError(level.get("status"))  # shown if it never comes
        return True

    def shown() -> bool:  # the desk's cache follows a watch: moments behind the API server
        page.goto(desk_url + "/")
        return "not measured" not in page.content()

    wait_for(measured, what="the objective measured")
    wait_for(shown, timeout=10, what="the measured budget on the Services page")
    assert "Signed in as jane@example.com" in page.content()
    page.wait_for_selector("text=checkout")
    assert "no objectives" in page.content()  # batch
    _shot(page, tmp_path, "desk-services")

    page.click("text=Report an issue")
    page.fill("#title", "Checkout times out at payment")
    page.select_option("#service", f"{NS}/checkout")
    page.select_option("#impact", "high")
    page.select_option("#urgency", "high")
    page.fill("#description", "Since 14:00 about one payment in ten times out.")
    _shot(page, tmp_path, "desk-report")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Reported")
    assert "Checkout times out at payment" in page.content()

    [incident] = [i for i in _incidents(kubectl) if i["spec"]["title"].startswith("Checkout")]
    assert incident["spec"]["service"] == "checkout"
    assert (incident["spec"]["impact"], incident["spec"]["urgency"]) == ("high", "high")
    assert incident["spec"]["origin"] == {
        "type": "manual",
        "reference": "service desk: jane@example.com",
    }
    # Made as Jane, not as the desk: the API server authenticated the write as her (the
    # webhook recorded what it said), and Bob, below, is refused the same write by RBAC.
    requester = incident["spec"]["requester"]
    assert requester["username"] == "jane"
    assert "team-shop" in requester["groups"]
    wait_for(
        lambda: (
            kubectl.json("get", "incident", incident["metadata"]["name"], "-n", NS)
            .get("status", {})
            .get("priority")
            == "P1"
        ),
        what="the operator's priority",
    )
    page.reload()
    assert "P1" in page.content()
    assert "Reported by</dt><dd>jane" in page.content()
    assert "Respond by" in page.content()  # the ServiceLevel's P1 target
    _shot(page, tmp_path, "desk-incident")

    # The service's own page: its objective's budget over the window as Prometheus recorded
    # the operator's gauge, the window and freezes, its open incidents.
    def charted() -> bool:
        page.goto(f"{desk_url}/services/{NS}/checkout")
        return page.locator("svg.burn-down circle").count() == 1

    wait_for(charted, timeout=60, what="the checkout objective's burn-down")
    assert "error budget left" in page.inner_text("section.objective")
    assert "Checkout times out at payment" in page.content()  # its open P1
    assert page.inner_text("dd.freezes") == "none coming"
    assert "may start" in page.inner_text("dd.window")  # no maintenance windows: any time
    _shot(page, tmp_path, "desk-service")
    page.goto(f"{desk_url}/services/{NS}/batch")
    window = page.inner_text("dd.window")  # a nightly hour: held, but for that hour
    assert "maintenance window" in window or window.startswith("held: outside"), window
    assert page.inner_text("dd.next-window").endswith("Z")  # the window it waits for or is in

    page.goto(desk_url + "/incidents?priority=P1&state=open")
    assert "Checkout times out at payment" in page.content()
    _shot(page, tmp_path, "desk-incidents")
    context.close()


def test_the_status_page_shows_the_reported_outage_in_statuspages_shape(
    desk_url: str, browser: Any, tmp_path: Path
) -> None:
    """After Jane's P1 report: the checkout component is a major outage, and the page says so
    (to those signed in: the status page is not public unless configured)."""
    status, text = _get(desk_url + "/api/v2/summary.json", JANE)
    assert status == 200
    page = json.loads(text)
    [checkout] = [c for c in page["components"] if c["name"] == "checkout"]
    assert checkout["status"] == "major_outage"
    assert page["status"]["indicator"] == "critical"
    [incident] = [i for i in page["incidents"] if i["name"] == "Checkout times out at payment"]
    assert (incident["status"], incident["impact"]) == ("investigating", "critical")
    assert "one payment in ten" not in text  # the description stays inside
    assert _get(desk_url + "/api/v2/summary.json")[0] == 401
    context = browser.new_context(extra_http_headers=JANE, viewport={"width": 1100, "height": 700})
    view = context.new_page()
    view.goto(desk_url + "/status")
    assert "Major System Outage" in view.content()
    _shot(view, tmp_path, "desk-status")
    context.close()


def test_the_calendar_shows_a_freeze_and_the_weekly_window(
    desk_url: str, browser: Any, kubectl: Kubectl, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(days=2)
    patch = {
        "spec": {
            "maintenanceWindows": [{"schedule": "0 22 * * 6", "duration": "4h"}],
            "freezes": [
                {
                    "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "reason": "Black Friday trading",
                }
            ],
        }
    }
    kubectl("patch", "servicelevel", "checkout", "-n", NS, "--type=merge", "-p", json.dumps(patch))
    context = browser.new_context(extra_http_headers=JANE, viewport={"width": 1280, "height": 800})
    page = context.new_page()

    def shown() -> bool:  # the cache follows the watch
        # one service: in the whole suite other modules' services fill the week (a window a
        # minute), and a full-page screenshot of them all outlasts Playwright's timeout
        page.goto(desk_url + "/calendar?view=week&service=checkout")
        return "Black Friday trading" in page.content()

    wait_for(shown, timeout=10, what="the freeze on the calendar")
    today = page.locator("section.day.today")
    assert "freeze of checkout: Black Friday trading" in today.inner_text()
    assert "maintenance window of checkout" in page.content()  # Saturday 22:00
    _shot(page, tmp_path, "desk-calendar")
    page.goto(desk_url + "/calendar?view=month&service=nobody")
    assert "Black Friday trading" not in page.content()  # filtered to another service
    assert page.locator("section.day").count() in (28, 35, 42)
    context.close()


def test_bob_is_refused_in_the_api_servers_words_and_nothing_is_created(
    desk_url: str, browser: Any, kubectl: Kubectl, tmp_path: Path
) -> None:
    before = len(_incidents(kubectl))
    context = browser.new_context(extra_http_headers=BOB, viewport={"width": 1100, "height": 700})
    page = context.new_page()
    page.goto(desk_url + "/report")
    page.fill("#title", "Search is slow")
    page.click("button[type=submit]")
    alert = page.wait_for_selector("[role=alert]")
    text = alert.inner_text()
    assert "Kubernetes refused" in text
    assert 'User "bob" cannot create resource "incidents"' in text
    assert page.input_value("#title") == "Search is slow"  # what Bob typed is kept
    _shot(page, tmp_path, "desk-refused")
    context.close()
    assert len(_incidents(kubectl)) == before


def test_a_form_the_desk_did_not_issue_to_the_person_is_refused(
    desk_url: str, kubectl: Kubectl
) -> None:
    """Another site making Jane's browser post a report: no token, or Bob's token."""
    form = {"title": "Forged", "service_key": f"{NS}/checkout", "impact": "low", "urgency": "low"}
    before = len(_incidents(kubectl))
    status, text = _post(desk_url + "/report", form, JANE)
    assert status == 403
    assert "The form has expired" in text
    _, page = _get(desk_url + "/report", BOB)
    bobs = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    status, _ = _post(desk_url + "/report", {**form, "csrf": bobs}, JANE)
    assert status == 403
    assert len(_incidents(kubectl)) == before


def test_nobody_can_report_in_someone_elses_name(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    """Jane creates an Incident with kubectl naming Alice as its requester: it is recorded as
    hers. Afterwards nobody, not even a cluster admin, can change who reported it."""
    manifest = f"""
apiVersion: opsledger.io/v1alpha1
kind: Incident
metadata: {{name: forged-reporter, namespace: {NS}}}
spec:
  title: Payments fail
  impact: low
  urgency: low
  requester: {{username: alice, groups: [sre]}}
"""
    kubectl("apply", "-f", "-", "--as=jane", "--as-group=team-shop", input=manifest)
    recorded = kubectl.json("get", "incident", "forged-reporter", "-n", NS)["spec"]["requester"]
    assert recorded["username"] == "jane"
    assert "sre" not in recorded["groups"]
    changed = kubectl.run(
        "patch", "incident", "forged-reporter", "-n", NS, "--type=merge",
        "-p", '{"spec":{"requester":{"username":"alice","groups":["sre"]}}}',
        check=False,
    )  # fmt: skip
    assert changed.returncode != 0
    assert "spec.requester is who the API server says reported the Incident" in changed.stderr


def test_a_kubernetes_token_signs_in_as_its_owner_and_a_bad_one_is_nobody(
    desk_url: str, kubectl: Kubectl
) -> None:
    """A service account's token (what a script or a person with a cluster token sends):
    the API server's TokenReview says whose it is, the report is made as it, and the webhook
    records it as the requester. A token the API server does not accept signs in nobody, and
    proxy headers do not help from behind a bad token."""
    kubectl("create", "serviceaccount", "reporter", "-n", NS)
    kubectl(
        "create", "rolebinding", "reporter-reports", "-n", NS, "--role=reporters",
        f"--serviceaccount={NS}:reporter",
    )  # fmt: skip
    token = kubectl("create", "token", "reporter", "-n", NS).strip()
    signed = {"Authorization": f"Bearer {token}"}
    status, page = _get(desk_url + "/report", signed)
    assert status == 200
    assert f"Signed in as system:serviceaccount:{NS}:reporter" in page
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    form = {
        "csrf": csrf,
        "title": "Nightly export failed",
        "service_key": f"{NS}/checkout",
        "impact": "low",
        "urgency": "low",
    }
    status, _ = _post(desk_url + "/report", form, signed)
    assert status == 200  # after the redirect to the incident
    [made] = [i for i in _incidents(kubectl) if i["spec"]["title"] == "Nightly export failed"]
    assert made["spec"]["requester"]["username"] == f"system:serviceaccount:{NS}:reporter"

    status, page = _get(desk_url + "/", {"Authorization": "Bearer not-a-token", **JANE})
    assert status == 401
    assert "did not accept your bearer token" in page


def test_a_public_status_page_is_read_by_anyone_and_only_it(
    devenv: DevEnvironment, desk_url: str, tmp_path: Path
) -> None:
    """With OPSLEDGER_DESK_PUBLIC_STATUS the status page and summary.json need no sign-in;
    every other page still does."""
    with _desk(devenv, tmp_path / "public.log", OPSLEDGER_DESK_PUBLIC_STATUS="true") as url:
        wait_for(
            lambda: "checkout" in _get(url + "/api/v2/summary.json")[1],
            timeout=10,
            what="the public summary",
        )
        status, text = _get(url + "/api/v2/summary.json")
        assert status == 200
        assert json.loads(text)["page"]["name"] == "OpsLedger"
        assert _get(url + "/status")[0] == 200
        assert _get(url + "/incidents")[0] == 401
        assert _get(url + "/")[0] == 401


SCALE_ITEM = """
title: More replicas for the shop's web tier
description: Scale web within what the tier is sized for.
service: shop
parameters:
- {name: replicas, title: How many pods, type: integer, min: 1, max: 6}
fulfilment:
  template: scale-web
  change:
    summary: "Scale web to {{ replicas }}"
    targets: [web]
    plan:
    - target: {apiVersion: apps/v1, kind: Deployment, name: web}
      patch: {spec: {replicas: "{{ replicas }}"}}
"""
SCALE_TEMPLATE = """
summary: Scale the shop's web tier
risk: low
targets: {services: [shop], names: [web]}
plan: {kinds: [Deployment], allow: [{path: /spec/replicas, min: 1, max: 6}]}
"""


def test_jane_requests_a_catalog_item_and_watches_its_standard_change_complete(
    desk_url: str,
    devenv: DevEnvironment,
    browser: Any,
    kubectl: Kubectl,
    tmp_path: Path,
) -> None:
    """The catalog's form is made from the item's parameter types; a value out of bounds is
    refused by the form; the request is made as Jane, its standard change runs in the shop's
    window and completes, and the page says Fulfilled. Bob, who may only look, is refused."""
    kubectl("apply", "-f", "-", input=shop(NS, replicas=1))
    push_to_cmdb(
        devenv,
        tmp_path / "cmdb",
        {"catalog/scale-web.yaml": SCALE_ITEM, "standard-changes/scale-web.yaml": SCALE_TEMPLATE},
        "Catalog: scaling the shop's web tier",
    )
    context = browser.new_context(extra_http_headers=JANE, viewport={"width": 1100, "height": 700})
    page = context.new_page()

    def offered() -> bool:
        page.goto(desk_url + "/requests")
        return f"/requests/new/{NS}/shop/scale-web" in page.content()

    wait_for(offered, timeout=60, what="the catalog item on the Requests page")
    _shot(page, tmp_path, "desk-catalog")
    page.click(f"a[href='/requests/new/{NS}/shop/scale-web']")  # other suites' shops too
    assert page.get_attribute("#p_replicas", "type") == "number"
    assert page.get_attribute("#p_replicas", "max") == "6"
    page.fill("#p_replicas", "3")
    page.fill("#justification", "The sale starts on Friday.")
    _shot(page, tmp_path, "desk-request-form")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Requested")
    name = page.url.rsplit("/", 1)[-1].split("?")[0]

    def fulfilled() -> bool:
        page.reload()
        phase = page.inner_text("dd.phase")
        if phase in ("Rejected", "Failed"):
            raise AssertionError(page.content())
        return phase == "Fulfilled"

    wait_for(fulfilled, timeout=120, what="the request Fulfilled on its page")
    assert "Requested by</dt><dd>jane" in page.content()
    _shot(page, tmp_path, "desk-request")
    request = kubectl.json("get", "servicerequest", name, "-n", NS)
    assert request["spec"]["requester"]["username"] == "jane"
    assert request["spec"]["parameters"] == {"replicas": 3}
    change = kubectl.json("get", "change", request["status"]["change"], "-n", NS)
    assert (change["spec"]["type"], change["status"]["phase"]) == ("standard", "Completed")
    assert kubectl.json("get", "deployment", "web", "-n", NS)["spec"]["replicas"] == 3
    context.close()

    before = len(kubectl.json("get", "servicerequests", "-n", NS)["items"])
    context = browser.new_context(extra_http_headers=BOB, viewport={"width": 1100, "height": 700})
    page = context.new_page()
    page.goto(desk_url + "/requests")
    page.click(f"a[href='/requests/new/{NS}/shop/scale-web']")  # other suites' shops too
    page.fill("#p_replicas", "2")
    page.click("button[type=submit]")
    text = page.wait_for_selector("[role=alert]").inner_text()
    assert 'User "bob" cannot create resource "servicerequests"' in text
    context.close()
    assert len(kubectl.json("get", "servicerequests", "-n", NS)["items"]) == before


ITEMS = f"""
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: orders-db, namespace: {NS}}}
spec: {{service: shop, class: Database, owner: team-data, criticality: high}}
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: storefront, namespace: {NS}}}
spec:
  service: shop
  class: Application
  relationships: [{{type: dependsOn, target: web}}]
"""


def test_the_changes_and_cmdb_pages_show_approval_plan_impact_and_history(
    desk_url: str, browser: Any, kubectl: Kubectl, tmp_path: Path
) -> None:
    """After Jane's request (above): the Changes page lists its standard change, whose page says
    how it was approved and what its plan patched; the CMDB search finds the shop's items, and
    web's page draws what it depends on and what depends on it, with its record's git history."""
    kubectl("apply", "-f", "-", input=ITEMS)
    kubectl(
        "patch", "ci", "web", "-n", NS, "--type=merge",
        "-p", '{"spec": {"relationships": [{"type": "dependsOn", "target": "orders-db"}]}}',
    )  # fmt: skip
    context = browser.new_context(extra_http_headers=JANE, viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.goto(desk_url + "/changes?phase=Completed&service=shop")
    _shot(page, tmp_path, "desk-changes")
    page.click(f"a[href^='/changes/{NS}/req-scale-web-']")
    assert page.inner_text("dd.phase") == "Completed"
    assert "fulfilling request scale-web-" in page.inner_text("main")  # the request it is for
    approval = page.inner_text("dd.approval")
    assert "approved by standard-change template scale-web (by Dana Manager" in approval
    plan = page.inner_text("table")
    assert "Deployment web" in plan
    assert '"replicas":3' in plan.replace(" ", "")
    _shot(page, tmp_path, "desk-change")

    def found() -> bool:
        page.goto(f"{desk_url}/cmdb?q={NS}+shop")
        return "storefront" in page.content() and "orders-db" in page.content()

    wait_for(found, what="the shop's items in the CMDB search")
    _shot(page, tmp_path, "desk-cmdb")
    page.goto(desk_url + "/cmdb?q=team-data")
    assert "orders-db" in page.content()
    assert "storefront" not in page.content()

    def drawn() -> bool:
        page.goto(f"{desk_url}/cmdb/{NS}/web")
        labels = page.locator("svg.impact g.node text").all_text_contents()
        return {"web", "orders-db", "storefront"} <= set(labels)

    wait_for(drawn, what="web's impact picture with both neighbours")
    centre = page.locator("svg.impact g.centre text").text_content()
    assert centre == "web"
    boxes = {
        t: float(page.locator("svg.impact g.node", has_text=t).locator("rect").get_attribute("x"))
        for t in ("orders-db", "web", "storefront")
    }
    assert boxes["orders-db"] < boxes["web"] < boxes["storefront"]  # dependency, item, dependent
    assert page.locator("svg.impact line").count() == 2

    def history() -> bool:
        page.goto(f"{desk_url}/cmdb/{NS}/web")
        return page.locator("table.history tbody tr").count() >= 1

    wait_for(history, timeout=60, what="web's record history from git")
    assert f"clusters/test/{NS}/configurationitems/web.yaml" in page.content()
    _shot(page, tmp_path, "desk-item")
    context.close()
