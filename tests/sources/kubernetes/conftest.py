"""What every Kubernetes test here starts from: a fresh stand-in API server (tests/k8s/apiserver.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.k8s.apiserver import FakeApiServer


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer().start()
    yield server
    server.stop()
