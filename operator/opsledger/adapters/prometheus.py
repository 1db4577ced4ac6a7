"""Prometheus behind a small interface (prometheus-api-client), with readable failures."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException


class PrometheusUnavailableError(RuntimeError):
    """Prometheus could not answer; the message says which URL and why. Health is unknown."""


class Prometheus:
    """Instant queries against one Prometheus, counted (tests and benchmarks read `queries`)."""

    def __init__(self, url: str, *, timeout: float = 15.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        # POST: batched SLO queries are long, and POST keeps them out of access logs' URLs.
        self._client = PrometheusConnect(url=self.url, disable_ssl=False, method="POST")
        self.queries = 0

    def instant(self, query: str, at: datetime | None = None) -> list[dict[str, Any]]:
        """The vector an instant query returns (at `at`, or now)."""
        params = {"time": f"{at.timestamp():.3f}"} if at else None
        self.queries += 1
        try:
            result = self._client.custom_query(query=query, params=params, timeout=self.timeout)
        except (PrometheusApiClientException, requests.RequestException) as exc:
            raise PrometheusUnavailableError(
                f"Prometheus at {self.url} did not answer: {exc}"
            ) from exc
        return cast(list[dict[str, Any]], result)
