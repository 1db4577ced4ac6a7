"""Validation of a CMDB repository checkout: every record parses, matches its schema and sits
at the path its metadata says, and the approval policy and standard-change templates parse (what
the repository's CI runs through `opsledger cmdb validate`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

import yaml
from pydantic import ValidationError

from opsledger.domain.approval_policy import PolicyError, parse_policy
from opsledger.domain.calendars import CALENDAR_DIR, CalendarError, parse
from opsledger.domain.catalog import CatalogError, parse_item
from opsledger.domain.standard_changes import TemplateError, parse_template
from opsledger.domain.validation import describe
from opsledger.models.policy import POLICY_FILE
from opsledger.models.records import RECORD_FOLDERS
from opsledger.models.request import CATALOG_DIR


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def validate_record(path: str, text: str) -> list[Problem]:
    """Problems with one file under clusters/ (path relative to the repository root)."""
    parts = PurePosixPath(path).parts
    if len(parts) != 5 or parts[0] != "clusters" or not path.endswith(".yaml"):
        return [Problem(path, "records live at clusters/<cluster>/<namespace>/<kind>/<name>.yaml")]
    _, cluster, namespace, folder, filename = parts
    model = RECORD_FOLDERS.get(folder)
    if model is None:
        known = ", ".join(sorted(RECORD_FOLDERS))
        return [Problem(path, f"unknown record folder {folder!r}: expected one of {known}")]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [Problem(path, f"not valid YAML: {exc}".replace("\n", " "))]
    if not isinstance(data, dict):
        return [Problem(path, "a record is a YAML mapping")]
    try:
        record = model.model_validate(data)
    except ValidationError as exc:
        return [Problem(path, describe(exc, root=""))]
    metadata = getattr(record, "metadata", None)
    expected = {"cluster": cluster, "namespace": namespace, "name": filename[: -len(".yaml")]}
    return [
        Problem(path, f"metadata.{key} is {getattr(metadata, key)!r} but the path says {want!r}")
        for key, want in expected.items()
        if getattr(metadata, key, None) != want
    ]


def validate_policy(path: str, text: str) -> list[Problem]:
    """Problems with the approval policy or a standard-change template (changed by hand, by
    pull request: this is the check that keeps a broken one from reaching main)."""
    try:
        if path == POLICY_FILE:
            parse_policy(text)
        elif path.startswith(f"{CATALOG_DIR}/"):
            parse_item(path, text)
        else:
            parse_template(path, text)
    except (PolicyError, TemplateError, CatalogError) as exc:
        return [Problem(path, str(exc).removeprefix(f"{path} ").replace("\n", " "))]
    return []


def validate_calendar(path: str, text: str) -> list[Problem]:
    """Problems with a shared calendar (calendars/<name>.ics): unreadable, an event without an
    end or repeating more often than daily, too many occurrences in the coming year."""
    name = path.removeprefix(f"{CALENDAR_DIR}/").removesuffix(".ics")
    if not path.endswith(".ics") or "/" in name:
        return [Problem(path, f"a calendar is {CALENDAR_DIR}/<name>.ics")]
    try:
        parse(name, text)
    except CalendarError as exc:
        return [Problem(path, str(exc).removeprefix(f"{path}: "))]
    return []


def validate_tree(files: Iterator[tuple[str, str]]) -> list[Problem]:
    """Problems across (path, text) pairs of every record file in a checkout, and of the policy
    files (approval-policy.yaml, standard-changes/*.yaml, catalog/*.yaml) and calendars
    (calendars/*.ics) among them."""
    problems: list[Problem] = []
    for path, text in files:
        if path == POLICY_FILE or path.startswith(("standard-changes/", f"{CATALOG_DIR}/")):
            problems += validate_policy(path, text)
        elif path.startswith(f"{CALENDAR_DIR}/"):
            problems += validate_calendar(path, text)
        else:
            problems += validate_record(path, text)
    return problems
