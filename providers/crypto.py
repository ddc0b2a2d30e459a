"""Provider keys at rest: Fernet tokens, keyed from settings.

``LOOPKIT_SECRETS_KEY`` holds one or more Fernet keys, comma-separated: the
first encrypts, every one decrypts (``MultiFernet``), so a key is rotated by
putting a new key first, running ``manage.py rotate_provider_keys`` (which
re-encrypts every stored key with the first) and then dropping the old key.
Unset, the key is derived from ``SECRET_KEY`` (changing ``SECRET_KEY`` then
makes the stored provider keys unreadable: they must be entered again).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def derived_key(secret_key: str) -> bytes:
    """Return a Fernet key derived from Django's ``SECRET_KEY``."""
    digest = hashlib.sha256(b"loopkit provider keys:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def fernet() -> MultiFernet:
    """Return the ``MultiFernet`` of ``LOOPKIT_SECRETS_KEY`` (or of the derived key)."""
    configured = str(getattr(settings, "LOOPKIT_SECRETS_KEY", "") or "")
    raw = [k.strip() for k in configured.split(",") if k.strip()]
    if not raw:
        return MultiFernet([Fernet(derived_key(settings.SECRET_KEY))])
    try:
        return MultiFernet([Fernet(k.encode()) for k in raw])
    except ValueError:
        raise ImproperlyConfigured(
            "LOOPKIT_SECRETS_KEY must be Fernet keys (32 url-safe base64-encoded bytes), "
            'comma-separated; make one with: python -c "from cryptography.fernet import '
            'Fernet; print(Fernet.generate_key().decode())"'
        ) from None


def encrypt(value: str) -> str:
    return fernet().encrypt(value.encode()).decode()


class UnreadableKey(Exception):
    """A stored key no configured Fernet key decrypts (``SECRET_KEY`` or the keys changed)."""


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise UnreadableKey(
            "the stored API key cannot be decrypted with LOOPKIT_SECRETS_KEY "
            "(was it or SECRET_KEY changed?): enter the key again"
        ) from None


def rotate(token: str) -> str:
    """Return ``token`` re-encrypted with the first configured key."""
    return fernet().rotate(token.encode()).decode()


def mask(value: str) -> str:
    """Return how a saved key is shown: its first three and last four characters."""
    if len(value) <= 8:
        return "…" + value[-2:] if len(value) > 4 else "…"
    return f"{value[:3]}…{value[-4:]}"
