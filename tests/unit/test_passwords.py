from app.auth import passwords


def test_production_hasher_is_argon2id() -> None:
    # The autouse fixture swaps in a cheap hasher; the module keeps the real one's settings here.
    from argon2 import PasswordHasher

    real = PasswordHasher()
    hashed = real.hash("a long enough secret")
    assert hashed.startswith("$argon2id$")
    assert real.verify(hashed, "a long enough secret")


def test_verify_rejects_wrong_and_missing() -> None:
    hashed = passwords.hash_password("right password")
    assert passwords.verify_password(hashed, "right password")
    assert not passwords.verify_password(hashed, "wrong password")
    assert not passwords.verify_password(None, "right password")
    assert not passwords.verify_password("not-a-hash", "right password")
