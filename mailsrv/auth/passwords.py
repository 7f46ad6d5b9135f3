"""Password hashing and the per-mechanism secrets derived from a password.

At set-password time one plaintext yields, and only these are stored:
- an argon2id hash through the passlib API (`libpass`), for PLAIN and LOGIN;
- SCRAM-SHA-1 and SCRAM-SHA-256 salted secrets (RFC 5802 §3: salt, iteration count,
  StoredKey = H(ClientKey), ServerKey), for SCRAM and SCRAM-PLUS;
- CRAM-MD5 material: the MD5 chaining values after compressing (key XOR ipad) and
  (key XOR opad) (RFC 2104 §2), 16 bytes each, from which HMAC-MD5 is finished per
  challenge (RFC 2195). This is password-equivalent for CRAM-MD5, never the plaintext.

Every function here is CPU-bound and some are deliberately slow: callers run them off the
reactor thread. The password is SASLprep'd (RFC 4013) first when it can be, so the same
string is fed to every mechanism (see `prepare_password`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from passlib.context import CryptContext

from mailsrv.auth.interfaces import ScramSecret
from mailsrv.auth.md5state import BLOCK_SIZE, STATE_SIZE, md5_resume, md5_state_after_block
from mailsrv.auth.saslprep import SASLprepError, saslprep

SCRAM_HASHES = ("sha1", "sha256")
# RFC 7677 §4 recommends at least 4096 iterations; the cost falls on every login.
DEFAULT_SCRAM_ITERATIONS = 4096
SCRAM_SALT_SIZE = 16


def prepare_password(password: str) -> str:
    """RFC 5802 §2.2 Normalize(): SASLprep as a stored string. A password SASLprep rejects
    is used as given, consistently for every mechanism, rather than being unusable."""
    try:
        return saslprep(password)
    except SASLprepError:
        return password


class PasswordHasher:
    """The argon2id hash used for plaintext verification. Costs are parameters so tests can
    run with cheap ones; production uses passlib's argon2 defaults (64 MiB, t=3)."""

    def __init__(self, memory_cost: int | None = None, rounds: int | None = None) -> None:
        settings: dict[str, int] = {}
        if memory_cost is not None:
            settings["argon2__memory_cost"] = memory_cost
        if rounds is not None:
            settings["argon2__rounds"] = rounds
        self._context = CryptContext(schemes=["argon2"], **settings)
        # Verified against for unknown users so that they take as long as known ones.
        self.dummy_hash: str = self.hash(os.urandom(16).hex())

    @classmethod
    def for_tests(cls) -> PasswordHasher:
        return cls(memory_cost=1024, rounds=1)

    def hash(self, password: str) -> str:
        return str(self._context.hash(prepare_password(password)))

    def verify(self, password: str, password_hash: str) -> bool:
        """True when `password` matches; False for a mismatch or an unparsable hash."""
        try:
            return bool(self._context.verify(prepare_password(password), password_hash))
        except (ValueError, TypeError):
            return False


def _hash_fn(hash_name: str) -> str:
    if hash_name not in SCRAM_HASHES:
        raise ValueError(f"unsupported SCRAM hash {hash_name!r}")
    return hash_name


def scram_keys(salted_password: bytes, hash_name: str) -> tuple[bytes, bytes, bytes]:
    """(ClientKey, StoredKey, ServerKey) from SaltedPassword (RFC 5802 §3)."""
    h = _hash_fn(hash_name)
    client_key = hmac.digest(salted_password, b"Client Key", h)
    stored_key = hashlib.new(h, client_key).digest()
    server_key = hmac.digest(salted_password, b"Server Key", h)
    return client_key, stored_key, server_key


def salted_password(password: str, salt: bytes, iterations: int, hash_name: str) -> bytes:
    """SaltedPassword := Hi(Normalize(password), salt, i) (RFC 5802 §3); Hi is PBKDF2."""
    h = _hash_fn(hash_name)
    return hashlib.pbkdf2_hmac(h, prepare_password(password).encode("utf-8"), salt, iterations)


def derive_scram_secret(
    password: str,
    hash_name: str,
    salt: bytes | None = None,
    iterations: int = DEFAULT_SCRAM_ITERATIONS,
) -> ScramSecret:
    """The RFC 5802 §3 stored secret for `hash_name` ("sha1" or "sha256")."""
    if iterations < DEFAULT_SCRAM_ITERATIONS:
        raise ValueError("SCRAM iteration count below 4096")
    salt = os.urandom(SCRAM_SALT_SIZE) if salt is None else salt
    _, stored_key, server_key = scram_keys(salted_password(password, salt, iterations, hash_name), hash_name)
    return ScramSecret(salt=salt, iterations=iterations, stored_key=stored_key, server_key=server_key)


def cram_md5_states(password: str) -> bytes:
    """32 bytes: the MD5 states after (K XOR ipad) and after (K XOR opad) (RFC 2104 §2),
    K being the password (hashed first when longer than one block, as HMAC requires)."""
    key = prepare_password(password).encode("utf-8")
    if len(key) > BLOCK_SIZE:
        key = hashlib.md5(key).digest()
    key = key.ljust(BLOCK_SIZE, b"\x00")
    inner = md5_state_after_block(bytes(b ^ 0x36 for b in key))
    outer = md5_state_after_block(bytes(b ^ 0x5C for b in key))
    return inner + outer


def cram_md5_digest(states: bytes, challenge: bytes) -> bytes:
    """HMAC-MD5(password, challenge) finished from `cram_md5_states(password)`."""
    if len(states) != 2 * STATE_SIZE:
        raise ValueError("CRAM-MD5 states must be 32 bytes")
    inner = md5_resume(states[:STATE_SIZE], BLOCK_SIZE, challenge)
    return md5_resume(states[STATE_SIZE:], BLOCK_SIZE, inner)


@dataclass(frozen=True)
class DerivedCredentials:
    """Everything stored for one password."""

    password_hash: str
    scram: dict[str, ScramSecret]
    cram_md5: bytes


def derive_credentials(
    password: str, hasher: PasswordHasher, scram_iterations: int = DEFAULT_SCRAM_ITERATIONS
) -> DerivedCredentials:
    """Slow (argon2 + PBKDF2): run in a thread."""
    return DerivedCredentials(
        password_hash=hasher.hash(password),
        scram={h: derive_scram_secret(password, h, iterations=scram_iterations) for h in SCRAM_HASHES},
        cram_md5=cram_md5_states(password),
    )
