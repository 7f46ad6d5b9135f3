"""One IMAP connection: input pump, command dispatch, state, TLS, compression, updates.

See the implementation notes in `mailsrv.imapserver` for the invariants kept here. The
flow of input: `dataReceived` → (inflate, when COMPRESS is active) → `CommandAssembler` →
`_pump` takes one event at a time while no command is running (or hands raw lines to a
handler waiting in `read_line`, for AUTHENTICATE and IDLE) → `_run_command` →
handler → `_finish`, which flushes queued updates, writes the tagged reply and resumes
the pump.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from mailsrv.imapserver import responses
from mailsrv.imapserver.commandreader import (
    CommandAssembler,
    CommandReady,
    CommandRefused,
    ContinuationNeeded,
    LineReady,
    SpooledLiteral,
    command_word,
    tag_of,
)
from mailsrv.imapserver.commands import (
    AUTHENTICATED,
    COMMANDS,
    NO_EXPUNGE_COMMANDS,
    NOT_AUTHENTICATED,
    SELECTED,
    Command,
    Reply,
)
from mailsrv.imapserver.contexts import Contexts
from mailsrv.imapserver.errors import CommandError, ParseError, ServerError, SyntaxError_
from mailsrv.imapserver.reader import Reader
from mailsrv.imapserver.registry import load_handlers
from mailsrv.imapserver.rendered import RenderedCache
from mailsrv.imapserver.selected import Exists, Expunged, FlagsUpdate, SelectedMailbox, Update, Vanished
from mailsrv.ops.mail import MailContext
from mailsrv.spool import STREAM_THRESHOLD, Spool, memory_cost
from mailsrv.store.interfaces import (
    Change,
    FlagsChanged,
    MessageAdded,
    MessageInfo,
    MessagesExpunged,
)
from mailsrv.transport import Hangup, set_no_delay

if TYPE_CHECKING:
    from mailsrv.auth.clientcert import ClientKeyLogin
    from mailsrv.auth.interfaces import LoginIdentity
    from mailsrv.config.types import ListenerConfig
    from mailsrv.sasl.external import ExternalIdentity
    from mailsrv.server import Server
    from mailsrv.store.interfaces import AccountStore

_log = Logger(namespace="mailsrv.imapserver")

# While a command runs, buffered pipelined input above this makes us stop reading the socket.
_PAUSE_ABOVE = 1 << 20
# Disconnect after this many BAD answers before login / in a row after login.
_MAX_BAD_BEFORE_LOGIN = 10
_MAX_BAD_IN_A_ROW = 50
# Input that restarts the inactivity timeout even without a line end (literal data).
PROGRESS_OCTETS = 64 * 1024
# Decompressed input is produced in chunks of this size (bounds memory on a deflate bomb).
_INFLATE_CHUNK = 256 * 1024


class SessionLog:
    """A logger that adds the connection id, remote address and account to every event."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def _emit(self, level: str, fmt: str, **kw: Any) -> None:
        s = self._session
        getattr(_log, level)(
            "imap {cid} {peer} {account}: " + fmt, cid=s.cid, peer=s.peer, account=s.account or "-", **kw
        )

    def debug(self, fmt: str, **kw: Any) -> None:
        self._emit("debug", fmt, **kw)

    def info(self, fmt: str, **kw: Any) -> None:
        self._emit("info", fmt, **kw)

    def warn(self, fmt: str, **kw: Any) -> None:
        self._emit("warn", fmt, **kw)

    def failure(self, fmt: str, failure: Failure | None = None, **kw: Any) -> None:
        """Logs `failure`, or the exception being handled when None."""
        s = self._session
        _log.failure(
            "imap {cid} {peer} {account}: " + fmt,
            failure,
            cid=s.cid,
            peer=s.peer,
            account=s.account or "-",
            **kw,
        )


@implementer(IHandshakeListener)
class Session(Protocol, TimeoutMixin):
    def __init__(self, server: Server, listener: ListenerConfig) -> None:
        load_handlers()
        self.server = server
        self.listener = listener
        self.cid = server.new_connection_id()
        self.peer = "?"
        self.peer_ip = ""
        self.log = SessionLog(self)
        self.state = NOT_AUTHENTICATED
        self.tls_active = listener.tls == "implicit"
        limits = server.config.limits
        self.assembler = CommandAssembler(
            limits.imap_max_line_length, self._literal_limit, self._admit_literal, self._spool_literal
        )
        self._literal_reserved = 0  # octets of the server's message budget this command holds
        self._command_spools: list[Spool] = []  # large literals of the command, in spool files
        self.account: str | None = None
        self.identity: LoginIdentity | None = None
        self._store: AccountStore | None = None
        self._unlisten: Callable[[], None] | None = None
        self.selected: SelectedMailbox | None = None
        self.enabled: set[str] = set()
        self.saved_search: list[int] = []
        self.idling = False
        # Hooks run right after the tagged reply is written (STARTTLS, COMPRESS, LOGOUT).
        self.after_reply: list[Callable[[], None]] = []
        self.peer_certificate: Any = None  # cryptography x509 certificate (EXTERNAL seam)
        # Set once the TLS handshake shows a registered client key (mailsrv.auth.clientcert):
        # EXTERNAL is offered, and on implicit TLS the greeting may be PREAUTH.
        self.external_identity: ExternalIdentity | None = None
        self.client_key: ClientKeyLogin | None = None
        # Implicit TLS: the greeting waits for the handshake, which tells whether it is PREAUTH.
        self._greeting_pending = False
        # While the account provider checks a client certificate's key, commands wait.
        self._checking_certificate = False
        self._factory_ip = ""
        self._bad_count = 0  # BAD answers since the last OK (all of them before login)
        self._busy = False
        self._pumping = False
        self._paused = False
        self._closed = False
        self._line_waiter: Deferred[LineReady | CommandRefused] | None = None
        self._deflate: Any = None  # zlib compress object once COMPRESS=DEFLATE is active
        self._inflate: Any = None
        self._inflate_pending = b""
        self._inflate_full = False  # the last inflate filled a chunk: zlib may hold more
        self._received = 0  # octets since the timeout last restarted
        self._out_dirty = False
        self._condstore_announced = False
        self._hangup = Hangup(server.reactor)
        self.bye_sent = False
        self.contexts = Contexts(self)  # RFC 5267 UPDATE contexts of the selected mailbox

    # --- modes ---------------------------------------------------------------------------
    @property
    def store(self) -> AccountStore:
        if self._store is None:
            raise ServerError("no store before login")
        return self._store

    def rendered(self, message_id: int, key: str, compute: Callable[[], bytes]) -> bytes:
        """An IMAP rendering of the message's immutable data, from the listener's cache."""
        cache = getattr(self.factory, "rendered", None)
        if not isinstance(cache, RenderedCache):
            return compute()  # a session built without a SessionFactory (none in the daemon)
        return cache.get(self.store.account, message_id, key, compute)

    @property
    def mail(self) -> MailContext:
        """The context of `mailsrv.ops.mail` calls: this account, the server's hooks, and
        this session as the origin (its own changes are not queued back to it)."""
        return MailContext(self.store, self.server.mail_hooks, origin=self)

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def utf8(self) -> bool:
        """UTF-8 mailbox names and quoted strings (IMAP4rev2 or UTF8=ACCEPT enabled)."""
        return "IMAP4REV2" in self.enabled or "UTF8=ACCEPT" in self.enabled

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.enabled

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    def enable_condstore(self) -> None:
        """CONDSTORE enabled by use (RFC 7162 §3.1): FETCH/SEARCH MODSEQ, STORE UNCHANGEDSINCE,
        SELECT (CONDSTORE). Tells HIGHESTMODSEQ of the selected mailbox once."""
        if "CONDSTORE" in self.enabled:
            return
        self.enabled.add("CONDSTORE")
        if self.selected is not None:
            info = self.store.mailbox_by_id(self.selected.mailbox_id)
            self.write_untagged(b"OK", responses.resp_text("highest", f"HIGHESTMODSEQ {info.highest_modseq}"))

    @property
    def login_disabled(self) -> bool:
        """RFC 9051 §6.2.3: no cleartext passwords before TLS when so configured."""
        return not self.tls_active and self.server.config.imap.login_disabled_without_tls

    def _literal_limit(self, first_line: bytes) -> int:
        # Before login nothing needs a big literal: an unauthenticated peer must not make
        # us buffer up to the APPENDLIMIT.
        if self.state != NOT_AUTHENTICATED and command_word(first_line) == b"APPEND":
            return self.server.config.limits.max_message_size
        return self.server.config.limits.imap_max_line_length

    def _admit_literal(self, first_line: bytes, size: int) -> CommandRefused | None:
        """APPEND literals are held in memory until the command runs: they take their size
        from the daemon-wide message budget (mailsrv/spool.py, issue 17 item 7), or the
        command is refused for now (RFC 5530 LIMIT)."""
        budget = self.server.message_budget
        if budget is None or command_word(first_line) != b"APPEND":
            return None
        if not budget.reserve(memory_cost(size)):
            self.log.warn("APPEND of {size} octets refused: message memory budget spent", size=size)
            text = "too much message data in memory on the server, try again later"
            return CommandRefused(tag_of(first_line), "NO", "LIMIT", text)
        self._literal_reserved += memory_cost(size)
        return None

    def _spool_literal(self, first_line: bytes, size: int) -> Spool | None:
        """A large APPEND literal goes to a private spool file as it arrives (mailsrv/spool.py),
        and from there to the store in chunks: it costs `memory_cost`, not its size."""
        if size < STREAM_THRESHOLD or command_word(first_line) != b"APPEND":
            return None
        return Spool(self.server.config.data_dir / "spool")

    def _release_literals(self) -> None:
        # Spool files are closed only when no command may still be reading them.
        for spool in self._command_spools:
            spool.discard()
        self._command_spools = []
        budget = self.server.message_budget
        if budget is not None and self._literal_reserved:
            budget.release(self._literal_reserved)
        self._literal_reserved = 0

    # --- connection ----------------------------------------------------------------------
    def connectionMade(self) -> None:
        set_no_delay(self.transport)
        peer = self._t.getPeer()
        host = getattr(peer, "host", None)
        self.peer_ip = str(host) if host is not None else str(peer)
        self._factory_ip = str(host) if host is not None else ""
        self.peer = f"{self.peer_ip}:{getattr(peer, 'port', '')}"
        self.log.info("connected on {listener}", listener=self.listener.name)
        self._set_timeout(self.server.config.imap.unauthenticated_timeout)
        if self.listener.tls == "implicit":
            self._greeting_pending = True
            return
        self._greet()

    def _greet(self) -> None:
        self._greeting_pending = False
        key = self.client_key
        if key is not None and key.preauth and self.state == NOT_AUTHENTICATED:
            # RFC 9051 §7.1.4: authenticated by the TLS client certificate's registered key.
            self.logged_in(key.identity)
            who = key.identity.address.display() if key.identity.address else key.identity.account
            capability = "CAPABILITY " + " ".join(self.capabilities())
            self.write(responses.untagged(b"PREAUTH", responses.resp_text(f"logged in as {who}", capability)))
        else:
            self.write(
                responses.untagged(
                    b"OK", responses.resp_text("mailsrv IMAP ready", "CAPABILITY " + " ".join(self.capabilities()))
                )
            )
        self._flush_out()

    def handshakeCompleted(self) -> None:
        """IHandshakeListener: the peer certificate is known only now (DESIGN.md "TLS"),
        after STARTTLS or, on implicit TLS, before the greeting. Whether its key logs in
        is asked of the account provider (maybe LDAP, in the thread pool): until it has
        answered, no command runs and, on implicit TLS, no greeting is sent."""
        from mailsrv.ops.login import certificate_login
        from mailsrv.tlsutil import peer_certificate

        try:
            self.peer_certificate = peer_certificate(self.transport)
        except Exception:
            self.log.failure("reading the peer certificate")
            self.peer_certificate = None
        if self.peer_certificate is None:
            self._certificate_checked()
            return
        self._checking_certificate = True
        d = certificate_login(self.server, self.peer_certificate, self.peer_ip, f"imap {self.cid}")
        d.addCallbacks(self._client_key_found, self._client_key_failed)
        d.addBoth(lambda _: self._certificate_checked())

    def _client_key_found(self, key: ClientKeyLogin | None) -> None:
        self.client_key = key
        if key is not None:
            identity = key.identity
            self.external_identity = lambda: identity
            self.log.info(
                "client certificate of {key_account} ({key_name})",
                key_account=identity.account,
                key_name=key.key.name,
            )

    def _client_key_failed(self, failure: Failure) -> None:
        from mailsrv.auth.interfaces import TemporaryAuthFailure

        self.client_key = None
        if isinstance(failure.value, TemporaryAuthFailure):
            # Neither PREAUTH nor a silent "unregistered": EXTERNAL answers NO [UNAVAILABLE].
            self.log.warn("client certificate not checked: account provider unavailable")
            self.external_identity = lambda: fail(TemporaryAuthFailure("account provider unavailable"))
        else:
            self.log.failure("checking the client certificate", failure)

    def _certificate_checked(self) -> None:
        self._checking_certificate = False
        if self._closed:
            return
        if self._greeting_pending:
            self._greet()
        self._pump()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closed = True
        self.assembler.clear()  # a literal half received: its spool file goes
        if not self._busy:
            self._release_literals()  # else when the running command ends (it may be reading them)
        self._set_timeout(None)
        self._hangup.cancel()
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        waiter, self._line_waiter = self._line_waiter, None
        if waiter is not None:
            waiter.errback(reason)
        closed = getattr(self.factory, "session_closed", None)
        if closed is not None:
            closed(self, self._factory_ip)
        self.log.info("disconnected")

    def timeoutConnection(self) -> None:
        self.log.info("inactivity timeout")
        self.write(responses.untagged(b"BYE", b"autologout; idle for too long"))
        self.close()

    def close(self) -> None:
        self._flush_out()
        self.state = "logout"
        self._hangup(self.transport)

    @property
    def _t(self) -> Any:
        # The transport: TCP, TLS-wrapped or a StringTransport in tests (zope interfaces
        # are not classes to mypy, so it is typed loosely here, in one place).
        return self.transport

    def callLater(self, period: float, func: Callable[[], object]) -> Any:
        # TimeoutMixin's timer runs on the Server's reactor (a task.Clock in tests).
        return cast(Any, self.server.reactor).callLater(period, func)

    def _set_timeout(self, seconds: int | None) -> None:
        self.setTimeout(seconds)  # type: ignore[no-untyped-call]

    # --- output --------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._closed or self.transport is None:
            return
        if self._deflate is not None:
            out = self._deflate.compress(data)
            self._out_dirty = True
            if out:
                self._t.write(out)
        else:
            self._t.write(data)

    def flush_output(self) -> None:
        """Pushes out what was written outside a command's reply (unsolicited updates)."""
        self._flush_out()

    def _flush_out(self) -> None:
        """With COMPRESS, push out everything written so far (RFC 4978 §4: a sync flush
        after each complete response batch, so the client never waits on our buffer)."""
        if self._deflate is not None and self._out_dirty and not self._closed and self.transport is not None:
            self._t.write(self._deflate.flush(zlib.Z_SYNC_FLUSH))
            self._out_dirty = False

    def write_untagged(self, *parts: bytes) -> None:
        if self.bye_sent:
            return  # RFC 9051 §7.1.5: after BYE on LOGOUT only the tagged OK may follow
        self.write(responses.untagged(*parts))

    def say_bye(self, text: bytes) -> None:
        """``* BYE`` for LOGOUT; pending updates are dropped, nothing untagged follows."""
        self.write_untagged(b"BYE", text)
        self.bye_sent = True

    def write_tagged(self, tag: str, status: str, text: str, code: str | None = None) -> None:
        self.write(responses.tagged(tag, status, text, code))

    def write_continuation(self, text: bytes = b"") -> None:
        self.write(responses.continuation(text))
        self._flush_out()

    # --- input ---------------------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        # The inactivity timeout is a deadline trickled bytes cannot move (issue 17 item 3):
        # it restarts when a line ends outside a literal, or every PROGRESS_OCTETS of input.
        self._received += len(data)
        if self._received >= PROGRESS_OCTETS or (b"\n" in data and not self.assembler.in_literal):
            self._received = 0
            self.resetTimeout()  # type: ignore[no-untyped-call]
        if self._inflate is not None:
            self._inflate_pending += data
            if not self._inflate_more():
                return
        else:
            self.assembler.feed(data)
        waiting = self._busy or self._checking_certificate
        if waiting and self._line_waiter is None and self._buffered() > _PAUSE_ABOVE and not self._paused:
            # Pipelined input piles up behind a slow command: stop reading the socket.
            self._paused = True
            self._t.pauseProducing()
        self._pump()

    def _buffered(self) -> int:
        return len(self.assembler.buffer) + len(self._inflate_pending)

    def _inflate_more(self) -> bool:
        """Decompresses pending input in bounded chunks while the buffer is small."""
        # A full chunk may leave output inside zlib with no input left (the rest of a long
        # match): ask again until a call returns less than a chunk.
        while (self._inflate_pending or self._inflate_full) and len(self.assembler.buffer) < _PAUSE_ABOVE:
            try:
                out = self._inflate.decompress(self._inflate_pending, _INFLATE_CHUNK)
            except zlib.error:
                self.log.warn("bad compressed input")
                self.close()
                return False
            self._inflate_pending = self._inflate.unconsumed_tail
            self._inflate_full = len(out) == _INFLATE_CHUNK
            self.assembler.feed(out)
            if not out:
                break
        return True

    def _inflate_waiting(self) -> bool:
        """Decompressed input is still to come, and the assembler has room for it."""
        more = bool(self._inflate_pending) or self._inflate_full
        return self._inflate is not None and more and len(self.assembler.buffer) < _PAUSE_ABOVE

    def read_line(self) -> Deferred[LineReady | CommandRefused]:
        """The next raw line from the client (AUTHENTICATE responses, IDLE's DONE)."""
        d: Deferred[LineReady | CommandRefused] = Deferred()
        self._line_waiter = d
        return d

    def _pump(self) -> None:
        if self._pumping:
            return
        self._pumping = True
        try:
            while not self._closed and self.state != "logout":
                if self._inflate_waiting():
                    if not self._inflate_more():
                        return
                if self._line_waiter is not None:
                    line = self.assembler.next_line()
                    if line is None:
                        break
                    waiter, self._line_waiter = self._line_waiter, None
                    waiter.callback(line)
                    continue
                if self._busy or self._checking_certificate:
                    break
                event = self.assembler.next_event()
                if event is None:
                    # The assembler took what it had (e.g. into an APPEND literal) while
                    # compressed input is still pending: inflate more and go on. Stopping
                    # here stalled a compressible APPEND above 1 MiB for good (issue 17
                    # item 8): the client had sent everything and no further read came.
                    if self._inflate_waiting():
                        before = (len(self._inflate_pending), len(self.assembler.buffer))
                        if not self._inflate_more():
                            return
                        if (len(self._inflate_pending), len(self.assembler.buffer)) != before:
                            continue
                    break
                if isinstance(event, CommandReady):
                    self._command_spools = [s.spool for s in event.spooled.values()]
                    if event.data.strip():
                        self._run_command(event.data, event.spooled)
                    if not self._busy:
                        self._release_literals()  # answered at once (e.g. BAD)
                elif isinstance(event, ContinuationNeeded):
                    self.write_continuation(b"Ready for literal data")
                elif isinstance(event, CommandRefused):
                    self._release_literals()
                    self.write(responses.tagged(event.tag or "*", event.status, event.text, event.code))
                    self._flush_out()
                    self._count_bad()
        finally:
            self._pumping = False
        if self._paused and self._buffered() < _PAUSE_ABOVE // 2 and not self._closed:
            self._paused = False
            self._t.resumeProducing()

    # --- dispatch ------------------------------------------------------------------------
    def _run_command(self, data: bytes, spooled: dict[int, SpooledLiteral] | None = None) -> None:
        reader = Reader(data, utf8_names=self.utf8, spooled=spooled)
        try:
            tag = reader.tag()
        except ParseError:
            self.write(responses.untagged(b"BAD", responses.resp_text("missing or bad tag", "CLIENTBUG")))
            self._flush_out()
            self._count_bad()
            return
        name = ""
        uid = False
        try:
            reader.sp()
            name = reader.keyword()
            if name == "UID":
                reader.sp()
                name = reader.keyword()
                uid = True
            spec = COMMANDS.get(name)
            if spec is None or (uid and not spec.uid):
                raise SyntaxError_(f"unknown command {'UID ' if uid else ''}{name}")
            if self.state not in spec.states:
                raise SyntaxError_(f"{name} not allowed in {self.state} state")
            if not reader.at_end():
                reader.sp()
        except CommandError as e:
            self._answer_error(tag, name, uid, e)
            return
        self._busy = True
        cmd = Command(tag, name, uid, reader)
        d = Deferred.fromCoroutine(spec.handler(self, cmd))
        d.addCallbacks(
            lambda reply: self._finish(cmd, reply, None),
            lambda failure: self._finish(cmd, None, failure),
        )

    def _count_bad(self) -> None:
        """A peer that keeps sending what is not IMAP (a confused or cross-protocol client,
        e.g. an HTTP request sent to our port) is disconnected instead of answered forever."""
        self._bad_count += 1
        limit = _MAX_BAD_BEFORE_LOGIN if self.state == NOT_AUTHENTICATED else _MAX_BAD_IN_A_ROW
        if self._bad_count >= limit:
            self.log.info("too many bad commands: disconnecting")
            self.write(responses.untagged(b"BYE", b"too many bad commands"))
            self.close()

    def _answer_error(self, tag: str, name: str, uid: bool, e: CommandError) -> None:
        if isinstance(e, SyntaxError_):
            status = "BAD"
            self._count_bad()
            if self._closed or self.state == "logout":
                return
        else:
            status = "NO"
            if isinstance(e, ServerError):
                self.log.warn("{command} failed: {detail}", command=name, detail=e.detail)
        self._flush_updates_for(name, uid)
        self.write_tagged(tag, status, e.text, e.code)
        self._flush_out()

    def _finish(self, cmd: Command, reply: Reply | None, failure: Failure | None) -> None:
        try:
            if self._closed:
                return
            if failure is not None:
                err = failure.value
                if not isinstance(err, CommandError):
                    self.log.failure("{command} crashed", failure, command=cmd.name)
                    err = ServerError(repr(err))
                self._answer_error(cmd.tag, cmd.name, cmd.uid, err)
            else:
                if self.state != NOT_AUTHENTICATED:
                    self._bad_count = 0
                self._flush_updates_for(cmd.name, cmd.uid)
                reply = reply or Reply()
                text = reply.text if reply.text != "completed" else f"{cmd.name} completed"
                self.write_tagged(cmd.tag, "OK", text, reply.code)
                self._flush_out()
            hooks, self.after_reply = self.after_reply, []
            for hook in hooks:
                hook()
        except Exception:
            self.log.failure("answering {command}", command=cmd.name)
            self.close()
        finally:
            self._busy = False
            self._release_literals()
        self._pump()

    # --- login and mailbox selection -----------------------------------------------------
    def logged_in(self, identity: LoginIdentity) -> None:
        """Moves to the authenticated state (RFC 9051 §3.2)."""
        self.identity = identity
        self.account = identity.account
        self._store = self.server.stores.open(identity.account)
        self._unlisten = self._store.add_listener(self._on_change)
        self.state = AUTHENTICATED
        self._set_timeout(self.server.config.imap.idle_timeout)
        self.log.info("logged in")

    def select(self, selected: SelectedMailbox) -> None:
        self.selected = selected
        self.saved_search = []
        self.state = SELECTED

    def unselect(self) -> None:
        self.selected = None
        self.saved_search = []
        if self.state == SELECTED:
            self.state = AUTHENTICATED

    # --- updates -------------------------------------------------------------------------
    def _on_change(self, change: Change, origin: object | None) -> None:
        sel = self.selected
        if sel is None or self._closed:
            return
        if self.contexts and getattr(change, "mailbox_id", None) == sel.mailbox_id:
            self.contexts.changed(change)
        if isinstance(change, MessageAdded):
            if change.mailbox_id == sel.mailbox_id:
                sel.added(change.message)
        elif isinstance(change, FlagsChanged):
            if change.mailbox_id == sel.mailbox_id:
                sel.flags_changed(change.message, told=origin is self)
                if origin is self:
                    return  # answered by the STORE that made it
        elif isinstance(change, MessagesExpunged):
            if change.mailbox_id == sel.mailbox_id and origin is not self:
                sel.expunged(change.uids)
        else:
            return
        if self.idling:
            self.flush_updates(allow_expunge=True)
            self._flush_out()

    def _flush_updates_for(self, name: str, uid: bool) -> None:
        if self.selected is not None:
            self.flush_updates(allow_expunge=uid or name not in NO_EXPUNGE_COMMANDS)

    def flush_updates(self, allow_expunge: bool) -> None:
        """Writes queued EXISTS / EXPUNGE or VANISHED / FETCH FLAGS for the selected mailbox."""
        sel = self.selected
        if sel is None or not sel.has_pending or self.bye_sent:
            return
        for update in sel.take_updates(allow_expunge, vanished=self.qresync):
            self._write_update(update)
        if self.contexts:
            self.contexts.after_flush()  # RFC 5267 ADDTO after the EXISTS that numbers them

    def _write_update(self, update: Update) -> None:
        if isinstance(update, Exists):
            self.write_untagged(b"%d" % update.count, b"EXISTS")
            if not self.rev2:
                self.write_untagged(b"%d" % update.recent, b"RECENT")
        elif isinstance(update, Expunged):
            if self.contexts:
                self.contexts.before_expunge(update.uid, update.msn)  # RFC 5267 §4.3.4
            self.write_untagged(b"%d" % update.msn, b"EXPUNGE")
        elif isinstance(update, Vanished):
            if self.contexts:
                self.contexts.vanished()
            self.write_untagged(b"VANISHED", uid_set(update.uids))
        elif isinstance(update, FlagsUpdate):
            self.write_untagged(b"%d" % update.msn, b"FETCH", self.flags_fetch_items(update.message))

    def flags_fetch_items(self, message: MessageInfo) -> bytes:
        """``(UID n FLAGS (...) [MODSEQ (m)])`` for an unsolicited flag change. The UID is
        always given: RFC 7162 §3.2.4 requires it under QRESYNC and it costs nothing."""
        self.announce_keywords(message.flags)
        flags = set(message.flags)
        if not self.rev2 and self.selected is not None and message.uid in self.selected.recent:
            flags.add("\\Recent")
        items = [b"UID", b"%d" % message.uid, b"FLAGS", responses.flag_list(flags)]
        if self.condstore:
            items += [b"MODSEQ", b"(%d)" % message.modseq]
        return responses.paren(items)

    def announce_keywords(self, flags: frozenset[str]) -> None:
        """Before a FETCH shows a keyword the client has not seen in FLAGS, tell the new
        FLAGS and PERMANENTFLAGS (RFC 9051 §7.3.5: FLAGS lists the flags "applicable")."""
        sel = self.selected
        if sel is None or not sel.new_keywords(flags):
            return
        from mailsrv.imapserver.cmd_mailbox import write_flags

        write_flags(self, sel)

    def announce_expunged(self, uids: list[int] | tuple[int, ...]) -> None:
        """For the session's own expunges (EXPUNGE, UID EXPUNGE, MOVE, CLOSE does not tell):
        removes them from the map and writes EXPUNGE, or VANISHED under QRESYNC."""
        if self.selected is None:
            return
        gone = self.selected.remove_now(uids)
        if not gone:
            return
        if self.qresync:
            if self.contexts:
                self.contexts.vanished()
            self.write_untagged(b"VANISHED", uid_set(sorted(e.uid for e in gone)))
        else:
            for e in gone:
                if self.contexts:
                    self.contexts.before_expunge(e.uid, e.msn)  # RFC 5267 §4.3.4
                self.write_untagged(b"%d" % e.msn, b"EXPUNGE")

    # --- capabilities --------------------------------------------------------------------
    def capabilities(self) -> list[str]:
        from mailsrv.imapserver.cmd_auth import sasl_mechanism_names

        caps = ["IMAP4rev2", "IMAP4rev1"]
        if self.state == NOT_AUTHENTICATED:
            if not self.tls_active and self.server.tls is not None and self.listener.tls == "starttls":
                caps.append("STARTTLS")
            if self.login_disabled:
                caps.append("LOGINDISABLED")
            caps += [f"AUTH={m}" for m in sasl_mechanism_names(self)]
            caps.append("SASL-IR")
        caps += [
            "ENABLE",  # RFC 5161
            "LITERAL+",  # RFC 7888
            "IDLE",  # RFC 2177
            "NAMESPACE",  # RFC 2342
            "ID",  # RFC 2971
            "UIDPLUS",  # RFC 4315
            "MOVE",  # RFC 6851
            "UNSELECT",  # RFC 3691
            "CHILDREN",  # RFC 3348
            "SPECIAL-USE",  # RFC 6154
            "LIST-EXTENDED",  # RFC 5258
            "LIST-STATUS",  # RFC 5819
            "ESEARCH",  # RFC 4731
            "SEARCHRES",  # RFC 5182
            "CONDSTORE",  # RFC 7162
            "QRESYNC",  # RFC 7162
            "STATUS=SIZE",  # RFC 8438
            f"APPENDLIMIT={self.server.config.limits.max_message_size}",  # RFC 7889
            "QUOTA",  # RFC 9208
            "QUOTA=RES-STORAGE",  # RFC 9208
            "BINARY",  # RFC 3516
            "UTF8=ACCEPT",  # RFC 6855
            "MULTIAPPEND",  # RFC 3502
            "CATENATE",  # RFC 4469
            "SORT",  # RFC 5256
            "SORT=DISPLAY",  # RFC 5957
            "ESORT",  # RFC 5267
            "THREAD=ORDEREDSUBJECT",  # RFC 5256
            "THREAD=REFERENCES",  # RFC 5256
            "CONTEXT=SEARCH",  # RFC 5267
            "CONTEXT=SORT",  # RFC 5267
        ]
        if self._deflate is None and self.state != NOT_AUTHENTICATED:
            caps.append("COMPRESS=DEFLATE")  # RFC 4978
        return caps

    # --- STARTTLS and COMPRESS -----------------------------------------------------------
    def start_tls(self) -> None:
        """Runs after ``OK Begin TLS``. Anything the client sent after STARTTLS in plaintext
        is an injection attempt (CVE-2011-0411 class): drop it and the connection."""
        if self.assembler.buffer or self.assembler.in_command:
            self.log.warn("plaintext pipelined after STARTTLS: closing")
            self.assembler.clear()
            self._hangup(self.transport)
            self._closed = True
            return
        self.assembler.clear()
        self._t.startTLS(self.server.tls)
        self.tls_active = True

    def start_compression(self) -> None:
        """RFC 4978 §3: compression starts right after the tagged OK, in both directions;
        input already buffered after the COMPRESS command is compressed data."""
        leftover = bytes(self.assembler.buffer)
        self.assembler.buffer.clear()
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)
        self._inflate_pending = leftover
        self._inflate_full = False


# Re-exported here for the handler modules that import it from the session module.
from mailsrv.imapserver.responses import uid_set  # noqa: E402

__all__ = ["Session", "SessionLog", "uid_set"]
