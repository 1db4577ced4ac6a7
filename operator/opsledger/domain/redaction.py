"""Keep secrets out of the CMDB: what is never written, and patterns for the rest.

The CMDB is a Git repository: whatever is written stays in its history for good. So redaction is
applied to every value before a record is rendered, not after.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

REDACTED = "<redacted>"

# Annotations whose whole value is a copy of the object (and so of any secret in it), matched by
# how the key ends so every tool's variant is caught: kubectl.kubernetes.io/..., Kopf's
# kopf.zalando.org/... and our own opsledger.io/last-handled-configuration.
DROPPED_ANNOTATION_SUFFIXES = ("last-applied-configuration", "last-handled-configuration")
# kapp keeps the applied object (and a diff of it) under kapp.k14s.io/original[-diff].
DROPPED_ANNOTATION_PREFIXES = ("kapp.k14s.io/original",)
DROPPED_ANNOTATIONS = frozenset(
    {
        "deployment.kubernetes.io/revision",  # changes on every rollout; not configuration
    }
)

DEFAULT_KEY_PATTERNS = (
    r"(?i)(pass(word|wd)?|secret|token|api[-_]?key|credential|private[-_]?key|auth)",
    # Keys that end in "key" after something else (STRIPE_KEY, licenseKey, ssh-key): a bare
    # "key" names a key (secretKeyRef.key, a toleration's key), it does not hold one.
    r"(?i).key$",
    r"(?i)webhooks?([-_.]?ur[il])?$",  # SLACK_WEBHOOK, alertWebhookUrl
    r"(?i)dsn$",  # SENTRY_DSN, database.dsn
    r"(?i)signing$",
)
DEFAULT_VALUE_PATTERNS = (
    r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWTs
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    r"\bgh[pousr]_[A-Za-z0-9]{30,}",  # GitHub tokens
    r"\bglpat-[A-Za-z0-9_-]{20,}",  # GitLab tokens
    r"\bAKIA[0-9A-Z]{16}\b",  # AWS access keys
    r"(?i)bearer\s+[A-Za-z0-9._~+/-]{16,}",
    r"://[^/\s:@]*:[^/\s@]+@",  # credentials in URLs, also with an empty user (redis://:pw@)
    # password=… in connection strings and query strings (Password=x; pwd=x&), also quoted
    r"(?i)\b(password|passwd|pwd)[\"']?\s*[=:]\s*[\"']?[^\s\"';&,]",
)


@dataclass(frozen=True)
class Redactor:
    """Replaces values whose key or content looks secret with a marker."""

    key_patterns: tuple[str, ...] = DEFAULT_KEY_PATTERNS
    value_patterns: tuple[str, ...] = DEFAULT_VALUE_PATTERNS
    _keys: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _values: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_keys", tuple(re.compile(p) for p in self.key_patterns))
        object.__setattr__(self, "_values", tuple(re.compile(p) for p in self.value_patterns))

    @classmethod
    def with_extra(cls, keys: Iterable[str] = (), values: Iterable[str] = ()) -> Redactor:
        return cls(DEFAULT_KEY_PATTERNS + tuple(keys), DEFAULT_VALUE_PATTERNS + tuple(values))

    def secret_key(self, key: str) -> bool:
        return any(p.search(key) for p in self._keys)

    def secret_value(self, value: str) -> bool:
        return any(p.search(value) for p in self._values)

    def value(self, key: str, value: Any) -> Any:
        """`value` itself, redacted when its key or its text looks secret (recursively)."""
        if isinstance(value, dict):
            return self.mapping(value)
        if isinstance(value, list):
            return [self.value(key, item) for item in value]
        if isinstance(value, str) and (self.secret_key(key) or self.secret_value(value)):
            return REDACTED
        return value

    def mapping(self, data: dict[str, Any]) -> dict[str, Any]:
        return {k: self.value(k, v) for k, v in data.items()}

    def annotations(self, annotations: dict[str, str] | None) -> dict[str, str]:
        """Annotations worth recording: dropped ones removed, the rest redacted."""
        kept = {k: v for k, v in (annotations or {}).items() if not dropped_annotation(k)}
        return {k: self.value(k, v) for k, v in kept.items()}

    def env(self, env: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        """Container env vars: references are kept, values from Secrets never are."""
        result = []
        for var in env or []:
            entry: dict[str, Any] = {"name": var.get("name", "")}
            source = var.get("valueFrom")
            if source:
                secret = source.get("secretKeyRef")
                if secret:
                    entry["fromSecret"] = f"{secret.get('name', '')}/{secret.get('key', '')}"
                else:
                    entry["from"] = next(iter(source), "unknown")
            elif "value" in var:
                entry["value"] = self.value(entry["name"], var["value"])
            result.append(entry)
        return result


def dropped_annotation(key: str) -> bool:
    """Whether an annotation is left out of records altogether (not merely redacted)."""
    return (
        key in DROPPED_ANNOTATIONS
        or key.endswith(DROPPED_ANNOTATION_SUFFIXES)
        or key.startswith(DROPPED_ANNOTATION_PREFIXES)
    )
