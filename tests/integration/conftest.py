"""Integration fixtures: cheap password hashing (these tests seed many users, not test hashing).

Verification reads the cost from each hash, so hashes made either way still verify.
"""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from app.auth import passwords

CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_hasher", CHEAP_HASHER)
