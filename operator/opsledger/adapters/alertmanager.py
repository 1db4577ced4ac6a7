"""Alertmanager's silences (API v2), for changes that should not page people for what they do."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import requests


class AlertmanagerUnavailableError(RuntimeError):
    """Alertmanager could not be asked; the message says which URL and why."""


class Alertmanager:
    """Silences on one Alertmanager: created with equality matchers, expired by id."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def silence(
        self,
        matchers: Mapping[str, str],
        *,
        ends: datetime,
        created_by: str,
        comment: str,
        starts: datetime | None = None,
    ) -> str:
        """Create a silence of the alerts whose labels equal `matchers`; its id."""
        body = {
            "matchers": [
                {"name": k, "value": v, "isRegex": False, "isEqual": True}
                for k, v in sorted(matchers.items())
            ],
            "startsAt": (starts or datetime.now(UTC)).astimezone(UTC).isoformat(),
            "endsAt": ends.astimezone(UTC).isoformat(),
            "createdBy": created_by,
            "comment": comment,
        }
        response = self._call("POST", "/api/v2/silences", json=body)
        return str(response.json()["silenceID"])

    def expire(self, silence_id: str) -> None:
        """Expire a silence (one already expired or gone is fine)."""
        self._call("DELETE", f"/api/v2/silence/{silence_id}", missing_ok=True)

    def state(self, silence_id: str) -> str | None:
        """A silence's state (active, pending, expired), None when Alertmanager has none."""
        response = self._call("GET", f"/api/v2/silence/{silence_id}", missing_ok=True)
        if response.status_code == 404:
            return None
        return str(response.json().get("status", {}).get("state"))

    def _call(
        self, method: str, path: str, *, missing_ok: bool = False, **kwargs: object
    ) -> requests.Response:
        try:
            response = self._session.request(
                method,
                self.url + path,
                timeout=self.timeout,
                **kwargs,  # type: ignore[arg-type]
            )
        except requests.RequestException as exc:
            raise AlertmanagerUnavailableError(
                f"Alertmanager at {self.url} cannot be reached: {exc}"
            ) from exc
        if response.status_code == 404 and missing_ok:
            return response
        if response.status_code >= 400:
            raise AlertmanagerUnavailableError(
                f"Alertmanager at {self.url} refused {method} {path}: HTTP "
                f"{response.status_code} {response.text[:300]}"
            )
        return response
