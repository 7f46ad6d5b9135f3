# mypy: disable-error-code="no-untyped-call"
# (TimeoutMixin and Failure are unannotated Twisted APIs.)
"""The SMTP/submission session: reading commands and message data, one command at a time.

Input is buffered and consumed by `_process`, which stops whenever a command is waiting for
something asynchronous (a directory lookup, SASL hashing, the fsync of a delivery): pipelined
commands (RFC 2920) stay in the buffer and replies never overtake each other. STARTTLS
throws away whatever the client sent after the command in the same plaintext read
(CVE-2011-0411) before the TLS handshake starts.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, ensureDeferred, fail
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from mailsrv.address import Address, AddressError, parse_path
from mailsrv.auth.clientcert import ClientKeyLogin
from mailsrv.auth.interfaces import TemporaryAuthFailure
from mailsrv.config.types import ListenerConfig
from mailsrv.dsnparams import (
    DSNParameterError,
    MessageDSN,
    RecipientDSN,
    parse_envid,
    parse_notify,
    parse_orcpt,
    parse_ret,
)
from mailsrv.maillog import Rejection
from mailsrv.message.source import MessageSource, as_bytes
from mailsrv.ops import login as login_ops
from mailsrv.ops.delivery import (
    DeliveryResult,
    Envelope,
    Trace,
    acceptance,
    deliver,
    is_member,
    postmaster_address,
    resolve_recipient,
)
from mailsrv.ops.errors import OpsError, RateLimited, SendAsDenied, TemporaryFailure
from mailsrv.ops.mailauth import authenticate_inbound
from mailsrv.ops.submission import check_envelope_sender, submit
from mailsrv.sasl import Challenge, SASLAborted, SASLError, Success, advertised_mechanisms
from mailsrv.sasl.external import ExternalIdentity
from mailsrv.smtpserver.dotdata import PARTIAL_LINE, find_end, has_bare_line_end, unstuff
from mailsrv.smtpserver.output import send_now
from mailsrv.smtpserver.replies import SMTPReply, reply_for
from mailsrv.spool import STREAM_THRESHOLD, Spool, memory_cost
from mailsrv.tlsutil import ChannelBindings, channel_bindings
from mailsrv.transport import Hangup, set_no_delay

if TYPE_CHECKING:
    from mailsrv.server import Server
    from mailsrv.smtpserver.factory import SMTPFactory

log = Logger()

MAX_BAD_COMMANDS = 10
# Message data that restarts the command timeout: slower than this per timeout is a trickle.
PROGRESS_OCTETS = 64 * 1024
# Replies about the command's form or order, not a refusal of the sender or recipient: not
# logged as a rejection (Postfix does not either).
_PROTOCOL_ERRORS = frozenset({500, 501, 502, 503, 504, 555})


def _path_text(keyword: str, arg: str) -> str | None:
    """The address of a MAIL FROM/RCPT TO as the client wrote it, for the log (cleaned there)."""
    m = re.match(rf"(?i){keyword}:\s*<([^>]*)>", arg)
    return m.group(1) if m else None


# The arguments of MAIL and RCPT: the path, then the parameters (RFC 5321 §4.1.1.2, §4.1.1.3).
_MAIL_ARG = re.compile(r"(?i)FROM:\s*(<[^>]*>)(.*)$")
_RCPT_ARG = re.compile(r"(?i)TO:\s*(<[^>]*>)(.*)$")


# Input buffered while a command waits; beyond this the transport stops reading.
MAX_PIPELINED = 256 * 1024
# RFC 5321 §4.5.3.1.4 requires at least 512 octets for a command line; the limit is
# configurable. Text lines inside DATA may be longer than 1000 octets: we accept them
# rather than lose mail, as Postfix does (dotdata.PARTIAL_LINE bounds the buffering).


@implementer(IHandshakeListener)
class SMTPSession(Protocol, TimeoutMixin):
    def __init__(self, factory: SMTPFactory, listener: ListenerConfig) -> None:
        self.factory = factory
        self.server: Server = factory.server
        self.listener = listener
        self.submission = listener.protocol == "submission"
        self.tls = listener.tls == "implicit"
        self.cid = self.server.new_connection_id()
        self.peer = "?"
        self._buf = bytearray()
        self._busy = False
        self._paused = False
        self._closed = False
        self._mode = "command"  # command, data, bdat, auth
        self._discard_line = False
        self._received = 0  # octets since the timeout last restarted
        self.helo: str | None = None
        self.account: str | None = None
        self.login_address: Address | None = None
        self._bad = 0
        self._esmtp = False
        # The TLS client-certificate seam: the certificate is read when the handshake
        # completes; the next issue sets `external_identity` (a lookup of the certificate)
        # so AUTH EXTERNAL, or a login by certificate alone, authenticates the session.
        self.peer_certificate: Any = None
        self.external_identity: ExternalIdentity | None = None
        self.client_key: ClientKeyLogin | None = None
        self._cert_authenticated = False
        self._hangup = Hangup(self.server.reactor)
        # Replies made while one read of input is processed go out together at its end
        # (a pipelining client gets one segment, not one per command).
        self._holding = False
        self._out: list[bytes] = []
        self._spool_dir = self.server.config.data_dir / "spool"
        self._reset()

    # --- connection --------------------------------------------------------------------
    @property
    def _t(self) -> Any:
        # The transport as Twisted's unannotated interfaces make it: TCP or TLS.
        return self.transport

    def connectionMade(self) -> None:
        set_no_delay(self.transport)
        peer = self._t.getPeer()
        self.peer = getattr(peer, "host", "?")
        limits = self.server.config.limits
        self.setTimeout(self.server.config.smtp.command_timeout)
        if not self.factory.connection_opened(self.peer, limits.max_connections_per_ip):
            self._send(421, "4.7.0", "too many connections from your address")
            self._close()
            return
        log.info("{cid} connect from {peer} ({listener})", cid=self.cid, peer=self.peer, listener=self.listener.name)
        self._send(220, None, f"{self.server.config.hostname.ascii} ESMTP mailsrv")

    def handshakeCompleted(self) -> None:
        """IHandshakeListener: the peer certificate is only known now (TLS 1.3 sends it late).
        Whether its key logs in is asked of the account provider (maybe LDAP, in the thread
        pool); commands wait in the buffer until it has answered."""
        try:
            from mailsrv.tlsutil import peer_certificate

            self.peer_certificate = peer_certificate(self.transport)
        except Exception:
            log.failure("{cid} reading the peer certificate", cid=self.cid)
            self.peer_certificate = None
        if self.peer_certificate is not None and not self._closed:
            self._run(self._check_client_key())

    async def _check_client_key(self) -> None:
        from mailsrv.ops.login import certificate_login

        try:
            key = await certificate_login(self.server, self.peer_certificate, self.peer, f"smtp {self.cid}")
        except TemporaryAuthFailure:
            # No login by certificate now; AUTH EXTERNAL answers 454 rather than "unregistered".
            log.warn("{cid} client certificate not checked: account provider unavailable", cid=self.cid)
            self.external_identity = lambda: fail(TemporaryAuthFailure("account provider unavailable"))
            return
        except Exception:
            log.failure("{cid} checking the client certificate", cid=self.cid)
            return
        self.client_key = key
        if key is not None:
            identity = key.identity
            self.external_identity = lambda: identity
            if self.submission and self.account is None:
                # Submission with a registered key counts as authenticated, no AUTH needed.
                self.account = identity.account
                self.login_address = identity.address
                self._cert_authenticated = True
                log.info(
                    "{cid} authenticated by client certificate as {account}", cid=self.cid, account=identity.account
                )

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)
        self._spool.discard()
        self._hangup.cancel()
        if not self._closed:
            self._closed = True
        self.factory.connection_closed(self.peer)

    def callLater(self, period: float, func: Any) -> Any:
        # TimeoutMixin's timer runs on the Server's reactor (a task.Clock in tests).
        return self.server.reactor.callLater(period, func)

    def timeoutConnection(self) -> None:
        self._send(421, "4.4.2", "timeout, closing connection")
        self._close()

    def _close(self) -> None:
        self._flush()
        self._closed = True
        self._hangup(self.transport)

    def _send(self, code: int, enhanced: str | None, text: str, more: list[str] | None = None) -> None:
        """One reply; `more` holds the lines of a multi-line reply before `text`'s line."""
        if self._closed and code != 421:
            return
        if more:
            lines = [*more, text]
            out = []
            for i, line in enumerate(lines):
                sep = " " if i == len(lines) - 1 else "-"
                # RFC 2034 §4: an enhanced code, when used, starts every line of the reply.
                prefix = f"{code}{sep}" + (f"{enhanced} " if enhanced else "")
                out.append(prefix + line)
            data = ("\r\n".join(out) + "\r\n").encode("utf-8")
        elif enhanced:
            data = f"{code} {enhanced} {text}\r\n".encode()
        else:
            data = f"{code} {text}\r\n".encode()
        if self._holding:
            self._out.append(data)  # sent with the other replies to this input (RFC 2920)
        else:
            send_now(self.transport, data)

    def _flush(self) -> None:
        """Sends the replies held while input was processed, in one write."""
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            send_now(self.transport, data)

    def _reply(self, e: SMTPReply) -> None:
        self._send(e.code, e.enhanced, e.text)

    def _reset(self) -> None:
        self.envelope: Envelope | None = None
        previous: Spool | None = getattr(self, "_spool", None)
        if previous is not None:
            previous.discard()
        # Message data goes to a private temporary file while it arrives (mailsrv/spool.py).
        self._spool = Spool(self._spool_dir)
        self._data_line_start = True
        self._too_big = False
        self._declared_size = 0
        self._bdat_remaining = 0
        self._bdat_last = False
        self._bdat_failed: SMTPReply | None = None

    # --- input -------------------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        # The command timeout is a deadline trickled bytes cannot move (issue 17 item 3): it
        # restarts when a command line ends, or every PROGRESS_OCTETS of message data.
        self._received += len(data)
        if self._received >= PROGRESS_OCTETS or (self._mode in ("command", "auth") and b"\n" in data):
            self._received = 0
            self.resetTimeout()
        self._buf += data
        self._process_holding()
        if self._busy and len(self._buf) > MAX_PIPELINED and not self._paused:
            # Stop reading while a command waits: a pipelining client cannot make us
            # buffer without bound; TCP flow control holds it back instead.
            self._paused = True
            self._t.pauseProducing()

    def _process(self) -> None:
        while not self._busy and not self._closed:
            if self._mode == "bdat":
                if not self._take_bdat():
                    return
                continue
            if self._mode == "data":
                if not self._take_data():
                    return
                continue
            idx = self._buf.find(b"\n")
            limit = self.server.config.limits.smtp_max_line_length
            if idx < 0:
                if len(self._buf) > limit:
                    self._buf.clear()
                    if not self._discard_line:
                        self._discard_line = True
                        self._bad_command(500, "5.5.2", "line too long")
                return
            line = bytes(self._buf[:idx])
            del self._buf[: idx + 1]
            if self._discard_line:
                self._discard_line = False
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > limit:
                self._bad_command(500, "5.5.2", "line too long")
                continue
            if self._mode == "auth":
                self._auth_line(line)
            else:
                self._command(line)

    def _process_holding(self) -> None:
        """`_process`, its replies held and sent together at the end."""
        held, self._holding = self._holding, True
        try:
            self._process()
        finally:
            self._holding = held
            if not held:
                self._flush()

    def _run(self, coro: Any) -> None:
        """Runs an asynchronous command; input processing resumes after its reply."""
        self._busy = True
        d: Deferred[None] = ensureDeferred(coro)

        def failed(f: Failure) -> None:
            if f.check(SMTPReply):
                self._reply(f.value)  # type: ignore[arg-type]
            elif f.check(OpsError):
                self._reply(reply_for(f.value))  # type: ignore[arg-type]
            else:
                log.failure("{cid} command failed", failure=f, cid=self.cid)
                self._send(451, "4.3.0", "internal error, try again later")

        def done(_: object) -> None:
            self._busy = False
            if not self._closed:
                self._process_holding()
            if self._paused and not self._busy and not self._closed:
                self._paused = False
                self._t.resumeProducing()

        d.addErrback(failed).addBoth(done)

    # --- the lines that trace mail (mailsrv/maillog.py, docs/operations.md) ---------------
    def _log_reject(
        self,
        stage: str,
        reply: SMTPReply,
        recipient: str | None,
        envelope: Envelope | None = None,
        refused_sender: str | None = None,
    ) -> None:
        envelope = envelope or self.envelope
        sender = envelope.mail_from.display() if envelope is not None and envelope.mail_from is not None else None
        if refused_sender is not None:
            sender = refused_sender  # a refused MAIL FROM: as the client wrote it
        line = Rejection(
            stage=stage,
            peer_ip=self.peer,
            code=reply.code,
            enhanced=reply.enhanced,
            reason=reply.text,
            sender=sender,
            recipient=recipient,
            protocol="ESMTP" if self._esmtp else "SMTP",
            helo=self.helo or "",
        )
        log.info("{line}", line=line.line(), cid=self.cid, **line.fields())

    def _log_accepted(self, envelope: Envelope, result: DeliveryResult, size: int) -> None:
        line = acceptance(envelope, result, size, self.peer)
        log.info("{line}", line=line.line(), cid=self.cid, **line.fields())

    def _bad_command(self, code: int, enhanced: str, text: str) -> None:
        self._bad += 1
        self._send(code, enhanced, text)
        if self._bad >= MAX_BAD_COMMANDS:
            self._send(421, "4.7.0", "too many errors, closing connection")
            self._close()

    # --- commands ----------------------------------------------------------------------
    def _command(self, raw: bytes) -> None:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._bad_command(500, "5.5.2", "invalid UTF-8 in command")
            return
        verb, _, arg = line.partition(" ")
        handler = getattr(self, f"smtp_{verb.upper()}", None) if verb.isalpha() else None
        if handler is None:
            self._bad_command(500, "5.5.2", "command not recognized")
            return
        try:
            handler(arg)
        except SMTPReply as e:
            if verb.upper() == "RCPT" and e.code not in _PROTOCOL_ERRORS:
                self._log_reject("RCPT", e, _path_text("TO", arg))
            elif verb.upper() == "MAIL" and e.code not in _PROTOCOL_ERRORS:
                self._log_reject("MAIL", e, None, refused_sender=_path_text("FROM", arg) or "")
            if e.code >= 500:
                self._bad_command(e.code, e.enhanced, e.text)
            else:
                self._reply(e)

    def smtp_HELO(self, arg: str) -> None:
        self._greet(arg, esmtp=False)

    def smtp_EHLO(self, arg: str) -> None:
        self._greet(arg, esmtp=True)

    def _greet(self, arg: str, esmtp: bool) -> None:
        if not arg.strip():
            raise SMTPReply(501, "5.5.4", "a domain or address literal is required")
        self.helo = arg.strip()
        self._esmtp = esmtp
        self._reset()
        hostname = self.server.config.hostname.ascii
        if not esmtp:
            self._send(250, None, hostname)
            return
        ext = [
            hostname,
            "PIPELINING",
            f"SIZE {self.server.config.limits.max_message_size}",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
            "CHUNKING",
            "DSN",  # RFC 3461
        ]
        if not self.tls and self.server.tls is not None:
            ext.append("STARTTLS")
        if self.tls:
            ext.append("REQUIRETLS")  # RFC 8689 §2: offered only inside TLS
        mechs = self._mechanisms()
        if mechs:
            ext.append("AUTH " + " ".join(mechs))
        self._send(250, None, ext[-1], more=ext[:-1])

    def _mechanisms(self) -> list[str]:
        # A session authenticated by its client certificate may still AUTH (same account).
        if not self.submission or (self.account is not None and not self._cert_authenticated):
            return []
        if not self.tls and not self.server.config.localserve:
            return []  # RFC 4954 §4: no AUTH over cleartext (587 requires STARTTLS first)
        return advertised_mechanisms(
            tls_active=self.tls,
            stored_secrets=self.server.accounts.supports_stored_secrets(),
            has_client_cert=self.external_identity is not None and self.peer_certificate is not None,
            allow_plaintext=True,
        )

    def smtp_NOOP(self, arg: str) -> None:
        self._send(250, "2.0.0", "OK")

    def smtp_RSET(self, arg: str) -> None:
        self._reset()
        self._send(250, "2.0.0", "OK")

    def smtp_QUIT(self, arg: str) -> None:
        self._send(221, "2.0.0", "bye")
        self._close()

    def smtp_VRFY(self, arg: str) -> None:
        # RFC 5321 §3.5.3: 252 avoids revealing which users exist.
        self._send(252, "2.5.2", "cannot verify, but will accept and attempt delivery")

    def smtp_EXPN(self, arg: str) -> None:
        """RFC 5321 §3.5.2. Only for ListMembers: an authenticated member of an alias whose
        members may see the member list gets it; everyone else learns nothing (252)."""
        alias = None
        if self.account is not None and arg.strip():
            try:
                alias = self.server.dynamic.alias(Address.parse(arg.strip().removeprefix("<").removesuffix(">")))
            except AddressError:
                raise SMTPReply(501, "5.5.4", "syntax: EXPN <list address>") from None
        if alias is None or not alias.list_members or not is_member(self.server, alias, None, self.account):
            self._send(252, "2.5.2", "cannot expand, but will accept and attempt delivery")
            return
        members = [f"<{m.display()}>" for m in alias.members] or ["(no members)"]
        self._send(250, "2.1.5", members[-1], more=members[:-1])

    def smtp_HELP(self, arg: str) -> None:
        self._send(214, "2.0.0", "see RFC 5321")

    def smtp_STARTTLS(self, arg: str) -> None:
        if self.tls or self.server.tls is None:
            raise SMTPReply(503, "5.5.1", "TLS already active or not available")
        if arg:
            raise SMTPReply(501, "5.5.4", "no parameters allowed")
        # CVE-2011-0411: drop anything pipelined after STARTTLS in the plaintext stream.
        self._buf.clear()
        self._send(220, "2.0.0", "ready to start TLS")
        self._flush()  # in plaintext, before the handshake
        self._t.startTLS(self.server.tls)
        self.tls = True
        # RFC 3207 §4.2: forget everything learned before TLS.
        self.helo = None
        self._reset()

    def smtp_AUTH(self, arg: str) -> None:
        if not self.submission:
            raise SMTPReply(503, "5.5.1", "AUTH not available on this port")
        if self.account is not None and not self._cert_authenticated:
            raise SMTPReply(503, "5.5.1", "already authenticated")
        if self.helo is None:
            raise SMTPReply(503, "5.5.1", "send EHLO first")
        if self.envelope is not None:
            raise SMTPReply(503, "5.5.1", "AUTH not allowed during a mail transaction")
        offered = self._mechanisms()
        if not offered:
            raise SMTPReply(538, "5.7.11", "encryption required for requested authentication mechanism")
        name, _, initial_text = arg.partition(" ")
        bindings = channel_bindings(self.transport) if self.tls else ChannelBindings()
        try:
            exchange = login_ops.SASLLogin(
                self.server,
                login_ops.Peer(self.peer, self.client_key),
                name,
                bindings,
                offered=offered,
                external_identity=self.external_identity,
            )
        except SASLError:
            raise SMTPReply(504, "5.5.4", "unrecognized authentication type") from None
        except OpsError as e:
            raise self._auth_refusal(e) from None
        initial: bytes | None = None
        if initial_text:
            initial = b"" if initial_text == "=" else self._b64(initial_text)
            if initial is None:
                exchange.abort()
                raise SMTPReply(501, "5.5.2", "invalid base64")
        self._exchange = exchange
        self._mode = "auth"
        self._auth_final: Success | None = None
        self._run(self._auth_step(exchange.start(initial)))

    @staticmethod
    def _b64(text: str) -> bytes | None:
        try:
            return base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None

    def _auth_line(self, line: bytes) -> None:
        exchange = self._exchange
        text = line.decode("ascii", "replace")
        if text == "*":
            exchange.abort()
            self._mode = "command"
            self._send(501, "5.0.0", "authentication aborted")
            return
        final = self._auth_final
        if final is not None:
            # The client's (empty) answer to the SCRAM server-final-message.
            self._auth_final = None
            self._auth_succeeded(final)
            return
        data = self._b64(text)
        if data is None:
            exchange.abort()
            self._mode = "command"
            self._send(501, "5.5.2", "invalid base64")
            return
        self._run(self._auth_step(exchange.respond(data)))

    def _auth_refusal(self, error: OpsError) -> SMTPReply:
        """The reply for a refused login (RFC 4954 §6)."""
        if isinstance(error, RateLimited):
            return SMTPReply(454, "4.7.0", "too many failed logins, try again later")
        if isinstance(error, TemporaryFailure):
            return SMTPReply(454, "4.7.0", "temporary authentication failure")
        log.info("{cid} authentication failed from {peer}: {error}", cid=self.cid, peer=self.peer, error=error.message)
        if isinstance(error, login_ops.MechanismNotUsable):
            return SMTPReply(504, "5.5.4", "mechanism not available for this account")
        if isinstance(error, login_ops.WrongCertificateAccount):
            return SMTPReply(535, "5.7.8", "credentials do not belong to the client certificate's account")
        return SMTPReply(535, "5.7.8", "authentication credentials invalid")

    async def _auth_step(self, step_d: Coroutine[Any, Any, Challenge | Success]) -> None:
        try:
            step = await step_d
        except (SASLAborted, SASLError) as e:
            self._exchange.abort()
            self._mode = "command"
            raise SMTPReply(501, "5.5.2", str(e) or "malformed authentication exchange") from None
        except OpsError as e:
            self._mode = "command"
            raise self._auth_refusal(e) from None
        if isinstance(step, Challenge):
            self._send(334, None, base64.b64encode(step.data).decode("ascii"))
            return
        if step.final_data is not None:
            self._auth_final = step
            self._send(334, None, base64.b64encode(step.final_data).decode("ascii"))
            return
        self._auth_succeeded(step)

    def _auth_succeeded(self, success: Success) -> None:
        self._mode = "command"
        try:
            identity = self._exchange.finish(success)
        except OpsError as e:
            reply = self._auth_refusal(e)
            self._send(reply.code, reply.enhanced, reply.text)
            return
        self._cert_authenticated = False
        self.account = identity.account
        self.login_address = identity.address
        log.info("{cid} authenticated as {account}", cid=self.cid, account=identity.account)
        self._send(235, "2.7.0", "authentication successful")

    # --- the transaction ---------------------------------------------------------------
    def smtp_MAIL(self, arg: str) -> None:
        if self.helo is None:
            raise SMTPReply(503, "5.5.1", "send EHLO/HELO first")
        if self.envelope is not None:
            raise SMTPReply(503, "5.5.1", "nested MAIL command")
        if self.submission and self.account is None:
            raise SMTPReply(530, "5.7.0", "authentication required")
        m = _MAIL_ARG.match(arg)
        if not m:
            raise SMTPReply(501, "5.5.4", "syntax: MAIL FROM:<address> [parameters]")
        params = self._params(m.group(2))
        smtputf8 = "SMTPUTF8" in params
        if smtputf8 and params["SMTPUTF8"] is not None:
            raise SMTPReply(501, "5.5.4", "SMTPUTF8 takes no value")
        body = (params.get("BODY") or "7BIT").upper()
        if body not in ("7BIT", "8BITMIME", "BINARYMIME"):
            raise SMTPReply(501, "5.5.4", f"unknown BODY type {body}")
        size_text = params.get("SIZE")
        limit = self.server.config.limits.max_message_size
        if size_text is not None:
            if not size_text.isdigit():
                raise SMTPReply(501, "5.5.4", "SIZE needs a number")
            if int(size_text) > limit:
                raise SMTPReply(552, "5.3.4", f"message too big (limit {limit} octets)")
            self._declared_size = int(size_text)
        try:
            dsn = MessageDSN(
                ret=parse_ret(params["RET"]) if "RET" in params else "",
                envid=parse_envid(params["ENVID"]) if "ENVID" in params else "",
            )
        except DSNParameterError as e:
            raise SMTPReply(501, "5.5.4", str(e)) from None
        requiretls = "REQUIRETLS" in params
        if requiretls:
            if params["REQUIRETLS"] is not None:
                raise SMTPReply(501, "5.5.4", "REQUIRETLS takes no value")
            if not self.tls:
                raise SMTPReply(530, "5.7.10", "REQUIRETLS needs a TLS session")
        for name in params:
            # RFC 4954 §5: where AUTH is advertised, MAIL may carry AUTH=<mailbox>; we trust
            # no identity a client asserts, so it is accepted and ignored.
            known = ("SIZE", "BODY", "SMTPUTF8", "REQUIRETLS", "RET", "ENVID")
            if name not in known and not (name == "AUTH" and self.submission):
                raise SMTPReply(555, "5.5.4", f"unsupported parameter {name}")
        try:
            sender = parse_path(m.group(1), utf8=smtputf8)
        except AddressError as e:
            raise SMTPReply(553, "5.1.7", f"bad sender address: {e}") from None
        if self.submission and self.account is not None:
            try:
                check_envelope_sender(self.server, self.account, self.login_address, sender)
            except SendAsDenied as e:
                raise SMTPReply(553, "5.7.1", e.message) from None
        # RFC 3848: the protocol keyword of the Received: field.
        protocol = ("UTF8SMTP" if smtputf8 else "ESMTP") + ("S" if self.tls else "") + ("A" if self.account else "")
        self.envelope = Envelope(
            mail_from=sender,
            smtputf8=smtputf8,
            trace=Trace(helo=self.helo, remote_ip=self.peer, protocol=protocol),
            account=self.account,
            submission=self.submission,
            requiretls=requiretls,
            dsn=dsn,
        )
        self._binarymime = body == "BINARYMIME"
        self._send(250, "2.1.0", "sender OK")

    @staticmethod
    def _params(text: str) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for item in text.split():
            key, eq, value = item.partition("=")
            if key.upper() in out:
                # RFC 3461 §4 (and RFC 5321 §4.1.2 generally): a parameter appears at most once.
                raise SMTPReply(501, "5.5.4", f"parameter {key.upper()} given twice")
            out[key.upper()] = value if eq else None
        return out

    def smtp_RCPT(self, arg: str) -> None:
        if self.envelope is None:
            raise SMTPReply(503, "5.5.1", "send MAIL first")
        m = _RCPT_ARG.match(arg)
        if not m:
            raise SMTPReply(501, "5.5.4", "syntax: RCPT TO:<address>")
        params = self._params(m.group(2))
        for name in params:
            if name not in ("NOTIFY", "ORCPT"):
                raise SMTPReply(555, "5.5.4", f"unsupported parameter {name}")
        try:
            dsn = RecipientDSN(
                notify=parse_notify(params["NOTIFY"]) if "NOTIFY" in params else (),
                orcpt=parse_orcpt(params["ORCPT"]) if "ORCPT" in params else "",
            )
        except DSNParameterError as e:
            raise SMTPReply(501, "5.5.4", str(e)) from None
        if len(self.envelope.recipients) >= self.server.config.limits.smtp_max_recipients:
            raise SMTPReply(452, "4.5.3", "too many recipients")
        try:
            # RFC 5321 §4.1.1.3: "<Postmaster>" without a domain, in any case, must be accepted.
            if m.group(1).lower() == "<postmaster>":
                address: Address | None = postmaster_address(self.server)
            else:
                address = parse_path(m.group(1), utf8=self.envelope.smtputf8)
        except AddressError as e:
            raise SMTPReply(553, "5.1.3", f"bad recipient address: {e}") from None
        if address is None:
            raise SMTPReply(553, "5.1.3", "the null path is not a recipient")
        envelope = self.envelope

        async def resolve() -> None:
            try:
                rcpt = await resolve_recipient(self.server, envelope, address)
            except OpsError as e:
                refusal = reply_for(e)
                self._log_reject("RCPT", refusal, address.display())
                raise refusal from None
            rcpt.dsn = dsn
            envelope.recipients.append(rcpt)
            self._send(250, "2.1.5", "recipient OK")

        self._run(resolve())

    def smtp_DATA(self, arg: str) -> None:
        if self.envelope is None:
            raise SMTPReply(503, "5.5.1", "send MAIL first")
        if not self.envelope.recipients:
            raise SMTPReply(554, "5.5.1", "no valid recipients")
        if self._binarymime:
            raise SMTPReply(503, "5.5.1", "BINARYMIME needs BDAT")
        self._mode = "data"
        self._spool.discard()
        self._data_line_start = True
        self._send(354, None, "end data with <CR><LF>.<CR><LF>")

    def _take_data(self) -> bool:
        """Consumes message data from the buffer in bulk; True when the data ended (the
        reply is under way), False when more input is needed."""
        end = find_end(self._buf, self._data_line_start)
        if end is not None:
            chunk = bytes(self._buf[: end[0]])
            del self._buf[: end[1]]
        else:
            last_lf = self._buf.rfind(b"\n")
            if last_lf < 0 and len(self._buf) <= PARTIAL_LINE:
                return False
            # Whole lines only, unless one line grew beyond PARTIAL_LINE: pass that on,
            # keeping a last CR back (its LF may come in the next read).
            cut = last_lf + 1 if last_lf >= 0 else len(self._buf) - self._buf.endswith(b"\r")
            chunk = bytes(self._buf[:cut])
            del self._buf[:cut]
        if has_bare_line_end(chunk):
            # Postfix answers the same way and hangs up: whatever follows cannot be told
            # apart from a smuggled command (dotdata's docstring).
            log.info("{cid} refused message data with a bare <LF> or <CR>", cid=self.cid)
            self._send(521, "5.5.2", "bare <LF> or <CR> in message data (RFC 5321 §2.3.8)")
            self._close()
            return True
        self._add_data(unstuff(chunk, self._data_line_start))
        if chunk:
            self._data_line_start = chunk.endswith(b"\n")
        if end is None:
            return False
        self._mode = "command"
        self._finish_message()
        return True

    def _add_data(self, data: bytes) -> None:
        if not self._too_big:
            if self._spool.size + len(data) > self.server.config.limits.max_message_size:
                self._too_big = True
                self._spool.discard()
            else:
                self._spool.write(data)

    def smtp_BDAT(self, arg: str) -> None:
        # RFC 3030 CHUNKING. The chunk is read even when the command fails, so that the
        # stream stays in sync; the error is reported after it.
        parts = arg.split()
        if not parts or not parts[0].isdigit() or len(parts) > 2 or (len(parts) == 2 and parts[1].upper() != "LAST"):
            raise SMTPReply(501, "5.5.4", "syntax: BDAT size [LAST]")
        self._bdat_remaining = int(parts[0])
        self._bdat_last = len(parts) == 2
        self._bdat_failed = None
        if self.envelope is None:
            self._bdat_failed = SMTPReply(503, "5.5.1", "send MAIL first")
        elif not self.envelope.recipients:
            self._bdat_failed = SMTPReply(554, "5.5.1", "no valid recipients")
        self._mode = "bdat"

    def _take_bdat(self) -> bool:
        n = min(self._bdat_remaining, len(self._buf))
        if n:
            chunk = bytes(self._buf[:n])
            del self._buf[:n]
            self._bdat_remaining -= n
            if self._bdat_failed is None:
                self._add_data(chunk)
        if self._bdat_remaining:
            return False
        self._mode = "command"
        if self._bdat_failed is not None:
            failed, self._bdat_failed = self._bdat_failed, None
            self._reset()
            self._reply(failed)
            return True
        if self._bdat_last:
            self._finish_message()
        else:
            self._send(250, "2.0.0", f"{self._spool.size} octets received")
        return True

    def _finish_message(self) -> None:
        envelope = self.envelope
        too_big = self._too_big
        spool, self._spool = self._spool, Spool(self._spool_dir)
        size = spool.size
        budget = self.server.message_budget
        # Submission signs the message whole (DKIM), so it holds it in memory; inbound mail
        # from the size STREAM_THRESHOLD on flows from the spool file to the store.
        streamed = not self.submission and size >= STREAM_THRESHOLD
        cost = memory_cost(size) if streamed else size
        # Deliveries take what they hold in memory from the daemon-wide budget: only as many
        # at once as it allows (issue 17 item 7); the sender retries a temporary refusal.
        reserved = not too_big and envelope is not None and (budget is None or budget.reserve(cost))
        data: bytes | MessageSource = b""
        try:
            if reserved:
                data = spool.source() if streamed else spool.read()
        finally:
            if not streamed or not reserved:
                spool.discard()
        self._reset()
        if envelope is None:
            self._send(503, "5.5.1", "no transaction")
            return
        if too_big:
            refusal = SMTPReply(552, "5.3.4", "message exceeds the size limit")
            self._log_reject("DATA", refusal, None, envelope)
            self._reply(refusal)
            return
        if not reserved:
            refusal = SMTPReply(452, "4.3.1", "insufficient system resources, try again later")
            self._log_reject("DATA", refusal, None, envelope)
            self._reply(refusal)
            return

        async def finish() -> None:
            try:
                try:
                    if self.submission:
                        result = await submit(self.server, envelope, as_bytes(data), self.login_address)
                    else:
                        # The decision point (RFC 7489 §6.6.2): DMARC reject answers 550 here.
                        body, extra = await authenticate_inbound(self.server, envelope, data)
                        result = await deliver(self.server, envelope, body, extra)
                except OpsError as e:
                    refusal = reply_for(e)
                    self._log_reject("DATA", refusal, None, envelope)
                    raise refusal from None
                self._log_accepted(envelope, result, len(data))
                if result.over_quota:
                    log.warn("{cid} over quota: {accounts}", cid=self.cid, accounts=result.over_quota)
                self._send(250, "2.0.0", "message accepted for delivery")
            finally:
                spool.discard()
                if budget is not None:
                    budget.release(cost)

        self._run(finish())
