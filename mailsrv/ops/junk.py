"""The junk filter in the application: the delivery verdict, training from what users do, and the operations an
account (CLI, control socket, later the account page) uses to tune and inspect its filter.

- Delivery (`JunkDecider`, a `DeliveryDecider` of ops/delivery): a ruleset that accepts regardless, or a sender
  with a reputation in this account (earlier ham from the same verified domain), skips the filter. Otherwise a
  message at or above the account's threshold goes to Junk, or, when the account chose "reject", is refused with
  a temporary failure that says nothing while a copy is kept in the rejects mailbox (mailing-list mail is never
  refused, only filed in Junk). Every classified copy carries ``X-Mailsrv-Junk: score=…; words=…`` on top.
- Training (`subscribe_training`, on `MailHooks` of ops/mail): a move or copy into a junk mailbox (special-use
  \\Junk or a name matching the account's junk patterns) trains junk; into a not-junk mailbox trains ham; the
  keywords ``$Junk``/``$NotJunk`` train likewise and removing ``$Junk`` alone untrains. Changing one's mind
  retrains (the filter untrains the old class first). IMAP, webmail and webapi train alike because they all go
  through ops/mail. Training runs in the thread pool, after the user's change was committed and answered.
"""

from __future__ import annotations

import base64
import binascii
import random
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from mailsrv.junk import classify
from mailsrv.junk.filter import JunkFilter, SettingsError
from mailsrv.junk.service import JunkFilters
from mailsrv.junk.settings import JunkSettings, mailbox_matches, validate
from mailsrv.junk.tokens import message_tokens
from mailsrv.message.parse import header_table, parse_headers
from mailsrv.ops.delivery import Decision, DecisionInput
from mailsrv.ops.errors import InvalidInput, LimitExceeded, NotFound
from mailsrv.ops.mail import FlagsChanged, MailContext, MessagesCopied, MessagesMoved, delete_messages
from mailsrv.ops.operation import Operation
from mailsrv.store.interfaces import MailboxNotFound

if TYPE_CHECKING:
    from mailsrv.server import Server
    from mailsrv.store.interfaces import AccountStore

log = Logger()

JUNK_KEYWORD = "$Junk"
NOTJUNK_KEYWORD = "$NotJunk"
HEADER = "X-Mailsrv-Junk"
HEADER_WORDS = 10
# Our fields are near the top: a message's first 64 KB hold them.
_HEADER_SCAN = 64 * 1024
# What one request may carry and what a retrain or an analysis reads at most (the newest messages win).
MAX_REQUEST_MESSAGES = 1000
MAX_MAILBOX_MESSAGES = 20_000


def install(server: Server) -> JunkFilters:
    """Opens the account filters and hooks them into delivery and mail changes."""
    run_read = server.pools.files if server.pools is not None else None
    filters = JunkFilters(server.config.data_dir, server.reactor, server.config.junk, run_read)
    server.junk = filters
    server.delivery_deciders.append(JunkDecider(filters))
    subscribe_training(server, filters)
    return filters


# --- the delivery verdict ----------------------------------------------------------------------------------------


def header_field(verdict: classify.Verdict, skipped: str = "") -> bytes:
    """``X-Mailsrv-Junk:`` with the score and the deciding words, ASCII only, one line."""
    if skipped:
        value = f"skipped={skipped}"
    elif verdict.score is None:
        value = f"score=none; reason={verdict.reason}"
    else:
        words = ",".join(_header_word(e.token) for e in verdict.evidence[:HEADER_WORDS])
        value = f"score={verdict.score:.4f}; junk={'yes' if verdict.junk else 'no'}; words={words}"
    return f"{HEADER}: {value}\r\n".encode("ascii")


def _header_word(token: str) -> str:
    # Non-ASCII and separators escaped, so the field stays one unambiguous ASCII line.
    text = token.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if c.isprintable() and c not in ",;" else f"\\x{ord(c):02x}" for c in text)[:60]


class JunkDecider:
    """The junk filter's vote at delivery (module docstring)."""

    def __init__(self, filters: JunkFilters) -> None:
        self.filters = filters

    def __repr__(self) -> str:
        return "JunkDecider"

    async def __call__(self, subject: DecisionInput, decision: Decision) -> Decision:
        if decision.accept_regardless or self.filters.untrained(subject.account):
            # Nothing trained yet: no verdict, no known sender (a thread hop per delivery saved).
            return decision

        def judge(junk: JunkFilter) -> tuple[JunkSettings, classify.Verdict | None, bool]:
            settings = junk.settings()
            if not settings.enabled:
                return settings, None, False
            if junk.known_good_sender(subject.message):
                return settings, None, True
            return settings, junk.classify(subject.message, settings), False

        settings, verdict, known = await self.filters.read(subject.account, judge)
        if verdict is None:
            if known:
                return msgspec.structs.replace(decision, headers=decision.headers + header_field(_NONE, "known-sender"))
            return decision
        if verdict.score is None:
            return decision  # not trained yet: nothing to say, nothing added
        headers = decision.headers + header_field(verdict)
        if not verdict.junk:
            return msgspec.structs.replace(decision, headers=headers)
        if settings.action == "reject" and not decision.mailing_list:
            return msgspec.structs.replace(
                decision, mailbox=settings.rejects_mailbox, rejected=True, headers=headers, reason="junk"
            )
        return msgspec.structs.replace(decision, mailbox="Junk", headers=headers, reason="junk")


_NONE = classify.Verdict(None, False, ())


# --- training from what users do ---------------------------------------------------------------------------------


def _is_junk_mailbox(settings: JunkSettings, name: str, special_use: str | None) -> bool:
    return special_use == "\\Junk" or mailbox_matches(name, settings.junk_mailboxes)


def mailbox_class(settings: JunkSettings, name: str, special_use: str | None) -> bool | None:
    """What a mailbox says of the mail in it: junk (True), not junk (False), or nothing (None)."""
    if _is_junk_mailbox(settings, name, special_use):
        return True
    if mailbox_matches(name, settings.notjunk_mailboxes):
        return False
    return None


def subscribe_training(server: Server, filters: JunkFilters) -> None:
    hooks = server.mail_hooks

    def on_transfer(event: MessagesMoved | MessagesCopied) -> None:
        _spawn(filters, event.account, lambda: _train_transfer(server, filters, event))

    def on_flags(event: FlagsChanged) -> None:
        if {JUNK_KEYWORD, NOTJUNK_KEYWORD} & {f for f in (*event.added, *event.removed)}:
            _spawn(filters, event.account, lambda: _train_flags(server, filters, event))

    hooks.subscribe(MessagesMoved, on_transfer)
    hooks.subscribe(MessagesCopied, on_transfer)
    hooks.subscribe(FlagsChanged, on_flags)


def _spawn(filters: JunkFilters, account: str, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
    # One job at a time per account, in event order: each reads the state as it is when it runs, so the last
    # job leaves the training matching the messages' final flags and mailboxes.
    d = filters.run_job(account, lambda: ensureDeferred(job()))
    d.addErrback(lambda f: log.failure("junk filter training failed", f))


async def _read(store: AccountStore, mailbox: str, uids: Sequence[int]) -> list[tuple[bytes, frozenset[str]]]:
    """(raw message, current flags) of those UIDs still in the mailbox."""
    try:
        info = await store.mailbox_async(mailbox)
    except MailboxNotFound:
        return []
    out = []
    for uid in uids:
        message = await store.message_async(info.id, uid)
        if message is not None:
            out.append((await store.read_async(message.message_id), message.flags))
    return out


async def _train_transfer(server: Server, filters: JunkFilters, event: MessagesMoved | MessagesCopied) -> None:
    settings = await filters.call(event.account, lambda j: j.settings())
    if not settings.enabled:
        return
    junk = mailbox_class(settings, event.to_mailbox, event.to_special_use)
    if junk is None:
        return
    store = server.stores.open(event.account)
    messages = [raw for raw, _ in await _read(store, event.to_mailbox, event.dest_uids)]
    count = await filters.call(event.account, lambda j: j.train_many((raw, junk) for raw in messages))
    log.info(
        "junk filter of {account} trained {count} message(s) as {kind} (moved to {mailbox})",
        account=event.account,
        count=count,
        kind="junk" if junk else "ham",
        mailbox=event.to_mailbox,
    )


def flag_class(flags: frozenset[str]) -> bool | None:
    """What the keywords say: junk (True), not junk (False), or nothing (None). $NotJunk wins over $Junk: a
    client that sets both last said "not junk" (Thunderbird clears one as it sets the other)."""
    if NOTJUNK_KEYWORD in flags:
        return False
    if JUNK_KEYWORD in flags:
        return True
    return None


async def _train_flags(server: Server, filters: JunkFilters, event: FlagsChanged) -> None:
    settings = await filters.call(event.account, lambda j: j.settings())
    if not settings.enabled:
        return
    store = server.stores.open(event.account)
    messages = await _read(store, event.mailbox, event.uids)

    def train(j: JunkFilter) -> None:
        for raw, flags in messages:
            kind = flag_class(flags)
            if kind is None:
                # The keyword was taken back: forget it, unless a move trained it (then the mailbox decides).
                if not _is_junk_mailbox(settings, event.mailbox, event.special_use):
                    j.untrain(raw)
            else:
                j.train(raw, kind)

    await filters.call(event.account, train)


# --- the rejects mailbox's keep period -----------------------------------------------------------------------------

REJECTS_CHECK_SECONDS = 3600.0


async def expire_rejects(server: Server) -> int:
    """Deletes messages older than each account's `rejects_keep_days` from its rejects mailbox; returns how many.
    Accounts whose filter was never opened (no junk database) have nothing there from the filter."""
    filters = server.junk
    if filters is None:
        return 0
    removed = 0
    now = server.reactor.seconds()
    for account in sorted(server.dynamic.current.accounts):
        if not filters.exists(account):
            continue
        settings = await filters.call(account, lambda j: j.settings())
        store = server.stores.open(account)
        try:
            rejects = await store.mailbox_async(settings.rejects_mailbox)
        except MailboxNotFound:
            continue
        cutoff = now - settings.rejects_keep_days * 86400
        old = [m.uid for m in await store.messages_async(rejects.id) if m.internal_date.timestamp() < cutoff]
        if old:
            gone = await delete_messages(MailContext(store, server.mail_hooks), rejects.id, old)
            removed += len(gone)
            log.info(
                "junk filter: {count} message(s) older than {days} days removed from {mailbox} of {account}",
                count=len(gone),
                days=settings.rejects_keep_days,
                mailbox=settings.rejects_mailbox,
                account=account,
            )
    return removed


# --- operations ----------------------------------------------------------------------------------------------------


class AccountJunk(msgspec.Struct, kw_only=True):
    account: str


class ConfigureJunk(msgspec.Struct, kw_only=True):
    account: str
    # Only the fields given change; names and types as in JunkSettings.
    settings: dict[str, Any]


class MessagesRequest(msgspec.Struct, kw_only=True):
    account: str
    messages: list[str]  # raw messages, base64
    junk: bool = True


class CheckRequest(msgspec.Struct, kw_only=True):
    account: str
    message: str  # raw message, base64


class WordEvidence(msgspec.Struct):
    word: str
    ham: int
    spam: int
    probability: float


class CheckResult(msgspec.Struct):
    score: float | None
    junk: bool
    threshold: float
    known_sender: bool
    trained_as: str | None
    words: list[WordEvidence]
    reason: str = ""


class TrainResult(msgspec.Struct):
    changed: int
    unchanged: int


class AnalyzeRequest(msgspec.Struct, kw_only=True):
    account: str
    folds: int = 10


class AnalyzeResult(msgspec.Struct):
    ham: int
    spam: int
    false_positives: int
    false_negatives: int
    precision: float
    recall: float
    threshold: float


class RetrainResult(msgspec.Struct):
    ham: int
    spam: int


class JunkStats(msgspec.Struct):
    ham_messages: int
    spam_messages: int
    words: int


def _filters(server: Server, account: str) -> JunkFilters:
    if account not in server.dynamic.current.accounts:
        raise NotFound(f"no such account: {account}")
    if server.junk is None:
        raise NotFound("the junk filter is not running")
    return server.junk


def _decode(messages: list[str]) -> list[bytes]:
    if len(messages) > MAX_REQUEST_MESSAGES:
        raise LimitExceeded(f"at most {MAX_REQUEST_MESSAGES} messages per request")
    try:
        return [base64.b64decode(m, validate=True) for m in messages]
    except (binascii.Error, ValueError):
        raise InvalidInput("messages must be base64", field="messages") from None


def get_settings(server: Server, req: AccountJunk) -> Deferred[JunkSettings]:
    return _filters(server, req.account).call(req.account, lambda j: j.settings())


def configure(server: Server, req: ConfigureJunk) -> Deferred[JunkSettings]:
    """Changes the fields named; InvalidInput naming the first field out of its limits or of the wrong type."""
    filters = _filters(server, req.account)

    def change(j: JunkFilter) -> JunkSettings:
        merged = msgspec.to_builtins(j.settings())
        merged.update(req.settings)
        try:
            settings = msgspec.convert(merged, JunkSettings)
        except msgspec.ValidationError as e:
            raise InvalidInput(f"junk settings: {e}") from None
        try:
            j.save_settings(settings)
        except SettingsError as e:
            field, problem = e.problems[0]
            raise InvalidInput(f"{field}: {problem}", field=field) from None
        return settings

    return filters.call(req.account, change)


def train(server: Server, req: MessagesRequest) -> Deferred[TrainResult]:
    messages = _decode(req.messages)

    def run(j: JunkFilter) -> TrainResult:
        changed = j.train_many((raw, req.junk) for raw in messages)
        return TrainResult(changed, len(messages) - changed)

    return _filters(server, req.account).call(req.account, run)


def untrain(server: Server, req: MessagesRequest) -> Deferred[TrainResult]:
    messages = _decode(req.messages)

    def run(j: JunkFilter) -> TrainResult:
        changed = sum(1 for raw in messages if j.untrain(raw))
        return TrainResult(changed, len(messages) - changed)

    return _filters(server, req.account).call(req.account, run)


def check(server: Server, req: CheckRequest) -> Deferred[CheckResult]:
    (raw,) = _decode([req.message])

    def run(j: JunkFilter) -> CheckResult:
        settings = j.settings()
        verdict = j.classify(raw, settings)
        words = [WordEvidence(e.token, e.ham, e.spam, round(e.probability, 4)) for e in verdict.evidence]
        return CheckResult(
            verdict.score,
            verdict.junk,
            settings.threshold,
            j.known_good_sender(raw),
            j.trained_as(raw),
            words,
            verdict.reason,
        )

    return _filters(server, req.account).call(req.account, run)


def stats(server: Server, req: AccountJunk) -> Deferred[JunkStats]:
    def run(j: JunkFilter) -> JunkStats:
        ham, spam = j.db.totals()
        return JunkStats(ham, spam, j.db.word_count())

    return _filters(server, req.account).call(req.account, run)


async def _labelled_mail(server: Server, account: str, settings: JunkSettings) -> list[tuple[bytes, bool]]:
    """The account's messages that say junk or not junk, newest first, at most MAX_MAILBOX_MESSAGES: the keywords
    $Junk/$NotJunk first, else the mailbox (junk or not-junk patterns). Unless `train_untouched`, only mail the
    user touched counts (`touched`)."""
    store = server.stores.open(account)
    chosen: list[tuple[int, int, bool, bool]] = []  # (internal date, message id, junk, needs a look at the header)
    for mailbox in await store.mailboxes_async():
        by_mailbox = mailbox_class(settings, mailbox.name, mailbox.special_use)
        for info in await store.messages_async(mailbox.id):
            by_flags = flag_class(info.flags)
            junk = by_flags if by_flags is not None else by_mailbox
            if junk is None:
                continue
            if by_flags is None and not settings.train_untouched:
                verdict = touched(mailbox.name, junk, info.flags)
                if verdict is False:
                    continue
                check_header = verdict is None
            else:
                check_header = False
            chosen.append((int(info.internal_date.timestamp()), info.message_id, junk, check_header))
    chosen.sort(reverse=True)
    out = []
    for _, message_id, junk, check_header in chosen[:MAX_MAILBOX_MESSAGES]:
        raw = await store.read_async(message_id)
        if check_header and _filed_by_filter(raw):
            continue
        out.append((raw, junk))
    return out


def touched(mailbox: str, junk: bool, flags: frozenset[str]) -> bool | None:
    """Whether the user, not delivery, put a message where it is: True, False, or None when only the message's
    own X-Mailsrv-Junk field can tell (mail in a junk mailbox that the filter did not file there was moved by the
    user). Mail kept in the Inbox counts once read; mail in another not-junk mailbox (Archive) was filed."""
    if junk:
        return None
    if mailbox.upper() == "INBOX":
        return "\\Seen" in flags
    return True


def _filed_by_filter(raw: bytes) -> bool:
    """Whether our X-Mailsrv-Junk field (the first one: it stands above anything the sender wrote) says junk."""
    values = header_table(parse_headers(raw[:_HEADER_SCAN])).get(HEADER.lower(), [])
    return bool(values) and "junk=yes" in values[0]


async def _retrain(server: Server, req: AccountJunk) -> RetrainResult:
    filters = _filters(server, req.account)
    settings = await filters.call(req.account, lambda j: j.settings())
    mail = await _labelled_mail(server, req.account, settings)

    def run(j: JunkFilter) -> RetrainResult:
        j.db.reset()
        for done, (raw, junk) in enumerate(mail, 1):
            j.train(raw, junk)
            if done % 1000 == 0:
                log.info("junk retrain of {account}: {done}/{total}", account=req.account, done=done, total=len(mail))
        return RetrainResult(sum(1 for _, s in mail if not s), sum(1 for _, s in mail if s))

    return await filters.call(req.account, run)


def retrain(server: Server, req: AccountJunk) -> Deferred[RetrainResult]:
    """Forgets what was learned and trains on the account's junk and not-junk mailboxes."""
    return ensureDeferred(_retrain(server, req))


async def _analyze(server: Server, req: AnalyzeRequest) -> AnalyzeResult:
    if not 2 <= req.folds <= 20:
        raise InvalidInput("folds must be between 2 and 20", field="folds")
    filters = _filters(server, req.account)
    settings = await filters.call(req.account, lambda j: j.settings())
    mail = await _labelled_mail(server, req.account, settings)
    return await filters.call(req.account, lambda j: cross_validate(mail, settings, req.folds))


def analyze(server: Server, req: AnalyzeRequest) -> Deferred[AnalyzeResult]:
    """Cross-validates the filter's settings on the account's own mailboxes (nothing is stored)."""
    return ensureDeferred(_analyze(server, req))


def cross_validate(mail: list[tuple[bytes, bool]], settings: JunkSettings, folds: int) -> AnalyzeResult:
    """k-fold cross-validation in memory: for each fold, counts from the others, verdicts for it."""
    shuffled = list(mail)
    random.Random(0).shuffle(shuffled)
    ignored = {w.lower() for w in settings.ignored_words}
    tokens = [message_tokens(raw, tuple(settings.ngram_sizes)) - ignored for raw, _ in shuffled]
    ham: Counter[str] = Counter()
    spam: Counter[str] = Counter()
    for toks, (_, junk) in zip(tokens, shuffled, strict=True):
        (spam if junk else ham).update(toks)
    totals = [sum(1 for _, j in shuffled if not j), sum(1 for _, j in shuffled if j)]
    fp = fn = tp = 0
    for k in range(folds):
        fold = range(k, len(shuffled), folds)
        for i in fold:
            (spam if shuffled[i][1] else ham).subtract(tokens[i])
            totals[shuffled[i][1]] -= 1
        for i in fold:
            counts = {t: (ham[t], spam[t]) for t in tokens[i] if ham[t] or spam[t]}
            verdict = classify.decide(
                counts, totals[0], totals[1], settings.threshold, settings.top_words, settings.rare_word_cutoff
            )
            if shuffled[i][1]:
                tp += verdict.junk
                fn += not verdict.junk
            else:
                fp += verdict.junk
        for i in fold:
            (spam if shuffled[i][1] else ham).update(tokens[i])
            totals[shuffled[i][1]] += 1
    n_spam = sum(1 for _, j in shuffled if j)
    return AnalyzeResult(
        ham=len(shuffled) - n_spam,
        spam=n_spam,
        false_positives=fp,
        false_negatives=fn,
        precision=tp / (tp + fp) if tp + fp else 0.0,
        recall=tp / n_spam if n_spam else 0.0,
        threshold=settings.threshold,
    )


OPERATIONS = (
    Operation("junk.settings", get_settings, AccountJunk, summary="an account's junk-filter settings"),
    Operation("junk.configure", configure, ConfigureJunk, summary="change junk-filter settings (named fields only)"),
    Operation("junk.train", train, MessagesRequest, summary="train messages as junk (junk=true) or not junk"),
    Operation("junk.untrain", untrain, MessagesRequest, summary="forget messages' training exactly"),
    Operation("junk.check", check, CheckRequest, summary="score a message and show the words that decided it"),
    Operation("junk.stats", stats, AccountJunk, summary="messages trained and words known"),
    Operation("junk.retrain", retrain, AccountJunk, summary="rebuild the filter from the junk/not-junk mailboxes"),
    Operation("junk.analyze", analyze, AnalyzeRequest, summary="cross-validate on the account's own mailboxes"),
)

__all__ = ["OPERATIONS", "JunkDecider", "install", "validate"]
