"""SCRAM server and client: RFC 5802/7677 exchanges, scramp interoperability both ways,
downgrade detection, channel binding checks, unknown users."""

from __future__ import annotations

import base64

import pytest
import scramp

from mailsrv.auth.interfaces import InvalidCredentials
from mailsrv.sasl import Challenge, SASLError, Success, make_server_mechanism
from mailsrv.sasl import scram as scram_module
from mailsrv.sasl.client import ScramClient, choose_client_mechanism
from mailsrv.tlsutil import ChannelBindings
from tests.sasl.fakes import RFC_SALTS, FakeProvider, result_of

NO_TLS = ChannelBindings()
TLS13 = ChannelBindings(tls_exporter=b"E" * 32, tls_server_end_point=b"S" * 32)
KEY = b"k" * 32


def server(name: str, bindings: ChannelBindings = NO_TLS, provider: FakeProvider | None = None):  # type: ignore[no-untyped-def]
    return make_server_mechanism(name, provider or FakeProvider(), bindings, fake_salt_key=KEY)


@pytest.mark.parametrize(
    ("mech", "cnonce", "snonce", "first", "final", "v"),
    [
        (
            "SCRAM-SHA-1",
            "fyko+d2lbbFgONRv9qkxdawL",
            "3rfcNHYJY1ZVvWVs7j",
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        ),
        (
            "SCRAM-SHA-256",
            "rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        ),
    ],
)
def test_rfc_exchange(
    monkeypatch: pytest.MonkeyPatch, mech: str, cnonce: str, snonce: str, first: str, final: str, v: str
) -> None:
    """The exact messages of RFC 5802 §5 / RFC 7677 §3, both for our server and client."""
    monkeypatch.setattr(scram_module, "make_nonce", lambda: snonce)
    m = server(mech)
    assert result_of(m.start(None)) == Challenge(b"")
    assert result_of(m.respond(f"n,,n=user,r={cnonce}".encode())) == Challenge(first.encode())
    step = result_of(m.respond(final.encode()))
    assert isinstance(step, Success)
    assert step.identity.account == "user"
    assert step.final_data == v.encode()

    client = ScramClient(mech, "user", "pencil", nonce=cnonce)
    assert client.initial_response() == f"n,,n=user,r={cnonce}".encode()
    assert client.respond(first.encode()) == final.encode()
    client.verify_success(v.encode())
    with pytest.raises(SASLError):
        client.verify_success(b"v=" + base64.b64encode(b"x" * 20))


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
def test_scramp_client_against_our_server(mech: str) -> None:
    for password, ok in [("pencil", True), ("pencil!", False)]:
        c = scramp.ScramClient([mech], "user", password)
        m = server(mech)
        step = result_of(m.start(c.get_client_first().encode()))
        assert isinstance(step, Challenge)
        c.set_server_first(step.data.decode())
        if not ok:
            with pytest.raises(InvalidCredentials):
                result_of(m.respond(c.get_client_final().encode()))
            continue
        step = result_of(m.respond(c.get_client_final().encode()))
        assert isinstance(step, Success) and step.final_data is not None
        c.set_server_final(step.final_data.decode())  # raises if the signature is wrong


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
def test_our_client_against_scramp_server(mech: str) -> None:
    sm = scramp.ScramMechanism(mech)
    salt, stored, server_key, iterations = sm.make_auth_info("p\u00e4ssword", iteration_count=4096)
    s = sm.make_server(lambda username: (salt, stored, server_key, iterations))
    c = ScramClient(mech, "someone", "p\u00e4ssword")
    s.set_client_first(c.initial_response().decode())  # type: ignore[union-attr]
    s.set_client_final(c.respond(s.get_server_first().encode()).decode())
    c.verify_success(s.get_server_final().encode())


def test_plus_with_scramp_and_each_binding_type(monkeypatch: pytest.MonkeyPatch) -> None:
    # scramp does not know tls-exporter (it refuses the name); the SCRAM maths is the same.
    monkeypatch.setattr(scramp.core.CbName, "SUPPORTED_TYPES", scramp.core.CbName.SUPPORTED_TYPES | {"tls-exporter"})
    monkeypatch.setattr(scramp.core.CbName, "UNSUPPORTED_TYPES", frozenset())
    for mech in ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"]:
        for cb_type in ["tls-exporter", "tls-server-end-point"]:
            data = TLS13.get(cb_type)
            assert data is not None
            c = scramp.ScramClient([mech], "user", "pencil", channel_binding=(cb_type, data))
            m = server(mech, TLS13)
            step = result_of(m.start(c.get_client_first().encode()))
            assert isinstance(step, Challenge)
            c.set_server_first(step.data.decode())
            step = result_of(m.respond(c.get_client_final().encode()))
            assert isinstance(step, Success) and step.final_data
            c.set_server_final(step.final_data.decode())
            # Different binding data (e.g. a TLS interceptor's session) fails.
            c = scramp.ScramClient([mech], "user", "pencil", channel_binding=(cb_type, b"X" * 32))
            m = server(mech, TLS13)
            c.set_server_first(result_of(m.start(c.get_client_first().encode())).data.decode())  # type: ignore[union-attr]
            with pytest.raises(SASLError, match="channel binding"):
                result_of(m.respond(c.get_client_final().encode()))


def exchange(client: ScramClient, m) -> Success:  # type: ignore[no-untyped-def]
    step = result_of(m.start(client.initial_response()))
    while isinstance(step, Challenge):
        step = result_of(m.respond(client.respond(step.data)))
    client.verify_success(step.final_data)
    return step


def test_our_client_and_server_plus_and_authzid() -> None:
    for cb_type in TLS13.types():
        c = ScramClient(
            "SCRAM-SHA-256-PLUS", "alice", "correct horse", "alias@example.org", (cb_type, TLS13.get(cb_type) or b"")
        )
        step = exchange(c, server("SCRAM-SHA-256-PLUS", TLS13))
        assert step.identity.account == "alice"
        assert str(step.identity.address) == "alias@example.org"
    c = ScramClient("SCRAM-SHA-1", "alice", "correct horse", "bob@example.org")
    with pytest.raises(InvalidCredentials):
        exchange(c, server("SCRAM-SHA-1"))


def test_gs2_flags_and_downgrade() -> None:
    # "y" without TLS (no -PLUS offered): fine.
    exchange(ScramClient("SCRAM-SHA-256", "user", "pencil", client_supports_binding=True), server("SCRAM-SHA-256"))
    # "y" while we offered -PLUS: a downgrade attack stripped it from the list (RFC 5802 §6).
    c = ScramClient("SCRAM-SHA-256", "user", "pencil", client_supports_binding=True)
    with pytest.raises(SASLError, match="downgrade"):
        exchange(c, server("SCRAM-SHA-256", TLS13))
    # "n" over TLS is allowed (the client cannot bind).
    exchange(ScramClient("SCRAM-SHA-256", "user", "pencil"), server("SCRAM-SHA-256", TLS13))
    # -PLUS with "n", and "p=" on a plain mechanism, and an unknown binding type.
    for mech, first in [
        ("SCRAM-SHA-256-PLUS", b"n,,n=user,r=abc"),
        ("SCRAM-SHA-256-PLUS", b"y,,n=user,r=abc"),
        ("SCRAM-SHA-256", b"p=tls-exporter,,n=user,r=abc"),
        ("SCRAM-SHA-256-PLUS", b"p=tls-unique,,n=user,r=abc"),
        ("SCRAM-SHA-256", b"n,,m=ext,n=user,r=abc"),
        ("SCRAM-SHA-256", b"n,x=1,n=user,r=abc"),
        ("SCRAM-SHA-256", b"n,,n=us=2Xer,r=abc"),
        ("SCRAM-SHA-256", b"n,,n=user,r=a,b"),
        ("SCRAM-SHA-256", b"n,,r=abc,n=user"),
    ]:
        with pytest.raises(SASLError):
            result_of(server(mech, TLS13).start(first))


def test_tampered_final_messages() -> None:
    c = ScramClient("SCRAM-SHA-1", "user", "pencil")
    m = server("SCRAM-SHA-1")
    step = result_of(m.start(c.initial_response()))
    final = c.respond(step.data)  # type: ignore[union-attr]
    bad_nonce = final.replace(b",r=", b",r=x", 1)
    with pytest.raises(SASLError, match="nonce"):
        result_of(m.respond(bad_nonce))
    m = server("SCRAM-SHA-1")
    c = ScramClient("SCRAM-SHA-1", "user", "pencil")
    step = result_of(m.start(c.initial_response()))
    final = c.respond(step.data)  # type: ignore[union-attr]
    with pytest.raises(SASLError, match="channel binding"):
        result_of(m.respond(final.replace(b"c=biws", b"c=eSws")))


def test_unknown_user_gets_stable_fake_salt_and_fails() -> None:
    def first(mech_key: bytes) -> str:
        m = make_server_mechanism("SCRAM-SHA-256", FakeProvider(), NO_TLS, fake_salt_key=mech_key)
        step = result_of(m.start(b"n,,n=nobody,r=abcdef"))
        assert isinstance(step, Challenge)
        return step.data.decode().split(",")[1]

    assert first(KEY) == first(KEY)
    assert first(KEY) != first(b"other key".ljust(32))
    c = ScramClient("SCRAM-SHA-256", "nobody", "x")
    with pytest.raises(InvalidCredentials):
        exchange(c, server("SCRAM-SHA-256"))


def test_scram_known_user_salt_is_real() -> None:
    step = result_of(server("SCRAM-SHA-1").start(b"n,,n=user,r=abcdef"))
    assert isinstance(step, Challenge)
    assert f"s={base64.b64encode(RFC_SALTS['sha1']).decode()}" in step.data.decode()


def test_client_rejects_bad_server_first() -> None:
    for bad in [
        b"r=other,s=QSXC,i=4096",
        b"r=NONCE,s=QSXC,i=4096",
        b"r=NONCEx,s=!!,i=4096",
        b"r=NONCEx,s=QSXC,i=0",
        b"r=NONCEx,s=QSXC,i=99999999",
        b"m=x,r=NONCEx,s=QSXC,i=4096",
    ]:
        c = ScramClient("SCRAM-SHA-1", "user", "pencil", nonce="NONCE")
        c.initial_response()
        with pytest.raises(SASLError):
            c.respond(bad)


def test_choose_client_mechanism() -> None:
    pick = choose_client_mechanism
    assert pick(["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256-PLUS"], "u", "p", TLS13).name == "SCRAM-SHA-256-PLUS"
    assert pick(["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256-PLUS"], "u", "p", NO_TLS).name == "SCRAM-SHA-1"
    assert pick(["login", "cram-md5"], "u", "p").name == "CRAM-MD5"
    assert pick(["LOGIN", "PLAIN"], "u", "p").name == "PLAIN"
    with pytest.raises(SASLError):
        pick(["PLAIN", "LOGIN"], "u", "p", allow_plaintext=False)
    with pytest.raises(SASLError):
        pick(["GSSAPI"], "u", "p")
    # With TLS but no -PLUS offered, the client says "y" (it could bind).
    mech = pick(["SCRAM-SHA-256"], "u", "p", TLS13)
    assert mech.initial_response().startswith(b"y,,")  # type: ignore[union-attr]
