"""The suite hashes passwords with MD5 for speed (tests/conftest.py); the
portal itself must not."""

from importlib import import_module


def test_the_portal_hashes_passwords_with_argon2_and_can_still_read_pbkdf2():
    hashers = import_module("portal.settings").PASSWORD_HASHERS
    assert hashers[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    assert "django.contrib.auth.hashers.PBKDF2PasswordHasher" in hashers
    assert not any("MD5" in name or "SHA1" in name for name in hashers)
