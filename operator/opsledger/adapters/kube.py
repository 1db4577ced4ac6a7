"""Kubernetes API access beyond what Kopf does for the handlers."""

from __future__ import annotations

from collections.abc import Iterable

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException


def api_client(kubeconfig: str | None) -> client.ApiClient:
    """A client from a kubeconfig file, or from the pod's service account when there is none."""
    if kubeconfig:
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
        return api
    config.load_incluster_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


def missing_crds(api: client.ApiClient, names: Iterable[str]) -> list[str]:
    """Names of the CustomResourceDefinitions that are not installed or not yet established."""
    extensions = client.ApiextensionsV1Api(api)
    missing = []
    for name in names:
        try:
            crd = extensions.read_custom_resource_definition(name)
        except ApiException as exc:
            if exc.status == 404:
                missing.append(name)
                continue
            raise
        conditions = (crd.status.conditions or []) if crd.status else []
        if not any(c.type == "Established" and c.status == "True" for c in conditions):
            missing.append(name)
    return missing
