"""CRAM-MD5, EXTERNAL, the advertised list, the factory, and random input through every
server mechanism (hypothesis): only SASLError or AuthError may come out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import succeed

from mailsrv.address import Address
from mailsrv.auth.interfaces import AuthError, InvalidCredentials, LoginIdentity, RateLimited
from mailsrv.sasl import Challenge, SASLError, Success, advertised_mechanisms, make_server_mechanism
from mailsrv.sasl.client import CramMD5Client, LoginClient, PlainClient
from mailsrv.sasl.crammd5 import CramMD5Server
from mailsrv.sasl.server import ALL_MECHANISMS
from mailsrv.tlsutil import ChannelBindings
from tests.sasl.fakes import FakeProvider, result_of

TLS = ChannelBindings(tls_exporter=b"E" * 32, tls_server_end_point=b"S" * 32)


def test_cram_md5_rfc2195_example() -> None:
    m = CramMD5Server(FakeProvider(), "postoffice.reston.mci.net")
    m._challenge = b"<1896.697170952@postoffice.reston.mci.net>"
    assert result_of(m.start(None)) == Challenge(m._challenge)
    step = result_of(m.respond(b"tim b913a602c7eda7a495b4e6e7334d3890"))
    assert isinstance(step, Success) and step.identity.account == "tim"


def test_cram_md5_client_server_and_failures() -> None:
    m = make_server_mechanism("CRAM-MD5", FakeProvider(), ChannelBindings(), hostname="mx.example.org")
    ch = result_of(m.start(None))
    assert isinstance(ch, Challenge) and ch.data.startswith(b"<") and ch.data.endswith(b"@mx.example.org>")
    step = result_of(m.respond(CramMD5Client("alice@example.org", "correct horse").respond(ch.data)))
    assert isinstance(step, Success) and step.identity.account == "alice"
    for response, error in [
        (CramMD5Client("alice", "wrong").respond(ch.data), InvalidCredentials),
        (CramMD5Client("nobody", "x").respond(ch.data), InvalidCredentials),
        (b"alice B913A602C7EDA7A495B4E6E7334D3890", SASLError),
        (b"alice", SASLError),
        (b" b913a602c7eda7a495b4e6e7334d3890", SASLError),
    ]:
        m = make_server_mechanism("CRAM-MD5", FakeProvider(), ChannelBindings())
        ch = result_of(m.start(None))
        with pytest.raises(error):
            result_of(m.respond(response))
    with pytest.raises(SASLError):
        result_of(make_server_mechanism("CRAM-MD5", FakeProvider(), ChannelBindings()).start(b""))


def test_plain_and_login_clients() -> None:
    m = make_server_mechanism("PLAIN", FakeProvider(), TLS)
    step = result_of(m.start(PlainClient("alice", "correct horse", "alias@example.org").initial_response()))
    assert isinstance(step, Success) and str(step.identity.address) == "alias@example.org"
    m = make_server_mechanism("LOGIN", FakeProvider(), TLS)
    c = LoginClient("alice", "correct horse")
    step = result_of(m.start(c.initial_response()))
    while isinstance(step, Challenge):
        step = result_of(m.respond(c.respond(step.data)))
    assert step.identity.account == "alice"


def test_external() -> None:
    alice = LoginIdentity("alice", Address.parse("alice@example.org"))
    p = FakeProvider()
    m = make_server_mechanism("EXTERNAL", p, TLS, external_identity=lambda: alice)
    assert result_of(m.start(None)) == Challenge(b"")
    assert result_of(m.respond(b"")) == Success(alice)
    m = make_server_mechanism("EXTERNAL", p, TLS, external_identity=lambda: succeed(alice))
    step = result_of(m.start(b"alias@example.org"))
    assert isinstance(step, Success) and str(step.identity.address) == "alias@example.org"
    for seam, authzid in [(lambda: alice, b"bob@example.org"), (lambda: None, b""), (None, b"")]:
        m = make_server_mechanism("EXTERNAL", p, TLS, external_identity=seam)
        with pytest.raises(InvalidCredentials):
            result_of(m.start(authzid))


def test_advertised_mechanisms() -> None:
    # Before TLS nothing, not even CRAM-MD5/SCRAM (issue 17 item 9), unless plaintext is allowed.
    assert advertised_mechanisms(tls_active=False, stored_secrets=True, has_client_cert=False) == []
    assert advertised_mechanisms(False, True, False, allow_plaintext=False) == []
    assert advertised_mechanisms(False, True, False, allow_plaintext=True) == [
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "CRAM-MD5",
        "PLAIN",
        "LOGIN",
    ]
    assert advertised_mechanisms(tls_active=True, stored_secrets=True, has_client_cert=True) == [
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "CRAM-MD5",
        "PLAIN",
        "LOGIN",
        "EXTERNAL",
    ]
    assert advertised_mechanisms(tls_active=True, stored_secrets=False, has_client_cert=False) == ["PLAIN", "LOGIN"]
    assert advertised_mechanisms(False, False, False, allow_plaintext=True) == ["PLAIN", "LOGIN"]


def test_factory_respects_offered_list_and_case() -> None:
    offered = advertised_mechanisms(True, True, False, allow_plaintext=False)
    assert make_server_mechanism("scram-sha-1", FakeProvider(), ChannelBindings(), offered=offered).name == (
        "SCRAM-SHA-1"
    )
    with pytest.raises(SASLError):
        make_server_mechanism("PLAIN", FakeProvider(), ChannelBindings(), offered=offered)


def test_order_is_enforced() -> None:
    m = make_server_mechanism("PLAIN", FakeProvider(), TLS)
    with pytest.raises(SASLError):
        result_of(m.respond(b"\x00alice\x00correct horse"))
    result_of(m.start(None))
    with pytest.raises(SASLError):
        result_of(m.start(None))


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(ALL_MECHANISMS),
    st.one_of(st.none(), st.binary(max_size=200)),
    st.lists(
        st.one_of(
            st.binary(max_size=200),
            st.sampled_from([b"n,,n=user,r=abc", b"p=tls-exporter,,n=user,r=abc", b"c=biws,r=abc,p=AAAA"]),
        ),
        max_size=4,
    ),
)
def test_random_input_only_sasl_or_auth_errors(name: str, initial: bytes | None, responses: list[bytes]) -> None:
    alice = LoginIdentity("alice", None)
    m = make_server_mechanism(name, FakeProvider(), TLS, external_identity=lambda: alice)
    try:
        step = result_of(m.start(initial))
        for data in responses:
            if isinstance(step, Success):
                with pytest.raises(SASLError):
                    result_of(m.respond(data))
                return
            step = result_of(m.respond(data))
    except (SASLError, AuthError):
        return


@pytest.mark.parametrize(
    ("name", "initial", "responses"),
    [
        ("PLAIN", b"\x00alice\x00wrong", []),
        ("LOGIN", b"alice", [b"wrong"]),
        ("CRAM-MD5", None, [b"alice 00000000000000000000000000000000"]),
        ("SCRAM-SHA-256", b"n,,n=alice,r=abc", []),
    ],
)
def test_login_name_and_check_hook(name: str, initial: bytes | None, responses: list[bytes]) -> None:
    seen: list[str] = []

    def check(login: str) -> None:
        seen.append(login)
        raise RateLimited("slow down")

    m = make_server_mechanism(name, FakeProvider(), TLS, check_login=check)
    with pytest.raises(RateLimited):
        step = result_of(m.start(initial))
        for data in responses:
            step = result_of(m.respond(data))
        assert step is None
    assert seen == ["alice"]
    assert m.login_name == "alice"
    # Without the hook the same exchange fails on the credentials, login_name still set.
    m = make_server_mechanism(name, FakeProvider(), TLS)
    with pytest.raises((InvalidCredentials, SASLError)):
        step = result_of(m.start(initial))
        for data in responses:
            step = result_of(m.respond(data))
        if isinstance(step, Challenge) and name.startswith("SCRAM"):
            raise SASLError("stop")
    assert m.login_name == "alice"


async def _drive(name: str, client: object) -> tuple[LoginIdentity, list[bytes]]:
    from mailsrv.sasl.exchange import run_exchange

    seen: list[bytes] = []

    async def send(challenge: bytes) -> bytes:
        seen.append(challenge)
        if challenge.startswith(b"v="):
            client.verify_success(challenge)  # type: ignore[attr-defined]
            return b""
        return client.respond(challenge)  # type: ignore[attr-defined, no-any-return]

    m = make_server_mechanism(name, FakeProvider(), TLS)
    identity = await run_exchange(m, client.initial_response(), send)  # type: ignore[attr-defined]
    return identity, seen


def test_run_exchange() -> None:
    from twisted.internet.defer import Deferred

    from mailsrv.sasl.client import ScramClient

    def run(coro: object) -> object:
        return result_of(Deferred.fromCoroutine(coro))  # type: ignore[arg-type]

    identity, seen = run(_drive("SCRAM-SHA-256", ScramClient("SCRAM-SHA-256", "alice", "correct horse")))  # type: ignore[misc]
    assert identity.account == "alice" and seen[-1].startswith(b"v=")
    identity, seen = run(_drive("LOGIN", LoginClient("alice", "correct horse")))  # type: ignore[misc]
    assert seen == [b"Username:", b"Password:"]
