"""Client-side SASL mechanisms, for our SMTP client (queue delivery to a smarthost) and
`mailsrv sendmail`: PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1/256 and -PLUS.

Like the server side they work on raw bytes; the protocol code does base64 and framing.
A client mechanism is synchronous (the password is at hand; PBKDF2 with 4096 rounds takes
milliseconds):

    mech = choose_client_mechanism(server_offers, user, password, bindings)
    first = mech.initial_response()           # None: wait for the first challenge
    ... reply = mech.respond(challenge) for each challenge ...
    mech.verify_success(final_data)          # SCRAM checks the server signature

`respond` and `verify_success` raise SASLError when the server misbehaves (bad nonce,
wrong server signature, server-final "e=" error).
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Sequence
from typing import Protocol

from mailsrv.auth.passwords import cram_md5_digest, cram_md5_states, salted_password, scram_keys
from mailsrv.auth.saslprep import SASLprepError, saslprep
from mailsrv.sasl.mechanism import SASLError, decode_utf8
from mailsrv.sasl.scram import b64decode_strict, encode_saslname, make_nonce, mechanism_hash, valid_nonce
from mailsrv.tlsutil import ChannelBindings

# Iteration counts above this from a server are refused: a hostile server could make us burn CPU.
MAX_CLIENT_ITERATIONS = 1_000_000


class ClientMechanism(Protocol):
    name: str

    def initial_response(self) -> bytes | None:
        """The initial response to send with the AUTH command, or None (wait for a challenge)."""

    def respond(self, challenge: bytes) -> bytes:
        """The response to a server challenge."""

    def verify_success(self, final_data: bytes | None) -> None:
        """Checks the server's additional data with success (SCRAM); SASLError if wrong."""


class PlainClient:
    name = "PLAIN"

    def __init__(self, username: str, password: str, authzid: str = "") -> None:
        self._message = f"{authzid}\x00{username}\x00{password}".encode()
        self._sent = False

    def initial_response(self) -> bytes | None:
        self._sent = True
        return self._message

    def respond(self, challenge: bytes) -> bytes:
        if self._sent:
            raise SASLError("unexpected challenge for PLAIN")
        self._sent = True
        return self._message

    def verify_success(self, final_data: bytes | None) -> None:
        if final_data:
            raise SASLError("unexpected data with PLAIN success")


class LoginClient:
    """Answers the user name first, then the password, whatever the prompts say (servers
    word them differently)."""

    name = "LOGIN"

    def __init__(self, username: str, password: str) -> None:
        self._answers = [username.encode(), password.encode()]

    def initial_response(self) -> bytes | None:
        return None

    def respond(self, challenge: bytes) -> bytes:
        if not self._answers:
            raise SASLError("unexpected challenge for LOGIN")
        return self._answers.pop(0)

    def verify_success(self, final_data: bytes | None) -> None:
        return None


class CramMD5Client:
    name = "CRAM-MD5"

    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._states = cram_md5_states(password)
        self._done = False

    def initial_response(self) -> bytes | None:
        return None

    def respond(self, challenge: bytes) -> bytes:
        if self._done:
            raise SASLError("unexpected challenge for CRAM-MD5")
        self._done = True
        digest = cram_md5_digest(self._states, challenge).hex()
        return f"{self._username} {digest}".encode()

    def verify_success(self, final_data: bytes | None) -> None:
        return None


class ScramClient:
    """RFC 5802 client. `channel_binding` is (type, data) for -PLUS; for the plain
    variants, `client_supports_binding` sets the gs2 flag "y" (we could bind but the
    server offered no -PLUS) instead of "n" (RFC 5802 §6)."""

    def __init__(
        self,
        name: str,
        username: str,
        password: str,
        authzid: str = "",
        channel_binding: tuple[str, bytes] | None = None,
        client_supports_binding: bool = False,
        nonce: str | None = None,
    ) -> None:
        self.name = name.upper()
        self._hash, plus = mechanism_hash(self.name)
        if plus and channel_binding is None:
            raise ValueError("-PLUS needs channel binding data")
        self._password = password
        if plus:
            assert channel_binding is not None
            flag = f"p={channel_binding[0]}"
            self._cb_data = channel_binding[1]
        else:
            flag = "y" if client_supports_binding else "n"
            self._cb_data = b""
        authz = f"a={encode_saslname(authzid)}" if authzid else ""
        self._gs2_header = f"{flag},{authz},"
        try:
            prepared_user = saslprep(username, allow_unassigned=True)
        except SASLprepError:
            prepared_user = username
        self._nonce = nonce if nonce is not None else make_nonce()
        self._client_first_bare = f"n={encode_saslname(prepared_user)},r={self._nonce}"
        self._server_signature: bytes | None = None
        self._step = 0

    def initial_response(self) -> bytes | None:
        self._step = 1
        return (self._gs2_header + self._client_first_bare).encode()

    def respond(self, challenge: bytes) -> bytes:
        if self._step == 0:
            if challenge:
                raise SASLError("SCRAM server must not send data first")
            return self.initial_response() or b""
        if self._step != 1:
            raise SASLError("unexpected SCRAM challenge")
        self._step = 2
        server_first = decode_utf8(challenge, "server-first-message")
        attrs = server_first.split(",")
        if attrs and attrs[0].startswith("m="):
            raise SASLError("unsupported mandatory SCRAM extension")
        if len(attrs) < 3 or not (
            attrs[0].startswith("r=") and attrs[1].startswith("s=") and attrs[2].startswith("i=")
        ):
            raise SASLError("malformed server-first-message")
        nonce = attrs[0][2:]
        if not nonce.startswith(self._nonce) or len(nonce) <= len(self._nonce) or not valid_nonce(nonce):
            raise SASLError("server nonce does not extend ours")
        salt = b64decode_strict(attrs[1][2:], "salt")
        try:
            iterations = int(attrs[2][2:])
        except ValueError:
            raise SASLError("invalid iteration count") from None
        if not 1 <= iterations <= MAX_CLIENT_ITERATIONS or not salt:
            raise SASLError("unacceptable salt or iteration count")
        cbind = base64.b64encode(self._gs2_header.encode() + self._cb_data).decode("ascii")
        without_proof = f"c={cbind},r={nonce}"
        auth_message = f"{self._client_first_bare},{server_first},{without_proof}".encode()
        client_key, stored_key, server_key = scram_keys(
            salted_password(self._password, salt, iterations, self._hash), self._hash
        )
        signature = hmac.digest(stored_key, auth_message, self._hash)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = hmac.digest(server_key, auth_message, self._hash)
        return f"{without_proof},p={base64.b64encode(proof).decode('ascii')}".encode()

    def verify_success(self, final_data: bytes | None) -> None:
        if self._server_signature is None or final_data is None:
            raise SASLError("SCRAM exchange incomplete")
        text = decode_utf8(final_data, "server-final-message")
        if text.startswith("e="):
            raise SASLError(f"server reported SCRAM error: {text[2:60]}")
        if not text.startswith("v="):
            raise SASLError("malformed server-final-message")
        got = b64decode_strict(text[2:].split(",")[0], "server signature")
        if not hmac.compare_digest(got, self._server_signature):
            raise SASLError("server signature mismatch: the server does not know our secret")


# Our preference when the server offers several.
CLIENT_PREFERENCE = (
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "CRAM-MD5",
    "PLAIN",
    "LOGIN",
)


def choose_client_mechanism(
    offered: Sequence[str],
    username: str,
    password: str,
    channel_bindings: ChannelBindings | None = None,
    allow_plaintext: bool = True,
    authzid: str = "",
) -> ClientMechanism:
    """The strongest mechanism both sides support. `channel_bindings` are our TLS
    connection's (client side); `allow_plaintext` False refuses PLAIN/LOGIN (use it
    without TLS). SASLError when nothing fits."""
    offered_upper = {m.upper() for m in offered}
    bindings = channel_bindings or ChannelBindings()
    for name in CLIENT_PREFERENCE:
        if name not in offered_upper:
            continue
        if name.endswith("-PLUS"):
            types = bindings.types()
            if not types:
                continue
            data = bindings.get(types[0])
            assert data is not None
            return ScramClient(name, username, password, authzid, channel_binding=(types[0], data))
        if name.startswith("SCRAM-"):
            return ScramClient(name, username, password, authzid, client_supports_binding=bool(bindings))
        if name == "CRAM-MD5" and not authzid:
            return CramMD5Client(username, password)
        if name in ("PLAIN", "LOGIN") and allow_plaintext:
            if name == "PLAIN":
                return PlainClient(username, password, authzid)
            if not authzid:
                return LoginClient(username, password)
    raise SASLError("no usable SASL mechanism offered")
