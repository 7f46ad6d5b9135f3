"""Delivery of a message the server has accepted responsibility for: who receives it, where it
goes for each account, durable storage in account stores, the outgoing queue for remote
recipients, and the delivery status notifications that go back to the sender.

    rcpt = await resolve_recipient(server, envelope, address)   # raises UnknownRecipient, ...
    envelope.recipients.append(rcpt)
    result = await deliver(server, envelope, message, extra_headers)

No protocol here: the SMTP adapter (mailsrv/smtpserver/) fills the `Envelope` from its commands
and maps the typed errors of mailsrv/ops/errors.py to reply codes; submission from the web goes
through mailsrv/ops/submission.py into the same `deliver`.

Invariants:
- `deliver` returns only once every local copy is stored (fsynced and indexed) and remote
  recipients are in the durable queue; any storage failure raises TemporaryFailure, never a
  partial success. Each copy is stored under a `delivery_id` (`delivery_id()`: sender,
  recipient and the message as received), so when the sender retries after a partial failure
  (or after a 250 it never saw) the recipients that already have it do not get it twice.
- Quota is checked for every copy before any is stored: a direct recipient without room refuses
  the whole message (MailboxFull, temporary), a list member without room is skipped.
- An account reached twice (alias and directly) gets one copy; a list member sending to the
  list gets none.
- postmaster and abuse (RFC 5321 §4.5.1, RFC 2142) are deliverable at every local domain and
  at the host name: an explicit account or alias wins, else `[smtp] postmaster_account`.
- The decision of where a copy goes (`decide`) is one place: rulesets, DMARC quarantine, then
  every `DeliveryDecider` registered on `Server.delivery_deciders` (the junk filter), in order.
- A success DSN is sent only after every copy is stored; failing to hand it over is logged and
  never un-accepts the message.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import hashlib
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from twisted.logger import Logger

from mailsrv.address import Address, AddressError, Domain
from mailsrv.auth.interfaces import TemporaryAuthFailure
from mailsrv.config.types import AccountConfig, AliasConfig
from mailsrv.dsnparams import NO_MESSAGE_DSN, NO_RECIPIENT_DSN, MessageDSN, RecipientDSN
from mailsrv.maillog import Acceptance, Copy, message_id_of
from mailsrv.message.headerfields import header_fields as fast_header_fields
from mailsrv.message.source import MessageSource, as_bytes
from mailsrv.metrics import DELIVERIES
from mailsrv.ops import reports
from mailsrv.ops.errors import (
    DirectoryUnavailable,
    MailboxFull,
    MembersOnly,
    RelayDenied,
    StoreUnavailable,
    TemporaryFailure,
    UnknownRecipient,
)
from mailsrv.queue.dsn import DSNRecipient, make_dsn
from mailsrv.queue.interfaces import MessageMeta
from mailsrv.rules import Ruleset, facts_from, first_match
from mailsrv.smtpclient.reply import Reply
from mailsrv.store import interfaces as si
from mailsrv.store.interfaces import AccountStore, MailboxExists, MailboxNotFound, StoreError

if TYPE_CHECKING:
    from mailsrv.server import Server

log = Logger()

# RFC 5321 §4.5.1 (postmaster) and RFC 2142 §2 (abuse): every domain must accept them.
ROLE_LOCALPARTS = frozenset({"postmaster", "abuse"})
# Room for the trace header fields a copy gets on top of the message, in quota checks.
TRACE_ALLOWANCE = 1024
# What delivery deciders (the junk filter) see of a message that streams from its spool file.
DECIDER_BYTES = 1 << 20


class Trace(msgspec.Struct, frozen=True):
    """Where the message came from, for the `Received:` field (RFC 5321 §4.4): the client's
    greeting name, its address and the protocol keyword (RFC 3848: ESMTP, ESMTPSA, UTF8SMTPS,
    ...; the adapter knows which)."""

    helo: str = ""
    remote_ip: str = ""
    protocol: str = "ESMTP"


class Recipient(msgspec.Struct):
    address: Address  # as the sender gave it (NFC)
    accounts: tuple[str, ...] = ()  # local accounts that receive it (an alias: its members')
    alias: AliasConfig | None = None
    remote: bool = False
    dsn: RecipientDSN = NO_RECIPIENT_DSN  # NOTIFY and ORCPT (RFC 3461)


class Envelope(msgspec.Struct):
    """One message transaction: the sender, the recipients resolved so far and what the
    delivery needs to know about how the message arrived."""

    mail_from: Address | None
    recipients: list[Recipient] = []
    smtputf8: bool = False
    trace: Trace = Trace()
    account: str | None = None  # the authenticated submitter
    submission: bool = False  # submitted by `account` (RFC 6409): may go to remote recipients
    # Domains that passed SPF (MAIL FROM) or DKIM; filled by ops.mailauth, read by rulesets.
    verified_domains: frozenset[str] = frozenset()
    # The From: domain's DMARC policy asks to treat a failing message as suspicious (RFC 7489
    # §6.3 p=quarantine): `decide` files it in Junk.
    quarantine: bool = False
    # RFC 8689 REQUIRETLS: onward delivery needs verified TLS to a peer offering it.
    requiretls: bool = False
    # Send later (webapi FutureRelease, webmail): no delivery to anyone before this time; 0: at
    # once. Local recipients are then queued too and delivered by the queue at that time
    # (mailsrv/ops/scheduled.py), through this same `deliver`.
    release_at: float = 0.0
    # Send later from webmail: the submitter's Sent copy is stored when the message goes out.
    sent_copy: bool = False
    dsn: MessageDSN = NO_MESSAGE_DSN  # RET and ENVID (RFC 3461)
    # The submitter's Extra data (webapi Send, X-Mox-Extra-* fields): goes with queued copies
    # into every event (webhook) about them.
    extra: dict[str, str] = {}
    # Non-empty: each remote recipient gets its own queued copy with a unique MAIL FROM
    # `localpart<fromid_separator><fromid>@domain` (mailsrv/ops/submission.py decides).
    fromid_separator: str = ""
    # Mail authentication details for the incoming webhook (ops.mailauth fills them): MAIL
    # FROM passed SPF, the From: domain passed DMARC, the domains of passing DKIM signatures.
    spf_pass: bool = False
    dmarc_pass: bool = False
    dkim_domains: tuple[str, ...] = ()


# --- recipients ------------------------------------------------------------------------------------------------


def _member_accounts(server: Server, alias: AliasConfig) -> tuple[str, ...]:
    out: list[str] = []
    for member in alias.members:
        target = server.dynamic.lookup(member)
        if isinstance(target, AccountConfig) and target.name not in out:
            out.append(target.name)
    return tuple(out)


def is_member(server: Server, alias: AliasConfig, sender: Address | None, account: str | None) -> bool:
    """Whether `sender` (an address) or `account` (any of its addresses) is a member of `alias`."""
    keys = {m.key() for m in alias.members}
    if sender is not None and sender.key() in keys:
        return True
    if account is not None:
        acc = server.dynamic.account_by_name(account)
        if acc is not None and any(a.key() in keys for a in acc.addresses):
            return True
    return False


def is_role_address(address: Address) -> bool:
    """postmaster@ or abuse@ (compared case-insensitively, RFC 5321 §4.5.1)."""
    return address.localpart.value.casefold() in ROLE_LOCALPARTS


def postmaster_account(server: Server, domain: Domain | None = None) -> str | None:
    """The account that receives postmaster@ and abuse@ mail not addressed to an explicit
    account or alias: `[smtp] postmaster_account`, else the first account of `domain`, else the
    first account configured (RFC 5321 §4.5.1 wants such mail accepted, not refused)."""
    configured = server.config.smtp.postmaster_account
    accounts = server.dynamic.current.accounts
    if configured is not None and configured in accounts:
        return configured
    if domain is not None:
        for acc in accounts.values():
            if acc.domain == domain:
                return acc.name
    return next(iter(accounts), None)


def _host_domain(server: Server, domain: Domain) -> bool:
    return domain.ascii == server.config.hostname.ascii


async def resolve_recipient(server: Server, envelope: Envelope, address: Address) -> Recipient:
    """A recipient: a local account or alias, a remote address (for an authenticated
    submitter), or a typed refusal: RelayDenied, UnknownRecipient, MembersOnly, MailboxFull,
    DirectoryUnavailable."""
    local_domain = server.dynamic.is_local_domain(address.domain)
    if not local_domain:
        if is_role_address(address) and _host_domain(server, address.domain):
            return _postmaster(server, address, None)
        if envelope.submission and envelope.account is not None:
            return Recipient(address, remote=True)
        # Never relay for unauthenticated peers (RFC 5321 §3.6.2, RFC 5068).
        raise RelayDenied("relay access denied")
    target = server.dynamic.lookup(address)
    if target is None and server.config.ldap is not None:
        domain = server.dynamic.current.domains.get(address.domain.ascii)
        stripped = address.strip_catchall(domain.localpart_catchall_separator if domain else None)
        try:
            account = await server.accounts.account_for_address(stripped)
        except TemporaryAuthFailure:
            raise DirectoryUnavailable("directory unavailable, try again later") from None
        if account is not None:
            return Recipient(address, accounts=(account,))
    if target is None:
        if is_role_address(address):
            return _postmaster(server, address, address.domain)
        raise UnknownRecipient("no such user here")
    if isinstance(target, AliasConfig):
        if not target.post_public and not is_member(server, target, envelope.mail_from, envelope.account):
            raise MembersOnly("only members may send to this list")
        accounts = _member_accounts(server, target)
        if not accounts:
            raise UnknownRecipient("list has no local members")
        return Recipient(address, accounts=accounts, alias=target)
    if await _quota_reached(server, target.name):
        # RFC 3463 4.2.2 mailbox full, temporary: the sender retries after the user cleans up.
        raise MailboxFull("mailbox full")
    return Recipient(address, accounts=(target.name,))


def _postmaster(server: Server, address: Address, domain: Domain | None) -> Recipient:
    account = postmaster_account(server, domain)
    if account is None:
        raise UnknownRecipient("no account receives postmaster mail")
    return Recipient(address, accounts=(account,))


def postmaster_address(server: Server) -> Address:
    """What the bare recipient `postmaster` (RFC 5321 §4.1.1.3, any case) means: postmaster
    at our host name."""
    return Address.parse(f"postmaster@{server.config.hostname.ascii}")


# --- trace header fields ---------------------------------------------------------------------------------------


# Queue ids name a message in its Received: fields and the log; they need to be unique, not
# secret. A generator seeded from the OS once: os.urandom per message was a system call that
# releases the GIL on the reactor thread.
_ids = random.Random(os.urandom(32))


def new_id() -> str:
    return f"{_ids.getrandbits(48):012x}"


_date_cache: tuple[int, str] = (0, "")


def _date_now() -> str:
    """The RFC 5322 date-time of now, local time, formatted once a second (every delivery
    writes it into its trace fields)."""
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, email.utils.format_datetime(datetime.datetime.fromtimestamp(second).astimezone()))
    return _date_cache[1]


_NOT_HELO = re.compile(r"[^\x21-\x7e]")
_NOT_IP = re.compile(r"[^0-9A-Za-z:.]")
_NOT_KEYWORD = re.compile(r"[^A-Za-z0-9]")


def _printable_ascii(text: str) -> bool:
    """Only characters 0x21-0x7e (the common case needs no substitution)."""
    return text.isascii() and text.isprintable() and " " not in text


def received_header(server: Server, envelope: Envelope, for_address: Address | None, queue_id: str) -> bytes:
    """RFC 5321 §4.4 trace header; the protocol keyword per RFC 3848 comes with the trace."""
    trace = envelope.trace
    helo = (trace.helo if _printable_ascii(trace.helo) else _NOT_HELO.sub("?", trace.helo))[:100] or "unknown"
    remote = _NOT_IP.sub("?", trace.remote_ip)[:64]
    protocol = (
        trace.protocol
        if trace.protocol.isalnum() and trace.protocol.isascii()
        else _NOT_KEYWORD.sub("", trace.protocol)
    )[:16] or "ESMTP"
    date = _date_now()
    target = f"\r\n\tfor <{for_address.display()}>" if for_address is not None else ""
    text = (
        f"Received: from {helo} ([{remote}])\r\n\tby {server.config.hostname.ascii} (mailsrv)"
        f" with {protocol} id {queue_id}{target}; {date}\r\n"
    )
    return text.encode("utf-8")


def header_fields(data: bytes) -> list[tuple[str, str]]:
    """The message's header fields in order, values unfolded, 8-bit read as UTF-8 (RFC 6532:
    compat32's `get` would turn valid UTF-8 into U+FFFD). Same as the email package's parser,
    at a tenth of the CPU (`mailsrv.message.headerfields`)."""
    return fast_header_fields(data)


# --- the decision point ----------------------------------------------------------------------------------------


class Decision(msgspec.Struct, frozen=True):
    """Where a copy goes for one account, and why."""

    mailbox: str = "INBOX"
    mailing_list: bool = False  # a ruleset marked it as list mail (List-Id within a verified domain)
    accept_regardless: bool = False  # a ruleset says: skip the reputation/junk verdict
    ruleset: Ruleset | None = None
    reason: str = ""  # who moved it last ("ruleset", "dmarc", a decider's name): for logs and events
    # The junk filter refuses the message for this account: the copy goes to `mailbox` (the account's rejects
    # mailbox) when `keep_copy`, and when every copy is refused the sender gets a temporary failure.
    rejected: bool = False
    keep_copy: bool = True
    # Header fields a decider puts on top of the stored copy (the junk filter's X-Mailsrv-Junk).
    headers: bytes = b""


class DecisionInput:
    """What a decider sees: the account, the envelope and the copy as it will be stored, and
    its header fields (`header_fields`), parsed when a decider first asks for them (the junk
    filter untrained, as on a new server, does not)."""

    __slots__ = ("_headers", "account", "envelope", "message")

    def __init__(
        self,
        account: str,
        envelope: Envelope,
        message: bytes,
        headers: list[tuple[str, str]] | Callable[[], list[tuple[str, str]]],
    ) -> None:
        self.account = account
        self.envelope = envelope
        self.message = message
        self._headers = headers

    @property
    def headers(self) -> list[tuple[str, str]]:
        if callable(self._headers):
            self._headers = self._headers()
        return self._headers


_INBOX = Decision()
_QUARANTINED = Decision(mailbox="Junk", reason="dmarc")

# A decider gets the decision so far and returns it, changed or not. The junk filter is one:
# it must leave `accept_regardless` decisions alone and should treat `mailing_list` mail gently.
# Deciders run in the order of `Server.delivery_deciders`; an exception in one is logged and
# the decision so far stands (a broken filter must not lose or refuse mail).
DeliveryDecider = Callable[[DecisionInput, Decision], Awaitable[Decision]]


async def decide(
    server: Server,
    envelope: Envelope,
    account: str,
    message: bytes | MessageSource,
    *,
    headers: list[tuple[str, str]] | Callable[[], list[tuple[str, str]]] | None = None,
) -> Decision:
    """Rulesets (first match), DMARC quarantine (Junk unless a ruleset accepts regardless),
    then every registered `DeliveryDecider`. Deciders see at most the first
    `DECIDER_BYTES` of a message that streams from its spool file. `headers` are
    `header_fields(message)` when the caller has them already, or a function that gives
    them (called only when a ruleset or a decider needs them)."""
    default = _QUARANTINED if envelope.quarantine else _INBOX
    rulesets = server.rules.for_account(account)
    deciders = server.delivery_deciders
    if not rulesets and not deciders:
        return default
    if headers is None:

        def parsed() -> list[tuple[str, str]]:
            return header_fields(message.header_block() if isinstance(message, MessageSource) else message)

        headers = parsed
    decision = default
    if rulesets:
        if callable(headers):
            headers = headers()
        sender = str(envelope.mail_from) if envelope.mail_from is not None else ""
        match = first_match(rulesets, facts_from(sender, envelope.verified_domains, headers))
        if match is not None:
            quarantined = envelope.quarantine and not match.accept_regardless
            decision = Decision(
                mailbox="Junk" if quarantined else (match.mailbox or "INBOX"),
                mailing_list=match.is_list,
                accept_regardless=match.accept_regardless,
                ruleset=match,
                reason="dmarc" if quarantined else "ruleset",
            )
    if deciders:
        seen = message if isinstance(message, bytes) else message.read(0, DECIDER_BYTES)
        subject = DecisionInput(account, envelope, seen, headers)
        for decider in deciders:
            try:
                decision = await decider(subject, decision)
            except Exception:
                log.failure("delivery decider {decider!r} failed for {account}", decider=decider, account=account)
    return decision


# --- delivery --------------------------------------------------------------------------------------------------


class QueuedRecipient(msgspec.Struct):
    """Where one remote recipient went: its queued message, and the fromid of that copy's MAIL
    FROM ("" when none was used)."""

    address: str
    queue_id: int
    fromid: str = ""


class DeliveryResult(msgspec.Struct):
    queue_id: str = ""  # the id in this message's Received: fields
    delivered: list[str] = []  # accounts that got a copy
    mailboxes: dict[str, str] = {}  # account -> mailbox its copy went to
    over_quota: list[str] = []  # list members skipped for want of room
    queued: int | None = None  # the outgoing queue's id, when there were remote recipients
    message_id: str = ""  # the Message-ID field as delivered (submission may have added it), for the log
    queued_recipients: list[QueuedRecipient] = []  # remote recipients, in the envelope's order


def acceptance(envelope: Envelope, result: DeliveryResult, size: int, peer_ip: str) -> Acceptance:
    """The log line of an accepted message (docs/operations.md "Log lines that trace mail"): the
    same for SMTP, submission, webmail and the webapi."""
    copies = [
        Copy(
            recipient=rcpt.address.display(),
            mailboxes=[(a, result.mailboxes[a]) for a in rcpt.accounts if a in result.mailboxes],
            queue=result.queued if rcpt.remote else None,
        )
        for rcpt in envelope.recipients
    ]
    return Acceptance(
        queue_id=result.queue_id,
        message_id=result.message_id,
        sender=envelope.mail_from.display() if envelope.mail_from is not None else None,
        size=size,
        peer_ip=peer_ip,
        account=envelope.account,
        copies=copies,
    )


def _digest(data: bytes | MessageSource, header: bytes) -> bytes:
    """What identifies the message's bytes for `delivery_id`: all of them in memory; for a
    message streamed from its spool file, its header block (with its Message-ID) and size."""
    if isinstance(data, MessageSource):
        return hashlib.sha256(header + b"\0" + str(len(data)).encode()).digest()
    return hashlib.sha256(data).digest()


def delivery_id(envelope: Envelope, recipient: Address, digest: bytes) -> str:
    """The id a copy is stored under (idempotent appends, SCALING.md promise 4): the same
    reverse-path, recipient and message bytes (as the sender sent them, without our trace
    fields, whose queue id is new on every attempt) give the same id. `deliver` uses it
    only for a message with its own Message-ID field (RFC 5322 §3.6.4: unique per message),
    so that the same bytes sent again are the same message retried; a client that sends one
    text twice without a Message-ID gets two copies."""
    sender = str(envelope.mail_from) if envelope.mail_from is not None else ""
    h = hashlib.sha256(digest)
    h.update(b"\0" + sender.encode("utf-8", "surrogateescape") + b"\0")
    h.update(str(recipient).encode("utf-8", "surrogateescape"))
    return "smtp:" + h.hexdigest()[:40]


async def _usage(server: Server, account: str) -> tuple[int, int | None]:
    """(usage, limit) of the account's store; StoreUnavailable (ops) when it cannot be read."""
    try:
        store = server.stores.open(account)
        limit = store.quota_limit()
        return (await store.usage_async() if limit is not None else 0), limit
    except si.StoreUnavailable as e:
        raise StoreUnavailable(str(e)) from e


async def _quota_reached(server: Server, account: str) -> bool:
    usage, limit = await _usage(server, account)
    return limit is not None and usage >= limit


async def _over_quota(server: Server, account: str, size: int) -> bool:
    usage, limit = await _usage(server, account)
    return limit is not None and usage + size > limit


def _plan(server: Server, envelope: Envelope) -> list[tuple[Recipient, str]]:
    """(recipient, account) for each copy: one per account, direct recipients first (its
    Delivered-To names the account's own address), none for a list member who sent it."""
    sender_account = envelope.account
    if (
        sender_account is None
        and envelope.mail_from is not None
        and any(r.alias is not None for r in envelope.recipients)
    ):
        # Only a list's members are left out: no lookup of the sender without one.
        own = server.dynamic.lookup(envelope.mail_from)
        sender_account = own.name if isinstance(own, AccountConfig) else None
    plan: list[tuple[Recipient, str]] = []
    seen: set[str] = set()
    for rcpt in sorted(envelope.recipients, key=lambda r: r.alias is not None):
        if rcpt.remote:
            continue
        for account in rcpt.accounts:
            if account in seen or (rcpt.alias is not None and account == sender_account):
                continue
            seen.add(account)
            plan.append((rcpt, account))
    return plan


# The counters' children, looked up once (labels() takes a lock and builds a key per call).
_DELIVERED = DELIVERIES.labels("delivered")
_QUEUED = DELIVERIES.labels("queued")
_REJECTED = DELIVERIES.labels("rejected")
_FAILED = DELIVERIES.labels("failed")


async def deliver(
    server: Server, envelope: Envelope, data: bytes | MessageSource, extra_headers: bytes = b""
) -> DeliveryResult:
    """Stores `extra_headers + data` for every local account once and queues it for remote
    recipients. Raises MailboxFull (a direct recipient without room, or nobody left) or
    TemporaryFailure (a store or the queue failed). A `MessageSource` (a large message in its
    spool file) is never read whole: its header block is, and the stores copy the rest."""
    queue_id = new_id()
    result = DeliveryResult(queue_id=queue_id)
    header = data.header_block() if isinstance(data, MessageSource) else data
    fields = header_fields(header)
    # Our own fields on top (Authentication-Results:, or what submission adds): parsed when
    # something reads them, which for the Message-ID is only when the name is in there.
    extra_fields = _LazyFields(extra_headers)
    own_message_id = message_id_of(fields)
    extra_message_id = message_id_of(extra_fields.get()) if b"message-id" in extra_headers.lower() else ""
    result.message_id = extra_message_id or own_message_id
    digest = _digest(data, header) if own_message_id else None
    # Whether the fields of data's header, parsed on their own, are what parsing them below our
    # fields gives: data starts with a field, not a continuation or a "From " line (which
    # header_fields treats by their position), so a copy's fields are ours followed by them.
    data_fields_follow = isinstance(data, bytes) and _starts_with_field(data)
    # Send later: nobody gets the message before its time, our own recipients neither.
    held = [r for r in envelope.recipients if not r.remote] if envelope.release_at > time.time() else []
    plan = [] if held else _plan(server, envelope)
    size = len(data) + len(extra_headers) + TRACE_ALLOWANCE
    for rcpt, account in list(plan):
        if await _over_quota(server, account, size):
            if rcpt.alias is None:
                raise MailboxFull(f"mailbox full: {rcpt.address.display()}")
            plan.remove((rcpt, account))
            result.over_quota.append(account)
    remote_rcpts = [r for r in envelope.recipients if r.remote]
    if not plan and not remote_rcpts and not held:
        raise MailboxFull("mailbox full")
    failures: list[str] = []
    rejected: list[str] = []
    for rcpt, account in plan:
        trace = b"Delivered-To: " + rcpt.address.display().encode("utf-8") + b"\r\n"
        trace += received_header(server, envelope, rcpt.address, queue_id)
        message = _with_head(trace + extra_headers, data)
        report_mailbox = reports.mailbox_for(server, rcpt.address)
        if report_mailbox is not None:
            decision = Decision(mailbox=report_mailbox, accept_regardless=True, reason="reports")
        else:
            # The copy's header is the trace, then extra_headers, then data's (each parsed once):
            # only when a ruleset or decider looks at them.
            def copy_fields(trace: bytes = trace) -> list[tuple[str, str]]:
                return header_fields(trace) + extra_fields.get() + fields

            decision = await decide(server, envelope, account, message, headers=copy_fields)
        if decision.headers:
            # A decider's fields go right below our trace fields, above anything the sender wrote.
            message = _with_head(trace + decision.headers + extra_headers, data)
        try:
            store = server.stores.open(account)
        except StoreError as e:
            failures.append(account)
            log.error("delivery to {account} failed: {error!r}", account=account, error=e)
            continue
        mailbox = decision.mailbox
        if decision.rejected:
            rejected.append(account)
            if decision.keep_copy:
                await _keep_rejected(store, mailbox, message, account)
            continue
        once = delivery_id(envelope, rcpt.address, digest) if digest is not None else None
        # The copy's header fields for the store, which then does not parse them again.
        head = trace + decision.headers + extra_headers
        stored_fields = header_fields(head) + fields if data_fields_follow and head.endswith(b"\r\n") else None
        try:
            try:
                appended = await store.append(
                    mailbox, message, delivery=True, delivery_id=once, header_fields=stored_fields
                )
            except MailboxNotFound:
                # The mailbox named by a rule may be gone: the Inbox then. A reports mailbox is made.
                if mailbox == "INBOX":
                    raise
                if report_mailbox is not None:
                    try:
                        await store.create_mailbox(mailbox)
                    except MailboxExists:
                        pass  # another delivery made it meanwhile
                else:
                    mailbox = "INBOX"
                appended = await store.append(
                    mailbox, message, delivery=True, delivery_id=once, header_fields=stored_fields
                )
        except (StoreError, OSError) as e:  # OSError: the disk, or the spool file being copied
            failures.append(account)
            log.error("delivery to {account} failed: {error!r}", account=account, error=e)
        else:
            result.delivered.append(account)
            result.mailboxes[account] = mailbox
            if report_mailbox is not None:
                reports.record_in_background(server, account, mailbox, message)
            if server.webhooks is not None and server.webhooks.wants_deliveries(account):
                # A streamed message's payload is built from its first DECIDER_BYTES, as deciders see it.
                seen = message if isinstance(message, bytes) else message.read(0, DECIDER_BYTES)
                await _webhook_events(server, envelope, rcpt.address, account, mailbox, seen, store, appended)
    if remote_rcpts or held:
        # Only submission queues mail, and it hands over the message in memory.
        message = received_header(server, envelope, None, queue_id) + extra_headers + as_bytes(data)
        meta = MessageMeta(
            header_message_id=result.message_id,
            subject=_subject(fields),
            extra=envelope.extra,
            release_at=envelope.release_at,
            local_recipients=tuple(str(r.address) for r in held),
            sent_copy=envelope.sent_copy,
        )
        await _enqueue(server, envelope, remote_rcpts + held, message, meta, result)
    _DELIVERED.inc(len(result.delivered))
    _QUEUED.inc(len(remote_rcpts) + len(held))
    _REJECTED.inc(len(rejected))
    if failures:
        _FAILED.inc(len(failures))
        raise StoreUnavailable("local delivery failed, try again later")
    if rejected and not result.delivered and not remote_rcpts:
        # Says nothing about why: a spammer learns nothing, a real sender's server retries and the
        # copy in the rejects mailbox lets the user rescue a false positive meanwhile.
        raise TemporaryFailure("temporary failure, try again later")
    if held:
        return result  # success DSNs for our recipients come with their delivery, at the release
    # The DSN returns the header only (RFC 3461 §4.3 for a success).
    returned = header if isinstance(data, MessageSource) else data
    # The sender retrying this message (a 250 it never saw) gets no second success DSN.
    sender = envelope.mail_from

    def dsn_id() -> str | None:
        return "dsn:" + delivery_id(envelope, sender, digest)[5:] if digest and sender else None

    await _report_local_success(
        server, envelope, lambda: received_header(server, envelope, None, queue_id) + extra_headers + returned, dsn_id
    )
    return result


async def _webhook_events(
    server: Server,
    envelope: Envelope,
    rcpt: Address,
    account: str,
    mailbox: str,
    message: bytes,
    store: AccountStore,
    appended: Any,
) -> None:
    """The account's webhook events for a stored copy (mailsrv/ops/incoming.py), durable
    before the delivery is acknowledged: failing to write them fails the delivery temporarily."""
    from mailsrv.ops.incoming import after_delivery

    info = await store.message_async(appended.mailbox_id, appended.uid) if appended is not None else None
    try:
        await after_delivery(server, envelope, rcpt, account, mailbox, message, info.message_id if info else 0)
    except Exception:
        log.failure("webhook event for a delivery to {account} not written", account=account)
        raise TemporaryFailure("local delivery failed, try again later") from None


def _subject(fields: list[tuple[str, str]]) -> str:
    for name, value in fields:
        if name.lower() == "subject":
            return value[:1000]
    return ""


def new_fromid() -> str:
    """16 random octets, base64url without padding (22 characters): unique per queued copy."""
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


async def _enqueue(
    server: Server,
    envelope: Envelope,
    remote: list[Recipient],
    message: bytes,
    meta: MessageMeta,
    result: DeliveryResult,
) -> None:
    """Queues `message` for the remote recipients: as one message, or one per recipient with
    its own fromid MAIL FROM (envelope.fromid_separator)."""
    queue = server.queue
    account = envelope.account or ""
    if not envelope.fromid_separator or envelope.mail_from is None:
        qid = await queue.enqueue(
            envelope.mail_from,
            [r.address for r in remote],
            message,
            account,
            envelope.smtputf8,
            envelope.requiretls,
            envelope.dsn,
            [r.dsn for r in remote],
            meta,
        )
        result.queued = qid
        result.queued_recipients = [QueuedRecipient(str(r.address), qid) for r in remote]
        return
    sender = envelope.mail_from
    for rcpt in remote:
        fromid = new_fromid()
        mail_from = Address.parse(f"{sender.localpart}{envelope.fromid_separator}{fromid}@{sender.domain.ascii}")
        # One Sent copy for the message, with its first queued copy.
        sent_copy = meta.sent_copy and not result.queued_recipients
        qid = await queue.enqueue(
            mail_from,
            [rcpt.address],
            message,
            account,
            envelope.smtputf8,
            envelope.requiretls,
            envelope.dsn,
            [rcpt.dsn],
            msgspec.structs.replace(meta, fromid=fromid, sent_copy=sent_copy),
        )
        result.queued = result.queued or qid
        result.queued_recipients.append(QueuedRecipient(str(rcpt.address), qid, fromid))


def _starts_with_field(data: bytes) -> bool:
    """Whether `data` starts with a header field name (a printable character other than ':')
    and not with a "From " line."""
    if not data or data.startswith(b"From "):
        return False
    return 33 <= data[0] <= 126 and data[0] != 58  # 58: ":"


class _LazyFields:
    """`header_fields(data)`, parsed on first use."""

    __slots__ = ("_data", "_fields")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._fields: list[tuple[str, str]] | None = None

    def get(self) -> list[tuple[str, str]]:
        if self._fields is None:
            self._fields = header_fields(self._data)
        return self._fields


def _with_head(head: bytes, data: bytes | MessageSource) -> bytes | MessageSource:
    return head + data if isinstance(data, bytes) else data.with_head(head)


async def _keep_rejected(store: AccountStore, mailbox: str, message: bytes | MessageSource, account: str) -> None:
    """A refused copy into the rejects mailbox (created on first use); failing to keep it is logged only."""
    try:
        try:
            await store.append(mailbox, message, delivery=True)
        except MailboxNotFound:
            await store.create_mailbox(mailbox)
            await store.append(mailbox, message, delivery=True)
    except StoreError as e:
        log.error("keeping a rejected message for {account} failed: {error!r}", account=account, error=e)


# --- delivery status notifications -----------------------------------------------------------------------------


# What differs between two renderings of the same DSN (mailsrv.queue.dsn.make_dsn): its own
# Date and Message-ID, the attempt time, and the random MIME boundary (taken out separately).
_DSN_VOLATILE = re.compile(rb"(?im)^(?:date|message-id|last-attempt-date)[ \t]*:[^\r\n]*\r?\n")
_DSN_BOUNDARY = re.compile(rb'(?i)boundary="([^"\r\n]{1,200})"')


def dsn_delivery_id(dsn: bytes) -> str:
    """The delivery id of a DSN (idempotent appends, like `delivery_id`): the same report
    about the same message (recipients, actions, replies, arrival, returned header) made
    again, e.g. by a queue runner retrying after a crash between storing it and recording
    it, has the same id whenever it was rendered."""
    boundary = _DSN_BOUNDARY.search(dsn[:4096])
    stable = _DSN_VOLATILE.sub(b"", dsn)
    if boundary is not None:
        stable = stable.replace(boundary.group(1), b"")
    return "dsn:" + hashlib.sha256(stable).hexdigest()[:40]


async def deliver_dsn(server: Server, mail_from: str, dsn: bytes, once: str | None = None) -> None:
    """Hands a DSN to the sender of the original message: into the sender's INBOX when the
    sender is local (the usual case: only submission queues mail), else queued with the null
    reverse-path, which never produces a DSN itself. Raises when it could not be stored or
    queued (the queue runner then keeps the original and retries later). A local copy is
    stored under the delivery id `once`, by default `dsn_delivery_id`: the same DSN handed
    over again is not stored twice."""
    try:
        address = Address.parse(mail_from)
    except AddressError:
        log.warn("DSN for unparsable sender {sender!r} dropped", sender=mail_from)
        return
    found = server.dynamic.lookup(address)
    if isinstance(found, AccountConfig):
        await server.stores.open(found.name).append(
            "INBOX", dsn, delivery=True, delivery_id=once or dsn_delivery_id(dsn)
        )
        return
    await server.queue.enqueue(None, [address], dsn, "", not mail_from.isascii())


def _sender_verified(envelope: Envelope, sender: Address) -> bool:
    """Whether a success DSN may go to `sender` (docs/security.md, issue 17 item 5): the
    submitter's own session, or a reverse-path whose domain passed SPF or DKIM for this
    message. Anyone may put any address in MAIL FROM on port 25 and ask NOTIFY=SUCCESS;
    honouring that would make us mail a third party on an attacker's behalf."""
    if envelope.account is not None:
        return True
    domain = sender.domain.ascii.lower().rstrip(".")
    return any(d.lower().rstrip(".") == domain for d in envelope.verified_domains)


async def _report_local_success(
    server: Server, envelope: Envelope, message: Callable[[], bytes], once: Callable[[], str | None] = lambda: None
) -> None:
    """RFC 3461 §5.2.2.1: the final MTA sends a "delivered" DSN for local recipients that
    asked for NOTIFY=SUCCESS (a list: "expanded", §5.2.7, and nothing more from its members).
    Only after every copy was stored; a DSN that cannot be handed over is logged, never
    turned into a refusal of the message, which is already delivered. `once` gives the
    DSN's delivery id (asked only when there is a DSN to send)."""
    if envelope.mail_from is None:
        return  # RFC 5321 §4.5.5: nothing goes back to the null reverse-path
    if not _sender_verified(envelope, envelope.mail_from):
        if any(r.dsn.wants("delivered") for r in envelope.recipients if not r.remote):
            log.info("success DSN not sent: sender {sender} is not verified", sender=str(envelope.mail_from))
        return
    now = time.time()
    reports = [
        DSNRecipient(
            str(r.address),
            "expanded" if r.alias is not None else "delivered",
            Reply(250, ("2.0.0 delivered",)),
            last_attempt=now,
            original_recipient=r.dsn.orcpt,
        )
        for r in envelope.recipients
        if not r.remote and r.dsn.wants("delivered")
    ]
    if not reports:
        return
    hostname = server.config.hostname.ascii
    # RFC 3461 §4.3: RET=FULL concerns "failed" DSNs; this one returns the header only.
    dsn = make_dsn(hostname, str(envelope.mail_from), message(), reports, now, now, envelope.dsn.envid)
    try:
        await deliver_dsn(server, str(envelope.mail_from), dsn, once())
    except Exception:
        log.failure("success DSN to {sender} not delivered", sender=str(envelope.mail_from))
        return
    log.info("delivered DSN to {sender} for {count} recipient(s)", sender=str(envelope.mail_from), count=len(reports))
