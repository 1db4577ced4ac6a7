"""Redaction: what never reaches the CMDB, and what harmless keys and values stay readable."""

from __future__ import annotations

import pytest

from opsledger.domain.observe import observe
from opsledger.domain.redaction import REDACTED, Redactor

REDACTOR = Redactor()


@pytest.mark.parametrize(
    "value",
    [
        "Server=db;Database=shop;User Id=sa;Password=hunter2;",
        "host=db port=5432 user=app password=hunter2 dbname=shop",
        "postgres://db/shop?sslmode=require&password=hunter2",
        "Driver={ODBC};Uid=sa;Pwd=hunter2",
        "PASSWD: hunter2",
        '{"user": "app", "password": "hunter2"}',
        "redis://:hunter2@cache:6379/0",
        "amqp://app:hunter2@queue:5672/",
        "https://bot:hunter2@git.example/org/repo.git",
    ],
)
def test_passwords_in_connection_strings_and_urls_are_redacted(value: str) -> None:
    assert REDACTOR.value("CONNECTION", value) == REDACTED


@pytest.mark.parametrize(
    "value",
    [
        "Server=db;Database=shop;Integrated Security=true",
        "https://shop.example:8443/checkout",
        "ssh://git@github.com/org/repo.git",
        "redis://cache:6379/0",
        "passwordless sign-in is enabled",
        "password=",  # nothing after it
        "registry.example/web:1.4.2",
        "cwd=/srv/app",
    ],
)
def test_harmless_values_stay_readable(value: str) -> None:
    assert REDACTOR.value("CONFIG", value) == value


@pytest.mark.parametrize(
    "key",
    [
        "STRIPE_KEY",
        "licenseKey",
        "ssh-key",
        "encryption.key",
        "SLACK_WEBHOOK",
        "alertWebhookUrl",
        "teams-webhook-url",
        "SENTRY_DSN",
        "database.dsn",
        "REQUEST_SIGNING",
        "DB_PASSWORD",
        "example.com/deploy-token",
    ],
)
def test_values_under_secret_looking_keys_are_redacted(key: str) -> None:
    assert REDACTOR.value(key, "plain-looking-value") == REDACTED


@pytest.mark.parametrize(
    "key",
    [
        "app",
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
        "app.kubernetes.io/component",
        "app.kubernetes.io/part-of",
        "app.kubernetes.io/managed-by",
        "helm.sh/chart",
        "meta.helm.sh/release-name",
        "pod-template-hash",
        "controller-revision-hash",
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
        "prometheus.io/scrape",
        "kubectl.kubernetes.io/restartedAt",
        "tier",
        "key",  # names a key (secretKeyRef.key, a toleration's key); holds none
        "keyboard",
        "webhookEnabled",
        "LOG_LEVEL",
    ],
)
def test_common_label_and_config_keys_are_not_redacted(key: str) -> None:
    assert REDACTOR.value(key, "plain-looking-value") == "plain-looking-value"


def test_annotations_that_copy_the_object_are_dropped_whatever_tool_wrote_them() -> None:
    copy_of_object = '{"stringData": {"password": "hunter2"}}'
    kept = REDACTOR.annotations(
        {
            "kubectl.kubernetes.io/last-applied-configuration": copy_of_object,
            "kopf.zalando.org/last-handled-configuration": copy_of_object,
            "opsledger.io/last-handled-configuration": copy_of_object,
            "tool.example/last-applied-configuration": copy_of_object,
            "kapp.k14s.io/original": copy_of_object,
            "kapp.k14s.io/original-diff": copy_of_object,
            "deployment.kubernetes.io/revision": "4",
            "kapp.k14s.io/identity": "v1;shop/apps/Deployment/web;apps/v1",
            "example.com/team": "storefront",
        }
    )
    assert kept == {
        "kapp.k14s.io/identity": "v1;shop/apps/Deployment/web;apps/v1",
        # not known to be safe: fingerprinted (an allow-list, not a deny-list)
        "example.com/team": REDACTOR.fingerprint("storefront"),
    }


def test_env_keeps_names_and_secret_references_but_not_secret_values() -> None:
    observed = observe(
        {
            "kind": "Deployment",
            "metadata": {"labels": {"app.kubernetes.io/name": "web"}},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "image": "web:1",
                                "env": [
                                    {"name": "SIGNING_KEY", "value": "k3y-material"},
                                    {"name": "SENTRY_DSN", "value": "https://abc@sentry.io/1"},
                                    {"name": "DATABASE_URL", "value": "postgres://:pw@db/shop"},
                                    {"name": "LOG_LEVEL", "value": "debug"},
                                    {
                                        "name": "API_KEY",
                                        "valueFrom": {
                                            "secretKeyRef": {"name": "api", "key": "token"}
                                        },
                                    },
                                ],
                            }
                        ]
                    }
                }
            },
        },
        REDACTOR,
    )
    assert observed["labels"] == {"app.kubernetes.io/name": "web"}
    fp = REDACTOR.fingerprint
    assert observed["env"]["app"] == [
        {"name": "SIGNING_KEY", "value": fp("k3y-material")},
        {"name": "SENTRY_DSN", "value": fp("https://abc@sentry.io/1")},
        {"name": "DATABASE_URL", "value": fp("postgres://:pw@db/shop")},
        {"name": "LOG_LEVEL", "value": "debug"},  # known to be safe
        {"name": "API_KEY", "fromSecret": "api/token"},
    ]


def test_env_values_not_known_to_be_safe_are_fingerprinted_whatever_their_name() -> None:
    [entry] = REDACTOR.env([{"name": "MYSQL_PWD", "value": "hunter2"}])  # no deny pattern hits
    assert entry["value"] == REDACTOR.fingerprint("hunter2")
    assert entry["value"].startswith("<redacted ")
    assert "hunter2" not in entry["value"]
    [again] = REDACTOR.env([{"name": "MYSQL_PWD", "value": "hunter2"}])
    assert again == entry  # stable: an unchanged value writes nothing new
    other = Redactor.with_extra(key=b"another-installation")
    assert other.env([{"name": "MYSQL_PWD", "value": "hunter2"}])[0] != entry  # keyed


def test_a_plan_patch_shows_what_runs_and_fingerprints_what_it_is_configured_with() -> None:
    patch = {
        "metadata": {"annotations": {"example.com/note": "S3cr3t"}, "labels": {"tier": "web"}},
        "spec": {
            "replicas": 3,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "web:2.0",
                            "env": [{"name": "MYSQL_PWD", "value": "S3cr3t"}],
                            "args": ["--token=S3cr3t"],
                        }
                    ]
                }
            },
        },
    }
    shown = REDACTOR.plan_step("merge", patch)
    fp = REDACTOR.fingerprint("S3cr3t")
    assert shown["metadata"] == {"annotations": {"example.com/note": fp}, "labels": {"tier": "web"}}
    container = shown["spec"]["template"]["spec"]["containers"][0]
    assert (container["name"], container["image"], shown["spec"]["replicas"]) == (
        "app",
        "web:2.0",
        3,
    )
    assert container["env"] == [{"name": "MYSQL_PWD", "value": fp}]
    assert container["args"] == [REDACTOR.fingerprint("--token=S3cr3t")]
    ops = [{"op": "add", "path": "/spec/template/spec/containers/0/env/0/value", "value": "S3cr3t"}]
    assert REDACTOR.plan_step("json", ops) == [{**ops[0], "value": fp}]


def test_free_text_is_kept_unless_it_looks_like_it_holds_a_secret() -> None:
    assert REDACTOR.text("the checkout page is slow") == "the checkout page is slow"
    leaked = REDACTOR.text("db is down, try password=hunter2")
    assert "hunter2" not in leaked
    assert leaked.startswith("<redacted ")
