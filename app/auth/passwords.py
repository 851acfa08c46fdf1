"""Password hashing with Argon2id (argon2-cffi): a maintained, memory-hard default."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 8


@cache
def _dummy_hash() -> str:
    """Verifying against this keeps the time of "unknown email" close to "wrong password".
    Made at the first unknown email, not at import: one Argon2 hash (64 MiB, a few hundred
    ms on a busy machine) is not worth spending on every start."""
    return _hasher.hash("flowboard-dummy-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        verified = _hasher.verify(password_hash or _dummy_hash(), password)
        return verified and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
