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
