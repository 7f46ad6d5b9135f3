"""Per-account delivery rulesets: evaluated at delivery, first match wins.

A ruleset matches when all of its given conditions hold (none given: never matches):
  smtp_mail_from   regexp on the SMTP MAIL FROM address ("" for the null path)
  msg_from         regexp on the message's From: address
  verified_domain  a domain that passed SPF or DKIM for this message (the mail-auth checks
                   fill `Envelope.verified_domains`; until they run, such rules never match)
  headers          list of [name regexp, value regexp]; every pair must match some header
Actions: `mailbox` (deliver there instead of the Inbox), `is_list` (the message is from a
mailing list; requires `verified_domain` and a List-Id header within that domain, so a
forged List-Id cannot mark it), `accept_regardless` (skip the reputation/junk verdict);
`comment` is for the user.

Where rulesets live: `data/rules.toml`, one `[[account.NAME]]` table array per account,
owned by `RulesStore` (re-read when the file changes; written atomically by the CLI) — a
section of its own so the dynamic config's schema stays as other parts expect it.

Safety of user-written patterns: they use the `regex` module, compiled once per file load,
with a per-search timeout (`MATCH_TIMEOUT`), because `re` cannot bound catastrophic
backtracking (`(a+)+$`); patterns are also limited to `MAX_PATTERN` characters and a
timed-out search counts as no match (delivery goes on to the Inbox). Header values are
searched in their first `MAX_SUBJECT` characters only.
"""

from __future__ import annotations

import email.utils
import os
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex  # type: ignore[import-untyped,unused-ignore]
import tomli_w

MAX_PATTERN = 256
MAX_RULESETS = 100
MAX_SUBJECT = 4096
MATCH_TIMEOUT = 0.05  # seconds per search


class RulesError(ValueError):
    """A ruleset that cannot be used; the message names the problem."""


def _compile(pattern: str, what: str) -> Any:
    if len(pattern) > MAX_PATTERN:
        raise RulesError(f"{what}: pattern longer than {MAX_PATTERN} characters")
    try:
        return regex.compile(pattern, regex.IGNORECASE | regex.V0)
    except regex.error as e:
        raise RulesError(f"{what}: invalid regexp: {e}") from None


def _search(pattern: Any, text: str) -> bool:
    try:
        return pattern.search(text[:MAX_SUBJECT], timeout=MATCH_TIMEOUT) is not None
    except TimeoutError:
        return False


@dataclass(frozen=True)
class Ruleset:
    smtp_mail_from: str = ""
    msg_from: str = ""
    verified_domain: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    mailbox: str = ""
    is_list: bool = False
    accept_regardless: bool = False
    comment: str = ""
    _compiled: tuple[Any, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Ruleset:
        known = {"smtp_mail_from", "msg_from", "verified_domain", "headers", "mailbox", "is_list"}
        known |= {"accept_regardless", "comment"}
        unknown = set(d) - known
        if unknown:
            raise RulesError(f"unknown ruleset keys: {', '.join(sorted(unknown))}")
        headers_raw = d.get("headers", [])
        if not isinstance(headers_raw, list) or not all(
            isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h) for h in headers_raw
        ):
            raise RulesError("headers: a list of [name regexp, value regexp]")
        for key in ("smtp_mail_from", "msg_from", "verified_domain", "mailbox", "comment"):
            if not isinstance(d.get(key, ""), str):
                raise RulesError(f"{key}: a string")
        for key in ("is_list", "accept_regardless"):
            if not isinstance(d.get(key, False), bool):
                raise RulesError(f"{key}: true or false")
        rs = cls(
            smtp_mail_from=d.get("smtp_mail_from", ""),
            msg_from=d.get("msg_from", ""),
            verified_domain=d.get("verified_domain", "").lower().rstrip("."),
            headers=tuple((h[0], h[1]) for h in headers_raw),
            mailbox=d.get("mailbox", ""),
            is_list=d.get("is_list", False),
            accept_regardless=d.get("accept_regardless", False),
            comment=d.get("comment", ""),
        )
        return rs.compiled()

    def compiled(self) -> Ruleset:
        if not (self.smtp_mail_from or self.msg_from or self.verified_domain or self.headers):
            raise RulesError("a ruleset needs at least one condition")
        if not (self.mailbox or self.is_list or self.accept_regardless):
            raise RulesError("a ruleset needs an action: mailbox, is_list or accept_regardless")
        if self.is_list and not self.verified_domain:
            raise RulesError("is_list requires verified_domain (the List-Id must be within it)")
        compiled = (
            _compile(self.smtp_mail_from, "smtp_mail_from") if self.smtp_mail_from else None,
            _compile(self.msg_from, "msg_from") if self.msg_from else None,
            tuple((_compile(n, "header name"), _compile(v, "header value")) for n, v in self.headers),
        )
        object.__setattr__(self, "_compiled", compiled)
        return self

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("smtp_mail_from", "msg_from", "verified_domain", "mailbox", "comment"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.headers:
            out["headers"] = [list(h) for h in self.headers]
        for key in ("is_list", "accept_regardless"):
            if getattr(self, key):
                out[key] = True
        return out


@dataclass(frozen=True)
class MessageFacts:
    """What rules look at, computed once per message."""

    smtp_mail_from: str
    msg_from: str
    verified_domains: frozenset[str]
    headers: Sequence[tuple[str, str]]
    list_id: str  # the List-Id's identifier (inside <>), lowercased, "" if none


def facts_from(
    smtp_mail_from: str, verified_domains: frozenset[str], headers: Sequence[tuple[str, str]]
) -> MessageFacts:
    msg_from = ""
    list_id = ""
    for name, value in headers:
        lname = name.lower()
        if lname == "from" and not msg_from:
            msg_from = email.utils.parseaddr(value)[1]
        elif lname == "list-id" and not list_id:
            start, end = value.rfind("<"), value.rfind(">")
            list_id = (value[start + 1 : end] if 0 <= start < end else value).strip().lower()
    return MessageFacts(smtp_mail_from, msg_from, verified_domains, headers, list_id)


def _matches(rs: Ruleset, facts: MessageFacts) -> bool:
    mail_from_re, msg_from_re, header_res = rs._compiled
    if mail_from_re is not None and not _search(mail_from_re, facts.smtp_mail_from):
        return False
    if msg_from_re is not None and not _search(msg_from_re, facts.msg_from):
        return False
    if rs.verified_domain and rs.verified_domain not in facts.verified_domains:
        return False
    for name_re, value_re in header_res:
        if not any(_search(name_re, n) and _search(value_re, v) for n, v in facts.headers):
            return False
    if rs.is_list:
        # RFC 2919 §3: the List-Id identifier is a domain-like name; it must lie within the
        # verified domain, or anyone could claim to be a list.
        lid = facts.list_id
        if not (lid == rs.verified_domain or lid.endswith("." + rs.verified_domain)):
            return False
    return True


def first_match(rulesets: Sequence[Ruleset], facts: MessageFacts) -> Ruleset | None:
    for rs in rulesets:
        if _matches(rs, facts):
            return rs
    return None


# How long a look at rules.toml's stamp stays good: deliveries ask for rulesets per copy, and
# a stat per delivery (a system call that releases the GIL) bought nothing. Changes made
# through `set_account` (the daemon's own, from the CLI or the web) apply at once; a hand
# edit of the file is seen within this many seconds.
CHECK_EVERY = 1.0


class RulesStore:
    """`data/rules.toml`: the rulesets of every account, re-read when the file changes
    (looked at most once every `CHECK_EVERY` seconds)."""

    def __init__(self, data_dir: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(data_dir) / "rules.toml"
        self._clock = clock
        self._stamp: tuple[int, int] | None = None
        self._rules: dict[str, tuple[Ruleset, ...]] = {}
        self._checked = clock()
        self._reload()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _reload(self) -> None:
        stamp = self._file_stamp()
        if stamp == self._stamp and (stamp is not None or not self._rules):
            return
        self._rules = self.parse(self.path.read_bytes() if stamp is not None else b"")
        self._stamp = stamp

    @staticmethod
    def parse(data: bytes) -> dict[str, tuple[Ruleset, ...]]:
        try:
            doc = tomllib.loads(data.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise RulesError(f"rules.toml: {e}") from None
        accounts = doc.get("account", {})
        if not isinstance(accounts, dict):
            raise RulesError("rules.toml: [account.NAME] tables expected")
        out: dict[str, tuple[Ruleset, ...]] = {}
        for name, items in accounts.items():
            if not isinstance(items, list) or len(items) > MAX_RULESETS:
                raise RulesError(f"rules.toml: account {name}: a list of at most {MAX_RULESETS} rulesets")
            try:
                out[name] = tuple(Ruleset.from_dict(i) for i in items)
            except RulesError as e:
                raise RulesError(f"rules.toml: account {name}: {e}") from None
        return out

    def for_account(self, account: str) -> tuple[Ruleset, ...]:
        """The account's rulesets; a broken file (hand edit) keeps the last good ones."""
        now = self._clock()
        if now - self._checked >= CHECK_EVERY or now < self._checked:
            self._checked = now
            try:
                self._reload()
            except (OSError, RulesError):
                pass
        return self._rules.get(account, ())

    def set_account(self, account: str, rulesets: Sequence[Ruleset]) -> None:
        self._reload()
        rules = dict(self._rules)
        rules[account] = tuple(rulesets)
        if not rules[account]:
            del rules[account]
        doc = {"account": {name: [r.to_dict() for r in rs] for name, rs in sorted(rules.items())}}
        data = tomli_w.dumps(doc).encode("utf-8")
        tmp = self.path.with_name(".rules.toml.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._rules = rules
        self._stamp = self._file_stamp()
