"""Prometheus behind a small interface (prometheus-api-client), with readable failures."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import requests
from prometheus_api_client import PrometheusConnect


class PrometheusUnavailableError(RuntimeError):
    """Prometheus could not answer; the message says which URL and why. Health is unknown."""


class PrometheusQueryError(PrometheusUnavailableError):
    """Prometheus answered but refused the query (a PromQL error): the message is its own."""


class Prometheus:
    """Instant and range queries against one Prometheus, counted (tests and benchmarks read
    `queries`)."""

    def __init__(self, url: str, *, timeout: float = 15.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        # prometheus-api-client sets up the session (its retry policy, TLS verification). The
        # query itself is posted as a form here: the client puts it in the URL even with
        # method="POST", and a batched query for a few hundred objectives is longer than the
        # request line Prometheus accepts (it resets the connection). In the body it also stays
        # out of access logs.
        self._session = requests.Session()
        PrometheusConnect(url=self.url, disable_ssl=False, session=self._session)
        self.queries = 0

    def instant(self, query: str, at: datetime | None = None) -> list[dict[str, Any]]:
        """The vector an instant query returns (at `at`, or now)."""
        form = {"query": query, **({"time": f"{at.timestamp():.3f}"} if at else {})}
        return self._ask("query", form)

    def range(
        self, query: str, start: datetime, end: datetime, step_seconds: float
    ) -> list[dict[str, Any]]:
        """The matrix a range query returns: each series' [time, value] from `start` to `end`."""
        form = {
            "query": query,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{max(step_seconds, 1.0):.0f}",
        }
        return self._ask("query_range", form)

    def _ask(self, endpoint: str, form: dict[str, str]) -> list[dict[str, Any]]:
        self.queries += 1
        try:
            response = self._session.post(
                f"{self.url}/api/v1/{endpoint}", data=form, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise PrometheusUnavailableError(
                f"Prometheus at {self.url} did not answer: {exc}"
            ) from exc
        if response.status_code in {400, 422}:  # bad_data, execution: the query is at fault
            raise PrometheusQueryError(f"Prometheus refused the query: {_error(response)}")
        if response.status_code != 200:
            raise PrometheusUnavailableError(
                f"Prometheus at {self.url} answered HTTP {response.status_code}: {_error(response)}"
            )
        return cast(list[dict[str, Any]], response.json()["data"]["result"])


def _error(response: requests.Response) -> str:
    """Prometheus's own error text (its JSON `error`), else the start of the body."""
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return response.text[:500]
