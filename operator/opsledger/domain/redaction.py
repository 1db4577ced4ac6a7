"""Keep secrets out of everything that leaves the cluster: CMDB records, commit messages, pull
request bodies, Events and logs. One redactor, used everywhere.

The CMDB is a Git repository: whatever is written stays in its history for good. So redaction is
applied to every value before a record is rendered, not after. Where a field's content is
free-form configuration (a plan patch's values, container environment values, annotations) only
fields known to be safe are written as they are; every other value is replaced by a fingerprint
(a keyed hash: it shows that a value changed, not what it is). Names, labels and the like, which
are known to hold no secret, pass unless their key or text looks secret (the patterns below).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
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


# Where a plan patch's values are written as they are (JSON pointers; * one segment, ** the rest):
# what a workload runs and how many, never what it is configured with.
_CONTAINERS = ("/spec/template/spec/containers/*", "/spec/template/spec/initContainers/*")
SAFE_PATCH_PATHS = (
    "/metadata/labels/*",
    "/spec/replicas",
    "/spec/paused",
    "/spec/suspend",
    "/spec/schedule",
    "/spec/minReadySeconds",
    "/spec/revisionHistoryLimit",
    "/spec/strategy/**",
    "/spec/updateStrategy/**",
    "/spec/template/metadata/labels/*",
    *(
        f"{c}/{f}"
        for c in _CONTAINERS
        for f in ("name", "image", "imagePullPolicy", "resources/**", "ports/**", "env/*/name")
    ),
)
# Annotations whose values are written as they are; every other one is fingerprinted.
SAFE_ANNOTATION_PREFIXES = (
    "opsledger.io/",
    "app.kubernetes.io/",
    "meta.helm.sh/",
    "argocd.argoproj.io/",
    "kapp.k14s.io/identity",
    "deployment.kubernetes.io/",
)
# Container environment variables whose values are written as they are.
SAFE_ENV_NAMES = frozenset({"LOG_LEVEL", "LOGLEVEL", "TZ", "LANG", "PORT", "NODE_ENV", "ENV"})


def _pointer_matches(pattern: str, pointer: str) -> bool:
    want, have = pattern.strip("/").split("/"), pointer.strip("/").split("/")
    for index, segment in enumerate(want):
        if segment == "**":
            return len(have) > index
        if index >= len(have) or not fnmatch.fnmatchcase(have[index], segment):
            return False
    return len(want) == len(have)


@dataclass(frozen=True)
class Redactor:
    """Replaces values whose key or content looks secret with a marker."""

    key_patterns: tuple[str, ...] = DEFAULT_KEY_PATTERNS
    value_patterns: tuple[str, ...] = DEFAULT_VALUE_PATTERNS
    # The fingerprint's key: with a secret key (OPSLEDGER_REDACTION_KEY_FILE) a fingerprint
    # cannot be checked against guessed values.
    fingerprint_key: bytes = b"opsledger"
    _keys: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _values: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_keys", tuple(re.compile(p) for p in self.key_patterns))
        object.__setattr__(self, "_values", tuple(re.compile(p) for p in self.value_patterns))

    @classmethod
    def with_extra(
        cls, keys: Iterable[str] = (), values: Iterable[str] = (), key: bytes = b"opsledger"
    ) -> Redactor:
        return cls(DEFAULT_KEY_PATTERNS + tuple(keys), DEFAULT_VALUE_PATTERNS + tuple(values), key)

    def fingerprint(self, value: Any) -> str:
        """A stand-in for a value that is not written: equal values, equal fingerprints."""
        data = json.dumps(value, sort_keys=True, default=str).encode()
        digest = hmac.new(self.fingerprint_key, data, hashlib.sha256).hexdigest()[:12]
        return f"<redacted {digest}>"

    def text(self, value: str) -> str:
        """Free text (a description, an error message): as it is unless it looks like it holds
        a secret, then a fingerprint of it."""
        return self.fingerprint(value) if self.secret_value(value) else value

    def patch(self, document: Any, prefix: str = "") -> Any:
        """A plan patch (merge or apply document) with every value outside SAFE_PATCH_PATHS,
        and every secret-looking one, replaced by its fingerprint."""
        if isinstance(document, dict):
            return {
                k: self.patch(v, f"{prefix}/{str(k).replace('~', '~0').replace('/', '~1')}")
                for k, v in document.items()
            }
        if isinstance(document, list):
            return [self.patch(v, f"{prefix}/{i}") for i, v in enumerate(document)]
        if document is None or isinstance(document, bool):
            return document  # a deletion, a switch: no secret in it
        safe = any(_pointer_matches(p, prefix) for p in SAFE_PATCH_PATHS)
        if safe and not (isinstance(document, str) and self.secret_value(document)):
            return document
        return self.fingerprint(document)

    def plan_step(self, patch_type: str, patch: Any) -> Any:
        """One plan step's patch, redacted; a JSON patch's values under their op's path."""
        if patch_type != "json" or not isinstance(patch, list):
            return self.patch(patch)
        return [
            {**op, "value": self.patch(op["value"], str(op.get("path") or ""))}
            if isinstance(op, dict) and "value" in op
            else op
            for op in patch
        ]

    def change_spec(self, spec: dict[str, Any]) -> dict[str, Any]:
        """A Change's spec as records and proposals show it: plan values redacted, free text
        checked, the rest (names, queries, times) as it is."""
        out = {k: self.value(k, v) for k, v in spec.items() if k not in ("plan",)}
        for key in ("summary", "description"):
            if isinstance(spec.get(key), str):
                out[key] = self.text(spec[key])
        if "plan" in spec:
            out["plan"] = [
                {
                    **step,
                    "patch": self.plan_step(str(step.get("patchType", "merge")), step.get("patch")),
                }
                for step in spec.get("plan") or []
            ]
        return out

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
        """Annotations worth recording: dropped ones removed; the values of those known to be
        safe kept (unless they look secret), every other value fingerprinted."""
        kept = {k: v for k, v in (annotations or {}).items() if not dropped_annotation(k)}
        return {
            k: v
            if k.startswith(SAFE_ANNOTATION_PREFIXES) and self.value(k, v) == v
            else self.fingerprint(v)
            for k, v in kept.items()
        }

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
                value = var["value"]
                safe = entry["name"] in SAFE_ENV_NAMES and self.value(entry["name"], value) == value
                entry["value"] = value if safe else self.fingerprint(value)
            result.append(entry)
        return result


def dropped_annotation(key: str) -> bool:
    """Whether an annotation is left out of records altogether (not merely redacted)."""
    return (
        key in DROPPED_ANNOTATIONS
        or key.endswith(DROPPED_ANNOTATION_SUFFIXES)
        or key.startswith(DROPPED_ANNOTATION_PREFIXES)
    )
