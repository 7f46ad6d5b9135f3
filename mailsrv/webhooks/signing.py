"""Standard Webhooks signatures (https://www.standardwebhooks.com, "Signature scheme"): a
webhook carries `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`,
`v1,` + base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>")), where the key is the secret's
bytes: the secret is shown as `whsec_` + base64(key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

PREFIX = "whsec_"
KEY_BYTES = 32  # the spec asks for 24 to 64


def new_secret() -> str:
    return PREFIX + base64.b64encode(os.urandom(KEY_BYTES)).decode()


def key_of(secret: str) -> bytes:
    """The HMAC key of a `whsec_...` secret. Raises ValueError for anything else."""
    if not secret.startswith(PREFIX):
        raise ValueError("not a whsec_ secret")
    return base64.b64decode(secret[len(PREFIX) :], validate=True)


def signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one delivery."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three signature headers; none when the account has no secret yet."""
    if not secret:
        return {}
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key_of(secret), webhook_id, timestamp, body),
    }
