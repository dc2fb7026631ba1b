"""Fixtures for the Kubernetes executor: a fake API server per test, and the official client
pointed at it. No database, no cluster."""

import pytest
from kubernetes.client import ApiClient, Configuration

from runs.executors.kubernetes.cluster import JobCluster
from runs.executors.kubernetes.config import KubernetesConfig
from runs.executors.kubernetes.manifests import AttemptJobSpec
from tests.kubernetes.fakeapi import FakeKubernetes

NAMESPACE = "chalkweb-runs"
RUNTIME = "chalkweb==0.1.0"


def make_config(**overrides) -> KubernetesConfig:
    return KubernetesConfig(namespace=NAMESPACE, runtime_requirement=RUNTIME, **overrides)


def make_spec(**overrides) -> AttemptJobSpec:
    values = {
        "run_id": 41,
        "attempt_number": 1,
        "attempt_id": 97,
        "function_name": "refresh-exchange-rates",
        "image_ref": "registry.example.com/chalkweb/chalkweb-fn:" + "ab" * 16,
        "server_url": "http://chalkweb-web.chalkweb.svc.cluster.local",
        "cpu": "1",
        "memory": "1Gi",
        "timeout_seconds": 600,
    }
    return AttemptJobSpec(**{**values, **overrides})


@pytest.fixture
def config() -> KubernetesConfig:
    return make_config()


@pytest.fixture
def fake():
    server = FakeKubernetes().start()
    yield server
    server.stop()


@pytest.fixture
def cluster(fake, config):
    api_client = ApiClient(Configuration(host=fake.url))
    yield JobCluster(api_client, config)
    api_client.close()
