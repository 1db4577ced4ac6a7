"""The monthly service review: `opsledger report --month` commits a report whose numbers are the
cluster's, with charts that are images; the operator writes last month's by itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsledger.devenv.environment import DevEnvironment
from opsledger.domain.report import previous_month
from tests.support import Kubectl, OperatorProcess, finish_permit, remote_text, shop, wait_for

NS = "review"
OBJECTS = f"""
apiVersion: opsledger.io/v1alpha1
kind: Incident
metadata: {{name: till-down, namespace: {NS}}}
spec: {{title: The tills are down, service: shop, impact: high, urgency: high}}
---
apiVersion: opsledger.io/v1alpha1
kind: Incident
metadata: {{name: receipts-late, namespace: {NS}}}
spec: {{title: Receipts print late, service: shop, impact: low, urgency: medium}}
---
apiVersion: opsledger.io/v1alpha1
kind: Change
metadata: {{name: swap-printer, namespace: {NS}}}
spec: {{type: emergency, summary: Swap the receipt printer, service: shop, targets: [web]}}
"""


@pytest.fixture(scope="module")
def reviewing(
    devenv: DevEnvironment, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """An operator with the monthly review on (the other modules' have it off)."""
    log = tmp_path_factory.mktemp("review") / "operator.log"
    proc = OperatorProcess(devenv, log).start(env={"OPSLEDGER_MONTHLY_REVIEW": "true"})
    yield proc
    proc.stop()


def _month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def _table(text: str, heading: str) -> list[list[str]]:
    """The body rows (cells) of the first table after `heading`."""
    rows = []
    for line in text.split(heading, 1)[1].splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]  # without the header and the separator


def test_the_report_counts_what_the_cluster_holds_and_its_charts_are_images(
    devenv: DevEnvironment, kubectl: Kubectl, reviewing: OperatorProcess, tmp_path: Path
) -> None:
    kubectl("apply", "-f", "-", input=shop(NS))
    kubectl("apply", "-f", "-", input=OBJECTS)
    finish_permit(kubectl, NS, "swap-printer")
    wait_for(
        lambda: all(
            i.get("status", {}).get("priority")
            for i in kubectl.json("get", "incidents", "-n", NS)["items"]
        ),
        what="the incidents prioritised",
    )

    month = _month()
    result = subprocess.run(
        [sys.executable, "-m", "opsledger.cli", "report", "--month", month],
        env={**os.environ, **devenv.env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"committed reports/test/{month}.md (")

    text = remote_text(devenv, f"reports/test/{month}.md")
    assert text is not None
    incidents = kubectl.json("get", "incidents", "-A")["items"]
    opened = Counter(
        i["status"]["priority"]
        for i in incidents
        if i.get("status", {}).get("openedAt", "").startswith(month)
    )
    reported = {row[0]: int(row[1]) for row in _table(text, "## Incidents")}
    assert reported == {p: opened.get(p, 0) for p in ("P1", "P2", "P3", "P4", "P5")}
    assert reported["P1"] >= 1

    changes = kubectl.json("get", "changes", "-A")["items"]
    completed = Counter(
        c["spec"]["type"]
        for c in changes
        if c.get("status", {}).get("phase") == "Completed"
        and c["status"]["transitions"][-1]["at"].startswith(month)
    )
    outcomes = {row[0]: int(row[1]) for row in _table(text, "## Changes")}  # Completed column
    assert outcomes == {t: completed.get(t, 0) for t in ("standard", "normal", "emergency")}
    assert outcomes["emergency"] >= 1

    for chart in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        svg = remote_text(devenv, f"reports/test/{chart}")
        assert svg is not None
        root = ET.fromstring(svg)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert float(root.attrib["width"].removesuffix("pt")) > 0
        assert root.iter("{http://www.w3.org/2000/svg}path")  # something is drawn


def test_the_operator_commits_last_months_review_by_itself(
    devenv: DevEnvironment, reviewing: OperatorProcess
) -> None:
    path = f"reports/test/{previous_month(datetime.now(UTC))}.md"

    text = wait_for(lambda: remote_text(devenv, path), timeout=60, what=f"{path} in the CMDB")
    assert text.startswith(f"# Service review {previous_month(datetime.now(UTC))} — test")


def test_a_wrong_month_is_refused_with_the_format(devenv: DevEnvironment) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "opsledger.cli", "report", "--month", "November"],
        env={**os.environ, **devenv.env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "is not a month such as 2026-11" in result.stderr
