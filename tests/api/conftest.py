"""API fixtures: `api` (tests.api.helpers.Api on the seeded board)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import Api
from tests.factories import Seed


@pytest.fixture
def api(client: TestClient, seed: Seed) -> Api:
    return Api(client, seed)
