import pytest
from pydantic import ValidationError

from opsledger.models.settings import Settings


def test_settings_come_from_the_documented_variables() -> None:
    settings = Settings.from_env(
        {
            "KUBECONFIG": "/tmp/kc",
            "OPSLEDGER_CLUSTER": "eu-1",
            "OPSLEDGER_CMDB_URL": "https://git.example/cmdb.git",
            "OPSLEDGER_CMDB_BRANCH": "trunk",
            "OPSLEDGER_PROMETHEUS_URL": "http://prom:9090",
            "OPSLEDGER_ALERTMANAGER_URL": "http://am:9093",
            "OPSLEDGER_NAMESPACES": "shop,payments",
            "OPSLEDGER_METRICS_PORT": "9200",
        }
    )
    assert settings.cluster == "eu-1"
    assert settings.cmdb_branch == "trunk"
    assert settings.namespaces == ["shop", "payments"]
    assert settings.metrics_port == 9200


def test_defaults_watch_all_namespaces_standalone() -> None:
    settings = Settings.from_env({})
    assert settings.namespaces == []
    assert settings.peering is None
    assert settings.cmdb_branch == "main"


def test_the_operator_s_own_kubeconfig_wins_over_kubectl_s() -> None:
    settings = Settings.from_env({"KUBECONFIG": "/tmp/admin", "OPSLEDGER_KUBECONFIG": "/tmp/op"})
    assert settings.kubeconfig == "/tmp/op"


def test_the_webhook_serves_https_only() -> None:
    with pytest.raises(ValueError, match="OPSLEDGER_WEBHOOK_CERT_FILE"):
        Settings.from_env({"OPSLEDGER_WEBHOOK_PORT": "9443"})
    settings = Settings.from_env(
        {
            "OPSLEDGER_WEBHOOK_PORT": "9443",
            "OPSLEDGER_WEBHOOK_CERT_FILE": "/tls/tls.crt",
            "OPSLEDGER_WEBHOOK_KEY_FILE": "/tls/tls.key",
            "OPSLEDGER_WEBHOOK_FAILURE_POLICY": "Ignore",
        }
    )
    assert settings.webhook_port == 9443
    assert settings.webhook_failure_policy == "Ignore"
    with pytest.raises(ValueError, match="Fail"):
        Settings.from_env({"OPSLEDGER_WEBHOOK_FAILURE_POLICY": "Maybe"})


def test_a_forge_needs_its_url_repository_and_token() -> None:
    with pytest.raises(ValueError, match="OPSLEDGER_FORGE_TOKEN_FILE"):
        Settings.from_env({"OPSLEDGER_FORGE": "gitea", "OPSLEDGER_FORGE_URL": "http://git"})
    with pytest.raises(ValueError, match="gitea"):
        Settings.from_env({"OPSLEDGER_FORGE": "bitbucket"})


def test_the_priority_matrix_and_the_receiver_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "OPSLEDGER_PRIORITY_MATRIX": "high/medium=P1, low/high=P2",
            "OPSLEDGER_RECEIVER_PORT": "9095",
            "OPSLEDGER_RECEIVER_TOKEN_FILE": "/var/run/secrets/opsledger/receiver/token",
            "OPSLEDGER_RECEIVER_RESOLVE": "false",
            "OPSLEDGER_PROBLEM_PERIOD": "72h",
        }
    )
    assert settings.priority_matrix == {"high/medium": "P1", "low/high": "P2"}
    assert settings.receiver_port == 9095
    assert settings.receiver_resolve is False
    assert settings.problem_period == "72h"


def test_wrong_correlation_and_receiver_settings_say_what_to_set() -> None:
    with pytest.raises(ValidationError, match="OPSLEDGER_RECEIVER_TOKEN_FILE"):
        Settings.from_env({"OPSLEDGER_RECEIVER_PORT": "9095"})
    with pytest.raises(ValidationError, match="impact/urgency"):
        Settings.from_env({"OPSLEDGER_PRIORITY_MATRIX": "urgent/high=P1"})
    with pytest.raises(ValidationError, match="problem_period"):
        Settings.from_env({"OPSLEDGER_PROBLEM_PERIOD": "a week"})
