"""SCRAM-SHA-1, SCRAM-SHA-256 and their -PLUS variants, server side (RFC 5802, RFC 7677).

Exchange (RFC 5802 §3, §5):
  C: gs2-header client-first-message-bare      ("n,,n=user,r=cnonce")
  S: server-first-message                       ("r=cnonce+snonce,s=salt,i=4096")
  C: client-final-message                       ("c=biws,r=cnonce+snonce,p=proof")
  S: server-final-message (Success.final_data)  ("v=signature")

Channel binding (RFC 5802 §6, RFC 5056): the -PLUS mechanisms require gs2 flag
"p=<type>" with a type this connection has (tls-exporter, RFC 9266; tls-server-end-point,
RFC 5929 §4.1) and the client's "c=" must carry our binding data. The plain mechanisms
accept "n" and "y"; "y" means the client could bind but believes the server cannot, so
when we did advertise -PLUS it signals a downgrade attack and the exchange fails.

Unknown users: the provider answers InvalidCredentials, and the server carries on with a
salt derived from the user name and a per-process key, so a client cannot tell unknown
from known users by the server-first-message; the proof then never verifies.

Invariant: only the StoredKey/ServerKey are used; the password is never needed here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from mailsrv.auth.interfaces import AccountProvider, InvalidCredentials, LoginIdentity, ScramSecret
from mailsrv.auth.loginname import login_key
from mailsrv.auth.passwords import DEFAULT_SCRAM_ITERATIONS, SCRAM_SALT_SIZE
from mailsrv.auth.saslprep import SASLprepError, saslprep
from mailsrv.sasl.base import MechanismBase, authorize
from mailsrv.sasl.mechanism import Challenge, LoginCheck, SASLError, Step, Success, decode_utf8
from mailsrv.tlsutil import ChannelBindings

HASHES = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}


def mechanism_hash(name: str) -> tuple[str, bool]:
    """("sha1"|"sha256", plus) for a SCRAM mechanism name; KeyError otherwise."""
    plus = name.endswith("-PLUS")
    return HASHES[name.removesuffix("-PLUS")], plus


def encode_saslname(name: str) -> str:
    """RFC 5802 §5.1: "," as "=2C" and "=" as "=3D"."""
    return name.replace("=", "=3D").replace(",", "=2C")


def decode_saslname(text: str) -> str:
    """Inverse of `encode_saslname`; any other "=" escape is malformed (RFC 5802 §5.1)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "=":
            esc = text[i : i + 3]
            if esc == "=2C":
                out.append(",")
            elif esc == "=3D":
                out.append("=")
            else:
                raise SASLError("invalid escape in SCRAM name")
            i += 3
            continue
        if ch == ",":
            raise SASLError("unescaped comma in SCRAM name")
        out.append(ch)
        i += 1
    return "".join(out)


def b64decode_strict(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise SASLError(f"invalid base64 in {what}") from None


def valid_nonce(nonce: str) -> bool:
    # RFC 5802 §7: printable ASCII except ",".
    return bool(nonce) and all(0x21 <= ord(c) <= 0x7E and c != "," for c in nonce)


def valid_extensions(attrs: list[str]) -> bool:
    # RFC 5802 §7: extension = attr-val, attr-val = ALPHA "=" value.
    return all(len(a) >= 2 and a[1] == "=" and a[0].isascii() and a[0].isalpha() for a in attrs)


def make_nonce() -> str:
    return base64.b64encode(os.urandom(18)).decode("ascii")


def _prep_username(name: str) -> str:
    # RFC 5802 §5.1: the client SASLprep'd it (as a query string); tolerate clients that
    # did not by preparing again, falling back to the name as sent.
    try:
        prepared = saslprep(name, allow_unassigned=True)
    except SASLprepError:
        return name
    return prepared or name


class ScramServer(MechanismBase):
    def __init__(
        self,
        name: str,
        provider: AccountProvider,
        channel_bindings: ChannelBindings,
        plus_advertised: bool,
        fake_salt_key: bytes,
        check_login: LoginCheck | None = None,
    ) -> None:
        super().__init__(check_login)
        self.name = name
        self._hash, self._plus = mechanism_hash(name)
        self._provider = provider
        self._bindings = channel_bindings
        self._plus_advertised = plus_advertised
        self._fake_salt_key = fake_salt_key
        # Filled in by the client-first-message.
        self._gs2_header = b""
        self._cb_data = b""
        self._authzid = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._identity: LoginIdentity | None = None
        self._secret: ScramSecret | None = None

    async def _start(self, initial: bytes | None) -> Step:
        if initial is None or initial == b"":
            # Client-first mechanism: an empty challenge asks for the client-first-message.
            # (An empty initial response is treated the same way, as other servers do.)
            return Challenge(b"")
        return await self._client_first(initial)

    async def _respond(self, data: bytes) -> Step:
        if not self._server_first:
            return await self._client_first(data)
        return await self._client_final(data)

    # --- client-first-message (RFC 5802 §5.1, §7) --------------------------------------
    def _parse_gs2(self, flag: str) -> None:
        if flag == "n":
            if self._plus:
                raise SASLError("channel binding required by this mechanism")
        elif flag == "y":
            if self._plus:
                raise SASLError("channel binding required by this mechanism")
            if self._plus_advertised:
                # RFC 5802 §6: the client saw no -PLUS, but we offered it: downgrade.
                raise SASLError("channel binding downgrade detected")
        elif flag.startswith("p="):
            if not self._plus:
                raise SASLError("channel binding not supported by this mechanism")
            cb_type = flag[2:]
            data = self._bindings.get(cb_type)
            if data is None:
                raise SASLError("unsupported channel binding type")
            self._cb_data = data
        else:
            raise SASLError("invalid GS2 header")

    async def _client_first(self, data: bytes) -> Step:
        text = decode_utf8(data, "SCRAM message")
        parts = text.split(",", 2)
        if len(parts) != 3:
            raise SASLError("malformed SCRAM client-first-message")
        flag, authzid_part, bare = parts
        self._parse_gs2(flag)
        if authzid_part:
            if not authzid_part.startswith("a="):
                raise SASLError("malformed SCRAM authzid")
            self._authzid = decode_saslname(authzid_part[2:])
        self._gs2_header = f"{flag},{authzid_part},".encode()
        attrs = bare.split(",")
        if attrs[0].startswith("m="):
            # RFC 5802 §5.1: mandatory extensions we do not know must fail the exchange.
            raise SASLError("unsupported mandatory SCRAM extension")
        if len(attrs) < 2 or not attrs[0].startswith("n=") or not attrs[1].startswith("r="):
            raise SASLError("malformed SCRAM client-first-message")
        username = _prep_username(decode_saslname(attrs[0][2:]))
        client_nonce = attrs[1][2:]
        if not username or not valid_nonce(client_nonce) or not valid_extensions(attrs[2:]):
            raise SASLError("malformed SCRAM client-first-message")
        self._client_first_bare = bare
        self._got_login_name(username)
        try:
            self._identity, self._secret = await self._provider.scram_secret(username, self._hash)
            salt, iterations = self._secret.salt, self._secret.iterations
        except InvalidCredentials:
            # Continue with a stable fake salt; the exchange fails at the proof.
            self._identity, self._secret = None, None
            # Keyed on the normalised name, so spellings of one unknown name get one salt.
            salt = hmac.digest(self._fake_salt_key, login_key(username).encode("utf-8"), "sha256")[:SCRAM_SALT_SIZE]
            iterations = DEFAULT_SCRAM_ITERATIONS
        self._nonce = client_nonce + make_nonce()
        salt_b64 = base64.b64encode(salt).decode("ascii")
        self._server_first = f"r={self._nonce},s={salt_b64},i={iterations}"
        return Challenge(self._server_first.encode("ascii"))

    # --- client-final-message (RFC 5802 §5.1, §3) --------------------------------------
    async def _client_final(self, data: bytes) -> Step:
        text = decode_utf8(data, "SCRAM message")
        idx = text.rfind(",p=")
        if idx < 0:
            raise SASLError("malformed SCRAM client-final-message")
        without_proof, proof_b64 = text[:idx], text[idx + 3 :]
        attrs = without_proof.split(",")
        if (
            len(attrs) < 2
            or not attrs[0].startswith("c=")
            or not attrs[1].startswith("r=")
            or not valid_extensions(attrs[2:])
        ):
            raise SASLError("malformed SCRAM client-final-message")
        cbind_input = b64decode_strict(attrs[0][2:], "channel binding")
        proof = b64decode_strict(proof_b64, "proof")
        if attrs[1][2:] != self._nonce:
            raise SASLError("SCRAM nonce mismatch")
        if not hmac.compare_digest(cbind_input, self._gs2_header + self._cb_data):
            # RFC 5802 §6: wrong gs2 header or channel binding data (e.g. TLS interception).
            raise SASLError("channel binding mismatch")
        if self._identity is None or self._secret is None:
            raise InvalidCredentials()
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        secret = self._secret
        client_signature = hmac.digest(secret.stored_key, auth_message, self._hash)
        if len(proof) != len(client_signature):
            raise InvalidCredentials()
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        if not hmac.compare_digest(hashlib.new(self._hash, client_key).digest(), secret.stored_key):
            raise InvalidCredentials()
        identity = await authorize(self._provider, self._identity, self._authzid)
        server_signature = hmac.digest(secret.server_key, auth_message, self._hash)
        return Success(identity, b"v=" + base64.b64encode(server_signature))
