"""`opsledger slo rules`: the objectives as Prometheus rules, checked and run by Prometheus's own
rule engine (`promtool check rules` and `promtool test rules`) over generated request series.

A fast burn pages, a slow burn opens a ticket and no page, a healthy service fires nothing,
and the recorded ratios are the error ratios the series imply.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsledger.devenv.paths import Toolbox
from tests.support import availability_slo, opsledger

SHOP = availability_slo()
SLO_LABELS = {
    "namespace": "shop",
    "servicelevel": "shop",
    "service": "shop",
    "objective": "availability",
}
PAGE, TICKET = "SLOErrorBudgetBurnPage", "SLOErrorBudgetBurnTicket"


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("slo-rules")
    (folder / "shop.yaml").write_text(SHOP)
    result = opsledger("slo", "rules", str(folder / "shop.yaml"))
    assert result.returncode == 0, result.stderr
    path = folder / "rules.yaml"
    path.write_text(result.stdout)
    return path


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = Toolbox.locate().binary("promtool")
    return subprocess.run([str(promtool), *args], capture_output=True, text=True, check=False)


def _alert(rules: Path, name: str) -> dict[str, Any]:
    groups = yaml.safe_load(rules.read_text())["groups"]
    found: dict[str, Any] = next(r for g in groups for r in g["rules"] if r.get("alert") == name)
    return found


def _series(per_minute_errors: float, per_minute_ok: float) -> list[dict[str, str]]:
    """Five hours of request counters, scraped every minute."""
    return [
        {
            "series": 'http_requests_total{service="shop",code="200"}',
            "values": f"0+{per_minute_ok}x300",
        },
        {
            "series": 'http_requests_total{service="shop",code="500"}',
            "values": f"0+{per_minute_errors}x300",
        },
    ]


def _fires(rules: Path, name: str) -> list[dict[str, Any]]:
    """What promtool must see firing: the alert with the objective's labels and its own."""
    alert = _alert(rules, name)
    return [{"exp_labels": alert["labels"], "exp_annotations": alert["annotations"]}]


def test_the_rules_are_valid_prometheus_rules(rules: Path) -> None:
    checked = _promtool("check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 12 rules found" in checked.stdout


def test_prometheus_pages_on_a_fast_burn_tickets_a_slow_one_and_is_quiet_when_healthy(
    rules: Path, tmp_path: Path
) -> None:
    page = _alert(rules, PAGE)
    assert page["labels"] == {
        **SLO_LABELS,
        "severity": "critical",
        "slo_severity": "page",
        "opsledger_incident": "managed",
    }
    ratio = "opsledger_slo:error_ratio:rate5m"
    series_of = "{" + ",".join(f'{k}="{v}"' for k, v in SLO_LABELS.items()) + "}"
    cases = [
        {  # 2 errors in every 12 requests: burn 167x, both alerts
            "interval": "1m",
            "input_series": _series(per_minute_errors=120, per_minute_ok=600),
            "alert_rule_test": [
                {"eval_time": "15m", "alertname": PAGE, "exp_alerts": _fires(rules, PAGE)},
            ],
            "promql_expr_test": [
                {
                    "expr": ratio,
                    "eval_time": "15m",
                    "exp_samples": [{"labels": ratio + series_of, "value": 120 / 720}],
                },
                {
                    "expr": "opsledger_slo:error_budget_remaining:ratio",
                    "eval_time": "15m",
                    "exp_samples": [
                        {
                            "labels": "opsledger_slo:error_budget_remaining:ratio" + series_of,
                            "value": 1 - (120 / 720) / 0.001,
                        }
                    ],
                },
            ],
        },
        {  # 0.5 % errors: burn 5x, above the 1d/2h ticket (3x), below both pages (14.4x, 6x)
            "interval": "1m",
            "input_series": _series(per_minute_errors=3, per_minute_ok=597),
            "alert_rule_test": [
                {"eval_time": "3h", "alertname": PAGE, "exp_alerts": []},
                {"eval_time": "3h", "alertname": TICKET, "exp_alerts": _fires(rules, TICKET)},
            ],
        },
        {  # 0.05 % errors: burn 0.5x, nothing fires
            "interval": "1m",
            "input_series": _series(per_minute_errors=0.3, per_minute_ok=599.7),
            "alert_rule_test": [
                {"eval_time": "3h", "alertname": PAGE, "exp_alerts": []},
                {"eval_time": "3h", "alertname": TICKET, "exp_alerts": []},
            ],
        },
    ]
    test_file = tmp_path / "slo_test.yaml"
    test_file.write_text(
        yaml.safe_dump(
            {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": cases},
            allow_unicode=True,
        )
    )
    result = _promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_prometheus_rule_object_per_service_level_with_the_given_labels(tmp_path: Path) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(SHOP)
    result = opsledger(
        "slo", "rules", str(manifest), "-o", "prometheusrule", "--label", "release=prometheus"
    )
    assert result.returncode == 0, result.stderr
    [rule] = list(yaml.safe_load_all(result.stdout))
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["metadata"]["name"] == "shop-slo"
    assert rule["metadata"]["namespace"] == "shop"
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    assert [g["name"] for g in rule["spec"]["groups"]] == [
        "opsledger-slo-shop-shop",
        "opsledger-slo-shop-shop-budget",
    ]
    assert {r.get("alert") for r in rule["spec"]["groups"][0]["rules"]} >= {PAGE, TICKET}

    wrong = opsledger("slo", "rules", str(manifest), "--label", "release")
    assert wrong.returncode == 2
    assert "KEY=VALUE" in wrong.stderr
