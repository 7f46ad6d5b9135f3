"""Property tests: the mail-authentication parsers and the SMTP reply reader never raise on
arbitrary input, and results stay within their documented shapes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import task
from twisted.internet.defer import ensureDeferred
from twisted.internet.testing import StringTransport

from mailsrv.dns.dkim import verify_dkim_sync
from mailsrv.dns.dmarc import from_domain, parse_record
from mailsrv.dns.mtasts import parse_policy, parse_txt
from mailsrv.dns.resolver import Resolver
from mailsrv.dns.spf import check_spf_sync
from mailsrv.smtpclient.protocol import SMTPClientProtocol
from mailsrv.smtpclient.reply import Reply, SMTPFailure
from tests.dnsserver import DNSServer

TAGGY = st.text(alphabet="v=DMARC1;p rejectquaint sp adkim aspf pct 0123456789 STSv1 mx: *.\r\nid", max_size=200)


@given(st.one_of(TAGGY, st.text(max_size=200)))
def test_dmarc_record_never_raises(text: str) -> None:
    r = parse_record(text)
    if r is not None:
        assert r.policy in ("none", "quarantine", "reject") and 0 <= r.pct <= 100


@given(st.binary(max_size=300))
def test_from_domain_never_raises(raw: bytes) -> None:
    d = from_domain(b"From: " + raw + b"\r\n\r\nbody")
    assert d is None or (d and d == d.lower())


@given(st.one_of(TAGGY, st.text(max_size=300)))
def test_mtasts_parsers_never_raise(text: str) -> None:
    p = parse_policy(text)
    if p is not None:
        assert p.mode in ("enforce", "testing", "none") and p.max_age >= 0
        p.allows("mx.example")
    parse_txt((text.encode("utf-8", "replace"),))


class _NoDNS(Resolver):
    def __init__(self) -> None:
        super().__init__(None, [("127.0.0.1", 9)], timeout=0.01)

    def query_sync(self, name: str, rdtype: str) -> tuple[Any, ...]:
        return ()


@settings(max_examples=50)
@given(st.binary(max_size=300))
def test_dkim_verify_never_raises(junk: bytes) -> None:
    message = b"DKIM-Signature: " + junk + b"\r\nFrom: a@a.example\r\n\r\nbody\r\n"
    for v in verify_dkim_sync(_NoDNS(), message):
        assert v.result in ("pass", "fail", "neutral", "temperror", "permerror", "policy")
        assert v.result != "pass"


@given(st.lists(st.binary(max_size=80), max_size=20))
def test_reply_reader_never_raises(chunks: list[bytes]) -> None:
    clock = task.Clock()
    proto = SMTPClientProtocol(clock)
    transport = StringTransport()
    proto.makeConnection(transport)
    for c in chunks:
        proto.dataReceived(c)
    replies: list[Reply] = []
    errors: list[SMTPFailure] = []

    async def drain() -> None:
        while True:
            try:
                replies.append(await proto.next_reply(1))
            except SMTPFailure as e:
                errors.append(e)
                return

    ensureDeferred(drain())
    clock.advance(2)
    assert errors and all(200 <= r.code <= 599 for r in replies)


def test_reply_reader_multiline_and_split() -> None:
    clock = task.Clock()
    proto = SMTPClientProtocol(clock)
    proto.makeConnection(StringTransport())
    for byte in b"250-first\r\n250-SIZE 10\r\n250 last\r\n220 x\r\n":
        proto.dataReceived(bytes([byte]))
    got: list[Reply] = []

    async def take() -> None:
        got.append(await proto.next_reply(1))
        got.append(await proto.next_reply(1))

    ensureDeferred(take())
    assert got == [Reply(250, ("first", "SIZE 10", "last")), Reply(220, ("x",))]


SPF_TERMS = st.sampled_from(
    [
        "ip4:192.0.2.0/24",
        "ip6:2001:db8::/32",
        "a",
        "mx",
        "ptr",
        "include:i.s.example",
        "exists:%{i}.e.s.example",
        "redirect=r.s.example",
        "-all",
        "~all",
        "?all",
        "+all",
        "a:%{d}",
        "exp=x.s.example",
        "bogus",
        "ip4:999.1.1.1",
        "a/33",
        "mx:m.s.example/24//64",
        "%{z}",
        "",
    ]
)


@settings(max_examples=40, deadline=None)
@given(st.lists(SPF_TERMS, max_size=8), st.lists(SPF_TERMS, max_size=4))
def test_spf_random_records_give_a_result(terms: list[str], included: list[str]) -> None:
    with DNSServer() as server:
        server.set("s.example", "TXT", "v=spf1 " + " ".join(terms))
        server.set("i.s.example", "TXT", "v=spf1 " + " ".join(included))
        server.set("r.s.example", "TXT", "v=spf1 include:s.example")
        server.set("s.example", "MX", "10 m.s.example.")
        server.set("m.s.example", "A", "192.0.2.7")
        resolver = Resolver(None, [server.address], timeout=0.3)
        v = check_spf_sync(resolver, "192.0.2.7", "a@s.example", "h.example")
    assert v.result in ("none", "neutral", "pass", "fail", "softfail", "temperror", "permerror")
