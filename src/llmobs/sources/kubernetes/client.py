"""Builds the `kubernetes` ApiClient: in-cluster service account, kubeconfig, or an explicit host."""

from __future__ import annotations

import os

from kubernetes import client, config

from llmobs.sources.kubernetes.config import KubernetesConfig


def make_api_client(cfg: KubernetesConfig) -> client.ApiClient:
    """`api_host` wins (tests, `kubectl proxy`); then the pod's service account; then kubeconfig."""
    if cfg.api_host:
        conf = client.Configuration(host=cfg.api_host)
        return client.ApiClient(conf)
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not cfg.kubeconfig:
        conf = client.Configuration()
        config.load_incluster_config(client_configuration=conf)
        return client.ApiClient(conf)
    conf = client.Configuration()
    config.load_kube_config(config_file=cfg.kubeconfig, context=cfg.context, client_configuration=conf)
    return client.ApiClient(conf)
