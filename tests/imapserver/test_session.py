"""Protocol tests of the session over StringTransport (no sockets)."""

from __future__ import annotations

import zlib
from pathlib import Path

from mailsrv.config.types import LimitsConfig
from tests.imapserver.harness import Client, make_server, tagged


def test_greeting_capability_noop_logout(tmp_path: Path) -> None:
    c = Client(make_server(tmp_path))
    assert c.greeting.startswith(b"* OK [CAPABILITY IMAP4rev2 IMAP4rev1 ")
    out = c.cmd("a CAPABILITY")
    assert b"* CAPABILITY IMAP4rev2" in out and b"AUTH=PLAIN" in out and b"a OK" in out
    assert tagged(c.cmd("b NOOP"), "b").startswith(b"b OK")
    out = c.cmd("c LOGOUT")
    assert b"* BYE" in out and b"c OK" in out
    assert c.transport.disconnecting


def test_unknown_and_wrong_state(tmp_path: Path) -> None:
    c = Client(make_server(tmp_path))
    assert tagged(c.cmd("a FROB"), "a").startswith(b"a BAD")
    assert tagged(c.cmd("a SELECT INBOX"), "a").startswith(b"a BAD")
    assert c.cmd("").strip() == b""
    assert c.cmd("(((").startswith(b"* BAD")


def test_login(tmp_path: Path) -> None:
    c = Client(make_server(tmp_path))
    assert b"[AUTHENTICATIONFAILED]" in c.cmd('a LOGIN alice "wrong"')
    out = c.login()
    assert b"[CAPABILITY " in out
    assert b"L1 BAD" in c.cmd("L1 LOGIN alice x")  # wrong state now


def test_login_disabled_without_tls(tmp_path: Path) -> None:
    c = Client(make_server(tmp_path, login_disabled=True))
    assert b"LOGINDISABLED" in c.greeting
    assert b"AUTH=PLAIN" not in c.greeting
    assert b"[PRIVACYREQUIRED]" in c.cmd('a LOGIN alice "correct horse"')


def test_rate_limit(tmp_path: Path) -> None:
    c = Client(make_server(tmp_path, limits=LimitsConfig(login_failures_per_ip=2)))
    c.cmd("a LOGIN alice x")
    c.cmd("a LOGIN alice x")
    assert b"[UNAVAILABLE]" in c.cmd('a LOGIN alice "correct horse"')


def test_authenticate_plain_with_and_without_ir(tmp_path: Path) -> None:
    import base64

    c = Client(make_server(tmp_path))
    ir = base64.b64encode(b"\0alice\0correct horse").decode()
    assert b"a OK" in c.cmd(f"a AUTHENTICATE PLAIN {ir}")
    c = Client(make_server(tmp_path))
    assert c.cmd("a AUTHENTICATE PLAIN") == b"+ \r\n"
    assert b"a OK" in c.cmd(ir)
    c = Client(make_server(tmp_path))
    assert c.cmd("a AUTHENTICATE PLAIN").startswith(b"+")
    assert b"a BAD" in c.cmd("*")
    c = Client(make_server(tmp_path))
    out = c.cmd("a AUTHENTICATE PLAIN " + base64.b64encode(b"\0alice\0nope").decode())
    assert b"a NO [AUTHENTICATIONFAILED]" in out


def test_literals(tmp_path: Path) -> None:
    c = Client(make_server(tmp_path))
    assert c.cmd("a LOGIN {5}") == b"+ Ready for literal data\r\n"
    out = c.send(b'alice "correct horse"\r\n')
    assert b"a OK" in out
    c = Client(make_server(tmp_path))
    out = c.send(b"a LOGIN {5+}\r\nalice {13+}\r\ncorrect horse\r\n")
    assert out.startswith(b"a OK")


def test_literal_too_big(tmp_path: Path) -> None:
    c = Client(make_server(tmp_path, limits=LimitsConfig(imap_max_line_length=100)))
    out = c.cmd("a LOGIN {500}")
    assert out.startswith(b"a BAD [TOOBIG]")
    # Non-synchronising: the literal is read and thrown away, then refused.
    out = c.send(b"b LOGIN {200+}\r\n" + b"x" * 200 + b" y\r\nc NOOP\r\n")
    assert b"b BAD [TOOBIG]" in out and b"c OK" in out
    # A too-long line.
    out = c.send(b"d " + b"x" * 300 + b"\r\ne NOOP\r\n")
    assert b"BAD [TOOBIG]" in out and b"e OK" in out


def test_append_toobig_sync(tmp_path: Path) -> None:
    c = Client(make_server(tmp_path, limits=LimitsConfig(max_message_size=1000)))
    c.login()
    out = c.cmd("a APPEND INBOX {5000}")
    assert out.startswith(b"a NO [TOOBIG]")
    assert b"APPENDLIMIT=1000" in c.cmd("b CAPABILITY")


def test_pipelining_in_order(tmp_path: Path) -> None:
    c = Client(make_server(tmp_path))
    out = c.send(b"a NOOP\r\nb CAPABILITY\r\nc NOOP\r\n")
    assert out.index(b"a OK") < out.index(b"* CAPABILITY") < out.index(b"b OK") < out.index(b"c OK")


def test_mailboxes(tmp_path: Path) -> None:
    c = Client(make_server(tmp_path))
    c.login()
    out = c.cmd('a LIST "" "*"')
    assert b'* LIST (\\HasNoChildren) "/" INBOX' in out
    assert b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"' in out
    assert b"b OK" in c.cmd("b CREATE Work/Projects")
    out = c.cmd('c LIST "" "%"')
    assert b'(\\HasChildren) "/" "Work"' in out and b"Projects" not in out
    out = c.cmd('c LIST "Work/" "%"')
    assert b'"Work/Projects"' in out
    assert b"[ALREADYEXISTS]" in c.cmd("d CREATE Work")
    # Non-ASCII names: rev1 sees modified UTF-7, rev2 UTF-8.
    assert b"e OK" in c.cmd("e CREATE &AMQ-pfel")
    assert b'"&AMQ-pfel"' in c.cmd('f LIST "" "&AMQ-*"')
    c.cmd("g ENABLE IMAP4rev2")
    assert '"Äpfel"'.encode() in c.cmd('h LIST "" "*"')
    assert b"i OK" in c.cmd('i RENAME "Äpfel" "Birnen"'.encode())
    out = c.cmd("j STATUS Birnen (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ DELETED-STORAGE)")
    assert b"* STATUS Birnen (MESSAGES 0 UIDNEXT 1 UIDVALIDITY" in out or b'* STATUS "Birnen"' in out
    assert b"k OK" in c.cmd("k DELETE Birnen")
    assert b"[NONEXISTENT]" in c.cmd("l DELETE Birnen")
    assert b"[CANNOT]" in c.cmd("m DELETE INBOX")


def test_list_extended(tmp_path: Path) -> None:
    c = Client(make_server(tmp_path))
    c.login()
    c.cmd("a CREATE Lists/one")
    c.cmd("a SUBSCRIBE Lists/one")
    c.cmd("a SUBSCRIBE Gone")
    out = c.cmd('b LIST (SUBSCRIBED) "" "*"')
    assert b'(\\HasNoChildren \\Subscribed) "/" "Lists/one"' in out
    assert b'(\\NonExistent \\Subscribed) "/" "Gone"' in out
    out = c.cmd('b LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    assert b'"Lists" ("CHILDINFO" ("SUBSCRIBED"))' in out
    out = c.cmd('c LIST (SPECIAL-USE) "" "*" RETURN (STATUS (MESSAGES))')
    assert b"\\Trash" in out and b"* STATUS" in out and b"INBOX" not in out
    assert b"d BAD" in c.cmd('d LIST (RECURSIVEMATCH) "" "*"')
    out = c.cmd('e LIST "" ""')
    assert b'* LIST (\\Noselect) "/" ""' in out
    out = c.cmd('f LSUB "" "*"')
    assert b'* LSUB () "/" "Lists/one"' in out


def test_select_and_quota(tmp_path: Path) -> None:
    c = Client(make_server(tmp_path, quota=10 * 1024))
    c.login()
    out = c.cmd("a SELECT INBOX (CONDSTORE)")
    assert b"* 0 EXISTS" in out and b"[HIGHESTMODSEQ" in out and b"a OK [READ-WRITE]" in out
    out = c.cmd("b GETQUOTAROOT INBOX")
    assert b'* QUOTAROOT INBOX ""' in out and b'* QUOTA "" (STORAGE 0 10)' in out
    assert b"c OK" in c.cmd("c UNSELECT")
    c2 = Client(make_server(tmp_path / "x"))
    c2.login()
    assert b'* QUOTA "" ()' in c2.cmd('d GETQUOTA ""')


def test_enable_id_namespace(tmp_path: Path) -> None:
    c = Client(make_server(tmp_path))
    out = c.cmd('a ID ("name" "test")')
    assert b'* ID ("name" "mailsrv"' in out
    c.login()
    assert b"* ENABLED CONDSTORE QRESYNC" in c.cmd("b ENABLE QRESYNC")
    assert b'* NAMESPACE (("" "/")) NIL NIL' in c.cmd("c NAMESPACE")


def test_idle_done(tmp_path: Path) -> None:
    c = Client(make_server(tmp_path))
    c.login()
    c.cmd("s SELECT INBOX")
    assert c.cmd("i IDLE") == b"+ idling\r\n"
    assert b"i OK" in c.cmd("DONE")


def test_compress(tmp_path: Path) -> None:
    c = Client(make_server(tmp_path))
    c.login()
    out = c.cmd("z COMPRESS DEFLATE")
    assert b"z OK" in out
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    inflate = zlib.decompressobj(-15)
    data = deflate.compress(b"n NOOP\r\n") + deflate.flush(zlib.Z_SYNC_FLUSH)
    out = inflate.decompress(c.send(data))
    assert out == b"n OK NOOP completed\r\n"
    assert b"COMPRESS=DEFLATE" not in inflate.decompress(
        c.send(deflate.compress(b"c CAPABILITY\r\n") + deflate.flush(zlib.Z_SYNC_FLUSH))
    )


def test_timeout(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    c = Client(server)
    server.reactor.advance(61)  # type: ignore[attr-defined]
    assert b"* BYE" in c.take()
    assert c.transport.disconnecting


def test_connections_per_ip_limit(tmp_path: Path) -> None:
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    from mailsrv.imapserver.factory import SessionFactory
    from mailsrv.imapserver.session import Session
    from tests.imapserver.harness import LISTENER

    factory = SessionFactory(make_server(tmp_path, limits=LimitsConfig(max_connections_per_ip=2)), LISTENER)
    addr = IPv4Address("TCP", "192.0.2.1", 1000)
    protos = [factory.buildProtocol(addr) for _ in range(3)]
    transports = [StringTransport(peerAddress=addr) for _ in protos]
    for p, t in zip(protos, transports, strict=True):
        p.makeConnection(t)
    assert isinstance(protos[0], Session) and isinstance(protos[1], Session)
    assert transports[2].value().startswith(b"* BYE") and transports[2].disconnecting
    protos[0].connectionLost()
    assert isinstance(factory.buildProtocol(addr), Session)


def test_temporary_auth_failure(tmp_path: Path) -> None:
    from twisted.internet.defer import fail

    from mailsrv.auth.interfaces import TemporaryAuthFailure

    server = make_server(tmp_path)
    server.accounts.check_password = lambda user, pw: fail(TemporaryAuthFailure("ldap down"))  # type: ignore[method-assign]
    c = Client(server)
    assert b"a NO [UNAVAILABLE]" in c.cmd('a LOGIN alice "correct horse"')


def test_starttls_discards_pipelined_plaintext(tmp_path: Path) -> None:
    from typing import Any

    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    class TLSRecordingTransport(StringTransport):
        started: Any = None

        def startTLS(self, options: Any) -> None:
            self.started = options

    server = make_server(tmp_path)
    server.tls = object()  # type: ignore[assignment]  # only handed to startTLS here
    c = Client(server)
    c.transport = TLSRecordingTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 1))
    c.session.transport = c.transport
    out = c.send(b"a STARTTLS\r\nb LOGIN alice x\r\n")
    assert out.startswith(b"a OK")
    assert b"b " not in out
    assert c.transport.started is None and c.transport.disconnecting
    # The clean case: nothing pipelined, TLS starts and the buffer is empty.
    c2 = Client(server)
    c2.transport = TLSRecordingTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 1))
    c2.session.transport = c2.transport
    assert c2.send(b"a STARTTLS\r\n").startswith(b"a OK")
    assert c2.transport.started is server.tls and c2.session.tls_active
    assert b"STARTTLS" not in c2.cmd("b CAPABILITY")


def test_list_hierarchy_level_without_mailbox(tmp_path: Path) -> None:
    c = Client(make_server(tmp_path))
    c.login()
    c.cmd("a CREATE Top/Child")
    assert b"b OK" in c.cmd("b DELETE Top")
    out = c.cmd('c LIST "" "%"')
    assert b'* LIST (\\NonExistent \\Noselect \\HasChildren) "/" "Top"' in out
    assert b'"Top/Child"' in c.cmd('d LIST "" "*"')


def test_cross_protocol_junk_disconnects(tmp_path: Path) -> None:
    c = Client(make_server(tmp_path))
    out = c.send(b"GET / HTTP/1.1\r\nHost: example.org\r\nUser-Agent: x\r\nAccept: */*\r\n" * 3 + b"\r\n")
    assert b"* BYE too many bad commands" in out
    assert c.transport.disconnecting


def test_no_big_literal_before_login(tmp_path: Path) -> None:
    c = Client(make_server(tmp_path))
    # 100000 octets is far below the APPENDLIMIT, but not allowed before login.
    assert c.cmd("a APPEND INBOX {100000}").startswith(b"a NO [TOOBIG]")


def test_bye_on_shutdown(tmp_path: Path) -> None:
    c = Client(make_server(tmp_path))
    c.factory.stopFactory()
    assert c.take() == b"* BYE server shutting down\r\n" and c.transport.disconnecting


def _scram_server_first(c: Client, user: str) -> bytes:
    import base64

    assert c.cmd("s AUTHENTICATE SCRAM-SHA-256").startswith(b"+")
    out = c.cmd(base64.b64encode(f"n,,n={user},r=abcdefgh".encode()).decode())
    assert out.startswith(b"+ "), out
    return base64.b64decode(out[2:].strip())


def test_scram_abandoned_after_the_salt_counts_as_a_failed_login(tmp_path: Path) -> None:
    """Issue 17 item 6: a client could take the salt and cancel, probing accounts for free."""
    server = make_server(tmp_path, limits=LimitsConfig(login_failures_per_ip=2))
    for _ in range(2):
        c = Client(server)
        _scram_server_first(c, "alice")
        assert b"s BAD" in c.cmd("*")
    assert b"[UNAVAILABLE]" in Client(server).cmd('a LOGIN alice "correct horse"')


def test_fake_scram_salts_are_the_same_on_every_listener(tmp_path: Path) -> None:
    """Issue 17 item 6: each listener had its own fake-salt key, so an unknown account's salt
    differed between ports while a real one's did not."""
    from tests.imapserver.harness import LISTENER

    server = make_server(tmp_path)
    other = LISTENER.__class__(name="imaps", protocol="imap", address="127.0.0.1", port=993, tls="implicit")
    salts = {_scram_server_first(Client(server, listener), "nobody").split(b",")[1] for listener in (LISTENER, other)}
    assert len(salts) == 1
