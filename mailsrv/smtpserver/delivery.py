"""What happens to a message once SMTP has it: recipients, headers, the decision point, and
durable delivery into account stores (or the outgoing queue for remote recipients).

`resolve_recipient` answers RCPT; `deliver` answers the end of DATA/BDAT. Both raise
`SMTPReply` for a refusal, with the basic and enhanced status code (RFC 5321 §4.2, RFC 3463).
"""

from __future__ import annotations

import datetime
import email.utils
import os
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from twisted.logger import Logger

from mailsrv.address import Address
from mailsrv.auth.interfaces import TemporaryAuthFailure
from mailsrv.config.types import AccountConfig, AliasConfig
from mailsrv.dsnparams import NO_MESSAGE_DSN, NO_RECIPIENT_DSN, MessageDSN, RecipientDSN
from mailsrv.queue.dsn import DSNRecipient, make_dsn
from mailsrv.queue.service import deliver_dsn
from mailsrv.rules import Ruleset, facts_from, first_match
from mailsrv.smtpclient import Reply
from mailsrv.store.interfaces import StoreError

if TYPE_CHECKING:
    from mailsrv.server import Server

log = Logger()


class SMTPReply(Exception):
    """A reply that ends the current command: `code` (3 digits), enhanced code, text."""

    def __init__(self, code: int, enhanced: str, text: str) -> None:
        super().__init__(f"{code} {enhanced} {text}")
        self.code = code
        self.enhanced = enhanced
        self.text = text


@dataclass
class Recipient:
    address: Address  # as the client gave it (NFC)
    accounts: tuple[str, ...] = ()  # local accounts that receive it (an alias: its members')
    alias: AliasConfig | None = None
    remote: bool = False
    dsn: RecipientDSN = NO_RECIPIENT_DSN  # RCPT TO's NOTIFY and ORCPT (RFC 3461)


@dataclass
class Envelope:
    mail_from: Address | None
    recipients: list[Recipient] = field(default_factory=list)
    smtputf8: bool = False
    helo: str = ""
    remote_ip: str = ""
    tls: bool = False
    account: str | None = None  # authenticated submitter
    submission: bool = False
    # Domains that passed SPF (MAIL FROM) or DKIM for this message; filled by the
    # mail-authentication checks, read by rulesets ("verified domain").
    verified_domains: frozenset[str] = frozenset()
    # The From: domain's DMARC policy asks to treat a failing message as suspicious
    # (RFC 7489 §6.3 p=quarantine): `decide` files it in Junk.
    quarantine: bool = False
    # RFC 8689: MAIL FROM ... REQUIRETLS; onward delivery needs verified TLS to a peer offering it.
    requiretls: bool = False
    dsn: MessageDSN = NO_MESSAGE_DSN  # MAIL FROM's RET and ENVID (RFC 3461)


def _member_accounts(server: Server, alias: AliasConfig) -> tuple[str, ...]:
    out: list[str] = []
    for member in alias.members:
        target = server.dynamic.lookup(member)
        if isinstance(target, AccountConfig) and target.name not in out:
            out.append(target.name)
    return tuple(out)


def is_member(server: Server, alias: AliasConfig, sender: Address | None, account: str | None) -> bool:
    keys = {m.key() for m in alias.members}
    if sender is not None and sender.key() in keys:
        return True
    if account is not None:
        acc = server.dynamic.account_by_name(account)
        if acc is not None and any(a.key() in keys for a in acc.addresses):
            return True
    return False


async def resolve_recipient(server: Server, envelope: Envelope, address: Address) -> Recipient:
    """RCPT TO: a local account or alias, a remote address (submission only), or a refusal."""
    local_domain = server.dynamic.is_local_domain(address.domain)
    if not local_domain:
        if envelope.submission and envelope.account is not None:
            return Recipient(address, remote=True)
        # Never relay for unauthenticated peers (RFC 5321 §3.6.2, RFC 5068).
        raise SMTPReply(554, "5.7.1", "relay access denied")
    target = server.dynamic.lookup(address)
    if target is None and server.config.ldap is not None:
        domain = server.dynamic.current.domains.get(address.domain.ascii)
        stripped = address.strip_catchall(domain.localpart_catchall_separator if domain else None)
        try:
            account = await server.accounts.account_for_address(stripped)
        except TemporaryAuthFailure:
            raise SMTPReply(451, "4.4.3", "directory unavailable, try again later") from None
        if account is not None:
            return Recipient(address, accounts=(account,))
    if target is None:
        raise SMTPReply(550, "5.1.1", "no such user here")
    if isinstance(target, AliasConfig):
        if not target.post_public and not is_member(server, target, envelope.mail_from, envelope.account):
            raise SMTPReply(550, "5.7.1", "only members may send to this list")
        accounts = _member_accounts(server, target)
        if not accounts:
            raise SMTPReply(550, "5.1.1", "list has no local members")
        return Recipient(address, accounts=accounts, alias=target)
    store = server.stores.open(target.name)
    limit = store.quota_limit()
    if limit is not None and store.usage() >= limit:
        # RFC 3463 4.2.2 mailbox full, temporary: the sender retries after the user cleans up.
        raise SMTPReply(452, "4.2.2", "mailbox full")
    return Recipient(address, accounts=(target.name,))


def received_header(server: Server, envelope: Envelope, for_address: Address | None, queue_id: str) -> bytes:
    """RFC 5321 §4.4 trace header; the protocol name per RFC 3848."""
    proto = "UTF8SMTP" if envelope.smtputf8 else "ESMTP"
    if envelope.tls:
        proto += "S"
    if envelope.account is not None:
        proto += "A"
    helo = re.sub(r"[^\x21-\x7e]", "?", envelope.helo)[:100] or "unknown"
    date = email.utils.format_datetime(datetime.datetime.now(datetime.UTC).astimezone())
    target = f"\r\n\tfor <{for_address.display()}>" if for_address is not None else ""
    text = (
        f"Received: from {helo} ([{envelope.remote_ip}])\r\n\tby {server.config.hostname.ascii} (mailsrv)"
        f" with {proto} id {queue_id}{target}; {date}\r\n"
    )
    return text.encode("utf-8")


def new_id() -> str:
    return os.urandom(6).hex()


def header_fields(data: bytes) -> list[tuple[str, str]]:
    """The message's header fields in order, values unfolded, 8-bit read as UTF-8 (RFC 6532:
    compat32's `get` would turn valid UTF-8 into U+FFFD)."""
    from mailsrv.message.parse import header_end, parse_headers

    out = []
    for name, value in parse_headers(data[: header_end(data, 0, len(data))]).raw_items():
        text = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        out.append((name, " ".join(line.strip() for line in text.replace("\r", "").split("\n")).strip()))
    return out


@dataclass(frozen=True)
class Decision:
    """Where a message goes for one account, and why. `decide` is the one place where
    rulesets, mail authentication (SPF/DKIM/DMARC fill `Envelope.verified_domains`) and the
    junk filter (which must honour `accept_regardless` and `mailing_list`) plug in."""

    mailbox: str = "INBOX"
    mailing_list: bool = False  # a ruleset marked it as list mail (List-Id within a verified domain)
    accept_regardless: bool = False  # a ruleset says: skip the reputation/junk verdict
    ruleset: Ruleset | None = None


def decide(server: Server, envelope: Envelope, account: str, data: bytes) -> Decision:
    # DMARC quarantine goes to Junk unless a ruleset accepts the message regardless.
    default = "Junk" if envelope.quarantine else "INBOX"
    rulesets = server.rules.for_account(account) if server.rules is not None else ()
    if not rulesets:
        return Decision(mailbox=default)
    sender = str(envelope.mail_from) if envelope.mail_from is not None else ""
    facts = facts_from(sender, envelope.verified_domains, header_fields(data))
    match = first_match(rulesets, facts)
    if match is None:
        return Decision(mailbox=default)
    mailbox = match.mailbox or "INBOX"
    if envelope.quarantine and not match.accept_regardless:
        mailbox = "Junk"
    return Decision(
        mailbox=mailbox,
        mailing_list=match.is_list,
        accept_regardless=match.accept_regardless,
        ruleset=match,
    )


@dataclass
class DeliveryResult:
    delivered: list[str] = field(default_factory=list)
    over_quota: list[str] = field(default_factory=list)
    queued: int | None = None


def _over_quota(server: Server, account: str, size: int) -> bool:
    store = server.stores.open(account)
    limit = store.quota_limit()
    return limit is not None and store.usage() + size > limit


async def deliver(server: Server, envelope: Envelope, data: bytes, extra_headers: bytes = b"") -> DeliveryResult:
    """Stores `data` for every local account once (an account named through both an alias
    and directly gets one copy; the sender's own account gets none of a list's copies), and
    queues it for remote recipients. Raises SMTPReply when the message is not accepted.

    Quota, checked for every copy before any is stored: a direct recipient without room
    refuses the whole message with 452 4.2.2 (nothing stored, the sender retries); a list
    member without room is skipped (the list accepts if one member does). Should a store
    still refuse a copy after others were stored (a race), the answer is 451: the sender
    retries and a recipient may see the message twice, but none loses it."""
    queue_id = new_id()
    result = DeliveryResult()
    sender_account = envelope.account
    if sender_account is None and envelope.mail_from is not None:
        own = server.dynamic.lookup(envelope.mail_from)
        sender_account = own.name if isinstance(own, AccountConfig) else None
    plan: list[tuple[Recipient, str]] = []
    seen: set[str] = set()
    # Direct recipients first: an account named directly and through a list gets the
    # direct copy (its Delivered-To names the account's own address).
    for rcpt in sorted(envelope.recipients, key=lambda r: r.alias is not None):
        if rcpt.remote:
            continue
        for account in rcpt.accounts:
            # A list member who sent the message does not get it back.
            if account in seen or (rcpt.alias is not None and account == sender_account):
                continue
            seen.add(account)
            plan.append((rcpt, account))
    size = len(data) + len(extra_headers) + 1024  # trace headers
    for rcpt, account in list(plan):
        if _over_quota(server, account, size):
            if rcpt.alias is None:
                raise SMTPReply(452, "4.2.2", f"mailbox full: {rcpt.address.display()}")
            plan.remove((rcpt, account))
            result.over_quota.append(account)
    remote_rcpts = [r for r in envelope.recipients if r.remote]
    remote = [r.address for r in remote_rcpts]
    if not plan and not remote:
        raise SMTPReply(452, "4.2.2", "mailbox full")
    failures: list[str] = []
    for rcpt, account in plan:
        header = b"Delivered-To: " + rcpt.address.display().encode("utf-8") + b"\r\n"
        message = header + received_header(server, envelope, rcpt.address, queue_id) + extra_headers + data
        decision = decide(server, envelope, account, message)
        store = server.stores.open(account)
        try:
            try:
                await store.append(decision.mailbox, message)
            except StoreError:
                # The mailbox named by a rule may be gone: the Inbox then.
                if decision.mailbox == "INBOX":
                    raise
                await store.append("INBOX", message)
        except StoreError as e:
            failures.append(account)
            log.error("delivery to {account} failed: {error!r}", account=account, error=e)
        else:
            result.delivered.append(account)
    if remote:
        queue = server.queue
        if queue is None:
            raise SMTPReply(451, "4.3.0", "outgoing queue not available")
        message = received_header(server, envelope, None, queue_id) + extra_headers + data
        result.queued = await queue.enqueue(
            envelope.mail_from,
            remote,
            message,
            envelope.account or "",
            envelope.smtputf8,
            envelope.requiretls,
            envelope.dsn,
            [r.dsn for r in remote_rcpts],
        )
    if failures:
        raise SMTPReply(451, "4.3.0", "local delivery failed, try again later")
    await _report_local_success(
        server, envelope, received_header(server, envelope, None, queue_id) + extra_headers + data
    )
    return result


async def _report_local_success(server: Server, envelope: Envelope, message: bytes) -> None:
    """RFC 3461 §5.2.2.1: the final MTA sends a "delivered" DSN for local recipients that
    asked for NOTIFY=SUCCESS (a list: "expanded", §5.2.7, and nothing more from its members).
    Only after every copy was stored; a DSN that cannot be handed over is logged, never
    turned into a refusal of the message, which is already delivered."""
    if envelope.mail_from is None:
        return  # RFC 5321 §4.5.5: nothing goes back to the null reverse-path
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
    dsn = make_dsn(hostname, str(envelope.mail_from), message, reports, now, now, envelope.dsn.envid)
    try:
        await deliver_dsn(server, str(envelope.mail_from), dsn)
    except Exception:
        log.failure("success DSN to {sender} not delivered", sender=str(envelope.mail_from))
        return
    log.info("delivered DSN to {sender} for {count} recipient(s)", sender=str(envelope.mail_from), count=len(reports))
