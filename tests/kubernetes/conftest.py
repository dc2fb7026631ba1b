"""Fixtures for the Kubernetes executor: a fake API server per test, the official client
pointed at it, and Chalkweb's settings pointed at it for the tests that also use the database.
No cluster."""

import pytest
from kubernetes.client import ApiClient, Configuration

from chalkweb.celery import app as celery_app
from runs.executors.kubernetes.cluster import JobCluster
from runs.executors.kubernetes.config import KubernetesConfig
from tests.kubernetes.fakeapi import FakeKubernetes
from tests.kubernetes.support import NAMESPACE, SERVER_URL, make_config


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


@pytest.fixture
def kubernetes(settings, fake):
    """Chalkweb's settings pointed at the fake: the kubernetes executor with no registry, so
    runs install their image as they start (no build) unless a test sets CHALK_K8S_REGISTRY."""
    settings.CHALK_EXECUTOR = "kubernetes"
    settings.CHALK_K8S_API_URL = fake.url
    settings.CHALK_K8S_NAMESPACE = NAMESPACE
    settings.CHALK_K8S_REGISTRY = ""
    settings.CHALK_K8S_INSTALL_AT_START = True
    settings.CHALK_RUNNER_SERVER_URL = SERVER_URL
    return fake


@pytest.fixture
def eager_tasks():
    """Tasks run where they are sent: with a committing database (`transactional_db`), a run's
    dispatch starts its attempt here, with no worker process and no message in a broker."""
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_eager_propagates = False
