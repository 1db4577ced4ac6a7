"""`opsledger window`: the answer a script gets for a ServiceLevel manifest."""

import json
from pathlib import Path

import pytest

from opsledger.cli import main

MANIFEST = """
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {name: shop, namespace: shop}
spec:
  service: shop
  maintenanceWindows:
  - {schedule: "0 22 * * 6", duration: 4h, timeZone: Europe/Berlin}
  freezes:
  - {start: "2026-12-20T00:00:00Z", end: "2027-01-04T00:00:00Z", reason: holiday freeze}
"""


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "servicelevel.yaml"
    path.write_text(MANIFEST)
    return path


def answer(manifest: Path, at: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["window", str(manifest), "--at", at, "-o", "json"]) == 0
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def test_inside_a_window_the_window_is_returned(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = answer(manifest, "2026-11-28T23:30:00+01:00", capsys)
    assert result["allowed"] is True
    assert result["next"] == {"start": "2026-11-28T21:00:00Z", "end": "2026-11-29T01:00:00Z"}


def test_in_a_freeze_the_next_window_after_it_is_returned(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = answer(manifest, "2026-12-26T22:30:00+01:00", capsys)
    assert result["allowed"] is False
    assert "holiday freeze" in str(result["reason"])
    assert result["next"] == {"start": "2027-01-09T21:00:00Z", "end": "2027-01-10T01:00:00Z"}


def test_the_iso_8601_forms_people_write_are_the_same_moment(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    strict = answer(manifest, "2026-11-28T23:30:00+01:00", capsys)
    assert answer(manifest, "2026-11-28 22:30Z", capsys) == strict
    assert answer(manifest, "20261128T2230Z", capsys) == strict


def test_a_bad_manifest_or_time_is_a_clear_error(
    tmp_path: Path, manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["window", str(manifest), "--at", "2026-12-26 22:30"]) == 2
    assert "needs a time zone" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text(MANIFEST.replace("Europe/Berlin", "Europe/Atlantis"))
    assert main(["window", str(broken)]) == 2
    assert "not an IANA time zone" in capsys.readouterr().err
