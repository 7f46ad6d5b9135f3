"""One SMTP client session: connect, EHLO (HELO fallback), STARTTLS, AUTH, one message to
several recipients, QUIT. Used by queue delivery and `mailsrv sendmail`.

    result = await send_message(reactor, "192.0.2.1", 25, Envelope(...), message, SessionOptions(...))

Invariants:
- `send_message` never raises for anything the peer or the network does: every outcome is
  in the `DeliveryResult` — a reply per recipient, and `failure` for a session that broke.
  A recipient is only `delivered` when its RCPT and the final DATA reply were positive.
- Timeouts per RFC 5321 §4.5.3.2 (greeting 5 min, MAIL/RCPT 5 min, DATA 2 min, end of data
  10 min), configurable for tests.
- TLS policy: "none" never starts TLS; "opportunistic" uses STARTTLS when offered without
  verifying the certificate (RFC 3207 §4.1; a failed handshake is a temporary failure, the
  queue may retry in plaintext); "required" fails temporarily without STARTTLS; "verify"
  additionally checks the certificate chain and name (MTA-STS enforce, DANE-less).
- PIPELINING (RFC 2920): MAIL, all RCPTs and DATA go in one write when offered.
- The message is sent with CRLF line ends and dot-stuffing (RFC 5321 §4.5.2).
- With a `ConnectionCache` (`cache.py`), a session starts on an idle connection to the same
  host, port and options when there is one, and parks its connection there after a
  complete transaction instead of QUIT. If such a reused connection fails before the reply
  to MAIL (the peer closed it meanwhile), nothing can have been accepted on it: the
  message goes once more over a new connection.
- `on_accepted`, when given, is awaited with the delivered recipients as soon as the final
  reply to the data is positive, before QUIT: the queue records the delivery durably there,
  so a crash after the peer took responsibility (RFC 5321 §6.1) resends as little as possible.
- Extension use: SIZE (refuse locally if over the peer's limit: permanent 5.3.4),
  8BITMIME (BODY=8BITMIME for 8-bit content; without it permanent 5.6.3), SMTPUTF8
  (non-ASCII addresses need it: permanent 5.6.7 otherwise, RFC 6531 §3.2), REQUIRETLS
  (RFC 8689, when asked for: needs TLS and the extension), DSN (RFC 3461: when the peer
  offers it, the envelope's RET/ENVID go on MAIL and NOTIFY/ORCPT on each RCPT, xtext-encoded;
  the outcomes say `dsn_passed`, so the queue knows the peer now reports success).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from twisted.internet import defer
from twisted.internet import endpoints as _endpoints

from mailsrv.dsnparams import NO_MESSAGE_DSN, MessageDSN, RecipientDSN, mail_parameters, rcpt_parameters
from mailsrv.sasl.client import choose_client_mechanism
from mailsrv.sasl.mechanism import SASLError
from mailsrv.smtpclient.cache import ConnectionCache, IdleConnection
from mailsrv.smtpclient.protocol import SMTPClientProtocol
from mailsrv.smtpclient.reply import DeliveryResult, RecipientOutcome, Reply, SMTPFailure
from mailsrv.tlsutil import channel_bindings, client_tls_options

TLSPolicy = Literal["none", "opportunistic", "required", "verify"]


@dataclass(frozen=True)
class Timeouts:
    """Seconds; defaults from RFC 5321 §4.5.3.2."""

    connect: float = 30
    greeting: float = 300
    command: float = 300  # EHLO, STARTTLS, AUTH, MAIL, RCPT, RSET, QUIT
    data_start: float = 120
    data_end: float = 600
    tls_handshake: float = 60


@dataclass(frozen=True)
class SessionOptions:
    helo_name: str  # our hostname, sent in EHLO
    tls: TLSPolicy = "opportunistic"
    tls_hostname: str | None = None  # name to verify and send as SNI; default: the host connected to
    ca_file: Path | None = None
    client_cert: tuple[Path, Path] | None = None
    username: str | None = None  # AUTH when set (only after TLS unless allow_plain_auth)
    password: str = ""
    allow_plaintext_auth_without_tls: bool = False
    requiretls: bool = False
    # TLS from the first byte (submissions port 465, RFC 8314 §3.3) instead of STARTTLS;
    # the certificate is verified when `tls` is "verify".
    implicit_tls: bool = False
    # The local address to connect from (a `direct` transport's `source_ip`); None: the system's choice.
    source_address: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)


AcceptedHook = Callable[[Sequence[RecipientOutcome]], Awaitable[None]]


@dataclass(frozen=True)
class Envelope:
    mail_from: str  # "" for the null reverse-path
    recipients: tuple[str, ...]
    dsn: MessageDSN = NO_MESSAGE_DSN
    recipient_dsn: tuple[RecipientDSN, ...] = ()  # parallel to `recipients`, or empty


async def send_message(
    reactor: Any,
    host: str,
    port: int,
    envelope: Envelope,
    message: bytes,
    options: SessionOptions,
    on_accepted: AcceptedHook | None = None,
    connections: ConnectionCache | None = None,
) -> DeliveryResult:
    """Delivers `message` to `host:port`. Never raises for network or peer behaviour."""
    session = _Session(reactor, host, port, envelope, message, options, on_accepted, connections)
    return await session.run()


# Twisted's endpoint helpers are partly untyped: go through Any.
endpoints: Any = _endpoints


def _endpoint(reactor: Any, host: str, port: int, timeout: float, source: str | None = None) -> Any:
    bind = None if source is None else (source, 0)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return endpoints.HostnameEndpoint(reactor, host.encode("idna"), port, timeout=timeout, bindAddress=bind)
    if ip.version == 6:
        return endpoints.TCP6ClientEndpoint(reactor, host, port, timeout=timeout, bindAddress=bind)
    return endpoints.TCP4ClientEndpoint(reactor, host, port, timeout=timeout, bindAddress=bind)


def _needs_smtputf8(envelope: Envelope) -> bool:
    return not (envelope.mail_from.isascii() and all(r.isascii() for r in envelope.recipients))


def normalise_data(message: bytes) -> bytes:
    """CRLF line ends, dot-stuffed (RFC 5321 §4.5.2), ending in CRLF "." CRLF."""
    crlf = message.count(b"\r\n")
    if crlf == message.count(b"\n") == message.count(b"\r"):
        # Already CRLF throughout (what the queue stores): stuff the dots in C, no line loop.
        out = message.replace(b"\r\n.", b"\r\n..")
        if out.startswith(b"."):
            out = b"." + out
        if out and not out.endswith(b"\r\n"):
            out += b"\r\n"
        return out + b".\r\n"
    lines = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    return out + b".\r\n"


class _Session:
    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int,
        envelope: Envelope,
        message: bytes,
        options: SessionOptions,
        on_accepted: AcceptedHook | None = None,
        connections: ConnectionCache | None = None,
    ) -> None:
        self.reactor = reactor
        self.on_accepted = on_accepted
        self.connections = connections
        self.key = (host, port, options)
        self.reused = False  # the connection came from `connections`
        self.transactions = 0  # done on this connection before this one
        self.mail_answered = False  # a reply to MAIL arrived in this transaction
        self.clean = False  # the final reply to the data arrived: the peer is between transactions
        self.parked = False
        self.host = host
        self.port = port
        self.envelope = envelope
        self.message = message
        self.options = options
        self.t = options.timeouts
        self.proto: SMTPClientProtocol | None = None
        self.extensions: dict[str, str] = {}
        self.tls = False
        self.authenticated = False
        self.answers: dict[int, Reply] = {}  # recipient index -> final reply

    async def run(self) -> DeliveryResult:
        failure: SMTPFailure | None = None
        try:
            try:
                await self._converse()
            except SMTPFailure:
                if not (self.reused and not self.mail_answered):
                    raise
                # The idle connection broke before MAIL was answered: nothing was accepted on
                # it. Once more, over a new connection.
                assert self.proto is not None
                self.proto.abort()
                self.proto, self.reused, self.answers = None, False, {}
                await self._converse(fresh=True)
        except SMTPFailure as e:
            failure = e
        except defer.CancelledError:
            failure = SMTPFailure("connection", "delivery cut off: mailsrv is stopping")
        except Exception as e:  # a bug or an unforeseen peer behaviour: recorded, never a crash
            failure = SMTPFailure("protocol", f"internal error: {type(e).__name__}: {e}")
        finally:
            if self.proto is not None and not self.parked:
                self.proto.close()
        outcomes = []
        for i, rcpt in enumerate(self.envelope.recipients):
            reply = self.answers.get(i)
            if reply is None:
                reply = failure.as_reply() if failure is not None else Reply(451, ("4.0.0 no reply",))
            outcomes.append(RecipientOutcome(rcpt, reply, self._dsn_passed))
        return DeliveryResult(
            tuple(outcomes), failure, self.tls, self.authenticated, frozenset(k for k in self.extensions)
        )

    async def _command(self, line: str, timeout: float) -> Reply:
        assert self.proto is not None
        self.proto.send(line.encode("utf-8") + b"\r\n")
        return await self.proto.next_reply(timeout)

    async def _ehlo(self) -> None:
        reply = await self._command(f"EHLO {self.options.helo_name}", self.t.command)
        if reply.positive:
            self.extensions = {}
            for line in reply.lines[1:]:
                keyword, _, params = line.strip().partition(" ")
                if keyword:
                    self.extensions[keyword.upper()] = params
            return
        # RFC 5321 §3.2: a server that does not know EHLO; fall back to HELO.
        reply = await self._command(f"HELO {self.options.helo_name}", self.t.command)
        if not reply.positive:
            raise SMTPFailure("reply", f"HELO refused: {reply}", reply, reply.permanent)
        self.extensions = {}

    async def _converse(self, fresh: bool = False) -> None:
        idle = None if fresh or self.connections is None else self.connections.take(self.key)
        if idle is not None:
            self.proto, self.extensions = idle.proto, idle.extensions
            self.tls, self.authenticated = idle.tls, idle.authenticated
            self.transactions, self.reused = idle.transactions, True
        else:
            await self._open()
        await self._transaction()
        if self.connections is not None and self.clean:
            assert self.proto is not None
            idle = IdleConnection(self.proto, self.extensions, self.tls, self.authenticated, self.transactions + 1)
            self.connections.park(self.key, idle)  # or closes it, when it may not be kept
            self.parked = True
            return
        try:
            await self._command("QUIT", 10)
        except SMTPFailure:
            pass  # the message is already accepted or refused; QUIT's fate changes nothing

    async def _open(self) -> None:
        """Connects and gets the session ready for MAIL: greeting, EHLO, STARTTLS, AUTH."""
        self.tls = self.authenticated = False
        self.extensions = {}
        proto = SMTPClientProtocol(self.reactor)
        endpoint = _endpoint(self.reactor, self.host, self.port, self.t.connect, self.options.source_address)
        if self.options.implicit_tls:
            tls_options = client_tls_options(
                self.options.tls_hostname or self.host,
                verify=self.options.tls == "verify",
                ca_file=self.options.ca_file,
                client_cert=self.options.client_cert,
            )
            endpoint = endpoints.wrapClientTLS(tls_options, endpoint)
            self.tls = True
        try:
            await endpoints.connectProtocol(endpoint, proto)
        except Exception as e:
            raise SMTPFailure("connection", f"cannot connect to {self.host}:{self.port}: {e}") from None
        self.proto = proto
        greeting = await proto.next_reply(self.t.greeting)
        if greeting.code != 220:
            # RFC 5321 §3.1: 554 means no service here; answer QUIT and stop.
            raise SMTPFailure("reply", f"greeting: {greeting}", greeting, greeting.permanent)
        await self._ehlo()
        await self._tls()
        await self._auth()

    async def _tls(self) -> None:
        policy = self.options.tls
        if self.options.implicit_tls:
            return
        if policy == "none":
            if self.options.requiretls:
                raise SMTPFailure("policy", "REQUIRETLS asked but TLS disabled", permanent=True)
            return
        if "STARTTLS" not in self.extensions:
            if policy in ("required", "verify") or self.options.requiretls:
                raise SMTPFailure("tls", f"{self.host} does not offer STARTTLS")
            return
        reply = await self._command("STARTTLS", self.t.command)
        if reply.code != 220:
            if policy == "opportunistic" and not self.options.requiretls:
                return
            raise SMTPFailure("tls", f"STARTTLS refused: {reply}", reply)
        options = client_tls_options(
            self.options.tls_hostname or self.host,
            verify=policy == "verify",
            ca_file=self.options.ca_file,
            client_cert=self.options.client_cert,
        )
        assert self.proto is not None
        await self.proto.start_tls(options, self.t.tls_handshake)
        self.tls = True
        # RFC 3207 §4.2: forget what was learnt before TLS, greet again.
        await self._ehlo()

    async def _auth(self) -> None:
        if self.options.username is None:
            return
        offered = self.extensions.get("AUTH", "").split()
        if not offered:
            raise SMTPFailure("auth", f"{self.host} offers no AUTH", permanent=True)
        if not self.tls and not self.options.allow_plaintext_auth_without_tls:
            raise SMTPFailure("auth", "refusing to authenticate without TLS")
        assert self.proto is not None
        try:
            mech = choose_client_mechanism(
                offered,
                self.options.username,
                self.options.password,
                channel_bindings(self.proto.transport, server_side=False) if self.tls else None,
                allow_plaintext=True,
            )
        except SASLError as e:
            raise SMTPFailure("auth", str(e), permanent=True) from None
        initial = mech.initial_response()
        line = f"AUTH {mech.name}"
        if initial is not None:
            line += " " + (base64.b64encode(initial).decode("ascii") or "=")  # RFC 4954 §4: "=" is empty
        reply = await self._command(line, self.t.command)
        scram = mech.name.startswith("SCRAM-")
        responses = 0
        final_checked = False
        try:
            while reply.code == 334:
                challenge = base64.b64decode(reply.lines[0].strip() if reply.lines else "", validate=True)
                if scram and responses >= 1:
                    mech.verify_success(challenge)  # the server-final message (RFC 5802 §5)
                    final_checked = True
                    reply = await self._command("", self.t.command)
                    continue
                answer = mech.respond(challenge)
                responses += 1
                reply = await self._command(base64.b64encode(answer).decode("ascii"), self.t.command)
            if reply.code == 235 and not final_checked:
                mech.verify_success(None)
        except (SASLError, binascii.Error, ValueError) as e:
            assert self.proto is not None
            self.proto.send(b"*\r\n")  # RFC 4954 §4: cancel the exchange
            raise SMTPFailure("auth", f"authentication failed: {e}", permanent=True) from None
        if reply.code != 235:
            raise SMTPFailure("auth", f"authentication refused: {reply}", reply, reply.permanent)
        self.authenticated = True

    def _mail_command(self) -> str:
        params = []
        size = len(self.message)
        if "SIZE" in self.extensions:
            limit = self.extensions["SIZE"].strip()
            if limit.isdigit() and int(limit) > 0 and size > int(limit):
                raise SMTPFailure(
                    "policy", f"message of {size} octets exceeds {self.host}'s limit of {limit}", permanent=True
                )
            params.append(f"SIZE={size}")
        if not self.message.isascii():
            if "8BITMIME" not in self.extensions:
                raise SMTPFailure("policy", f"{self.host} does not accept 8-bit content (5.6.3)", permanent=True)
            params.append("BODY=8BITMIME")
        if _needs_smtputf8(self.envelope):
            if "SMTPUTF8" not in self.extensions:
                raise SMTPFailure("policy", f"{self.host} does not support SMTPUTF8 (5.6.7)", permanent=True)
            params.append("SMTPUTF8")
        if self.options.requiretls:
            if not self.tls:
                raise SMTPFailure("tls", f"{self.host}: no TLS for a REQUIRETLS message")
            if "REQUIRETLS" not in self.extensions:
                # RFC 8689 §4.2.1: the message must not go to a hop that cannot carry the request.
                refusal = Reply(550, (f"5.7.30 {self.host} does not support REQUIRETLS",))
                raise SMTPFailure("policy", str(refusal), refusal, permanent=True)
            params.append("REQUIRETLS")
        if self._dsn_passed:
            params += mail_parameters(self.envelope.dsn)
        return " ".join([f"MAIL FROM:<{self.envelope.mail_from}>", *params])

    @property
    def _dsn_passed(self) -> bool:
        """Whether the peer offers DSN (RFC 3461 §5.2.2.2: the request then goes on with the message)."""
        return "DSN" in self.extensions

    def _rcpt_command(self, i: int) -> str:
        params = []
        if self._dsn_passed and self.envelope.recipient_dsn:
            params = rcpt_parameters(self.envelope.recipient_dsn[i])
        return " ".join([f"RCPT TO:<{self.envelope.recipients[i]}>", *params])

    async def _transaction(self) -> None:
        assert self.proto is not None
        proto = self.proto
        mail = self._mail_command()
        rcpts = [self._rcpt_command(i) for i in range(len(self.envelope.recipients))]
        if "PIPELINING" in self.extensions:
            # RFC 2920 §3.1: MAIL, RCPTs and DATA in one group; replies come in order.
            proto.send("".join(c + "\r\n" for c in [mail, *rcpts, "DATA"]).encode("utf-8"))
            mail_reply = await proto.next_reply(self.t.command)
            self.mail_answered = True
            rcpt_replies = [await proto.next_reply(self.t.command) for _ in rcpts]
            data_reply = await proto.next_reply(self.t.data_start)
        else:
            mail_reply = await self._command(mail, self.t.command)
            self.mail_answered = True
            if not mail_reply.positive:
                self._answer_all(mail_reply)
                return
            rcpt_replies = [await self._command(c, self.t.command) for c in rcpts]
            if not any(r.positive for r in rcpt_replies):
                self._record_rcpts(rcpt_replies)
                return
            data_reply = await self._command("DATA", self.t.data_start)
        if not mail_reply.positive:
            self._answer_all(mail_reply)
            if data_reply.code == 354:
                await self._send_data(b"")  # RFC 2920 §3.1: finish a DATA the server accepted
            return
        self._record_rcpts(rcpt_replies)
        accepted = [i for i, r in enumerate(rcpt_replies) if r.positive]
        if data_reply.code != 354:
            for i in accepted:
                self.answers[i] = data_reply
            return
        if not accepted:
            await self._send_data(b"")
            return
        final = await self._send_data(self.message)
        for i in accepted:
            self.answers[i] = final
        if final.positive and self.on_accepted is not None:
            # Before QUIT: the peer has taken the message; QUIT's reply adds nothing to that.
            await self.on_accepted(
                [RecipientOutcome(self.envelope.recipients[i], final, self._dsn_passed) for i in accepted]
            )

    async def _send_data(self, message: bytes) -> Reply:
        assert self.proto is not None
        self.proto.send(normalise_data(message))
        reply = await self.proto.next_reply(self.t.data_end)
        self.clean = True  # RFC 5321 §4.1.4: after the reply to the data, a new transaction may begin
        return reply

    def _answer_all(self, reply: Reply) -> None:
        for i in range(len(self.envelope.recipients)):
            self.answers[i] = reply

    def _record_rcpts(self, replies: Sequence[Reply]) -> None:
        for i, r in enumerate(replies):
            if not r.positive:
                self.answers[i] = r
