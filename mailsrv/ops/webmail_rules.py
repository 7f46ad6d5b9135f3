"""The "make a rule?" prompt: when the user moves one message out of the Inbox (or into it), the webmail
offers a delivery ruleset (`mailsrv.rules`, through `ops.rules`) that does the same to future
deliveries (or removes the one that filed it).

The proposed ruleset:
- The message has a List-Id (RFC 2919) and one of its verified domains (SPF-passed MAIL FROM
  domain or DKIM-passed d=, from our Authentication-Results field) is the List-Id value or a
  parent of it: the rule matches that List-Id header together with the shortest such domain,
  and marks the message as from a list (`is_list`). A List-Id alone could be forged.
- Otherwise: the From: address (a "msgfrom" rule, matching the whole address).
Its comment says that the webmail created it, and when.

No prompt when:
- the other mailbox (destination when leaving the Inbox, source when coming back) has a
  special-use (Trash, Archive, Sent, Junk, Drafts; INBOX has none), or is the Inbox itself;
- leaving the Inbox, a ruleset with the same conditions already exists, or one already files
  this message into that mailbox; coming back, no ruleset files it into the source mailbox;
- the user answered "no" for this List-Id or From: address, or "no" for messages moved to
  (or from) this mailbox: the answers are kept in the account's store (namespace
  `NS_ANSWERS`), so every browser and a later session respect them.
"""

from __future__ import annotations

import datetime
import re
from typing import Literal

import msgspec

from mailsrv.message.parse import header_values, parse_headers
from mailsrv.ops import rules as rulesops
from mailsrv.ops.errors import InvalidInput
from mailsrv.ops.webmail import Webmail, _content
from mailsrv.ops.webmail_authresults import verdict
from mailsrv.rules import MessageFacts, RulesError, Ruleset, facts_from, first_match
from mailsrv.store import interfaces as si

NS_ANSWERS = "webmail.rules.no"
PromptKind = Literal["create", "remove"]
Answer = Literal["yes", "no-sender", "no-mailbox", "later"]


class RulePrompt(msgspec.Struct, frozen=True, kw_only=True):
    """The question to ask. `create`: deliver such messages into `mailbox` from now on;
    `remove`: stop filing them into `mailbox`. `list_id`/`verified_domain` are set for a
    list rule, `from_address` always (what "no for this sender" refers to without a list)."""

    kind: PromptKind
    message_id: int
    mailbox: str
    from_address: str
    list_id: str = ""
    verified_domain: str = ""
    ruleset: rulesops.RulesetSpec


class RuleAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The user's answer to a `RulePrompt` (sent back as it was received)."""

    prompt: RulePrompt
    answer: Answer


class _Facts(msgspec.Struct, frozen=True):
    from_address: str
    list_id: str
    verified: tuple[str, ...]
    rule_facts: MessageFacts


async def message_facts(wm: Webmail, message_id: int) -> _Facts:
    """What rules see of a stored message: its header fields, From: address, List-Id and the
    domains our Authentication-Results field says were verified."""
    _, raw, tree = await _content(wm, message_id)
    headers = parse_headers(raw[tree.header_start : tree.body_start])
    pairs = [(str(k), str(v)) for k, v in headers.raw_items()][:1000]
    results = header_values(headers, "authentication-results")
    found = verdict(results, wm.server.config.hostname.ascii, "")
    facts = facts_from("", frozenset(found.verified_domains), pairs)
    return _Facts(facts.msg_from.strip(), facts.list_id, tuple(found.verified_domains), facts)


def list_domain(list_id: str, verified: tuple[str, ...]) -> str:
    """The shortest verified domain that is the List-Id value or a parent domain of it."""
    candidates = [d for d in verified if d and (list_id == d or list_id.endswith("." + d))]
    return min(candidates, key=len) if candidates else ""


def proposal(facts: _Facts, mailbox: str, today: datetime.date | None = None) -> rulesops.RulesetSpec | None:
    """The ruleset that files messages like this one into `mailbox`; None when the message
    has neither a usable List-Id nor a From: address."""
    day = (today or datetime.date.today()).isoformat()
    comment = f"created by webmail on {day}"
    domain = list_domain(facts.list_id, facts.verified) if facts.list_id else ""
    if domain:
        return rulesops.RulesetSpec(
            verified_domain=domain,
            headers=[("^list-id$", r"(^|<)\s*" + re.escape(facts.list_id) + r"\s*(>|$)")],
            mailbox=mailbox,
            is_list=True,
            comment=comment,
        )
    if not facts.from_address:
        return None
    return rulesops.RulesetSpec(msg_from="^" + re.escape(facts.from_address) + "$", mailbox=mailbox, comment=comment)


def _same_conditions(a: rulesops.RulesetSpec, b: rulesops.RulesetSpec) -> bool:
    return (a.smtp_mail_from, a.msg_from, a.verified_domain, [tuple(h) for h in a.headers]) == (
        b.smtp_mail_from,
        b.msg_from,
        b.verified_domain,
        [tuple(h) for h in b.headers],
    )


def _compiled(specs: list[rulesops.RulesetSpec]) -> list[Ruleset]:
    out = []
    for spec in specs:
        try:
            out.append(Ruleset.from_dict(msgspec.to_builtins(spec)))
        except RulesError:
            continue
    return out


async def _answered_no(wm: Webmail, facts: _Facts, mailbox: str) -> bool:
    keys = [f"mailbox:{mailbox}"]
    if facts.from_address:
        keys.append(f"from:{facts.from_address.lower()}")
    if facts.list_id:
        keys.append(f"list:{facts.list_id}")
    for key in keys:
        if await wm.store.get_data(NS_ANSWERS, key[:1000]) is not None:
            return True
    return False


def _is_plain(box: si.MailboxInfo) -> bool:
    """A mailbox a rule may file into: not INBOX, no special-use."""
    return box.name != "INBOX" and not box.special_use


async def suggest(
    wm: Webmail, message_id: int, source: si.MailboxInfo, dest: si.MailboxInfo, today: datetime.date | None = None
) -> RulePrompt | None:
    """The prompt after moving the message `message_id` from `source` to `dest`, or None."""
    if source.id == dest.id:
        return None
    if source.name == "INBOX" and _is_plain(dest):
        kind: PromptKind = "create"
        other = dest
    elif dest.name == "INBOX" and _is_plain(source):
        kind = "remove"
        other = source
    else:
        return None
    facts = await message_facts(wm, message_id)
    if await _answered_no(wm, facts, other.name):
        return None
    current = rulesops.list_rules(wm.server, rulesops.AccountRules(account=wm.account))
    if kind == "create":
        spec = proposal(facts, other.name, today)
        if spec is None or any(_same_conditions(spec, r) for r in current):
            return None
        match = first_match(_compiled(current), facts.rule_facts)
        if match is not None and match.mailbox == other.name:
            return None
    else:
        filing = [r for r, c in zip(current, _compiled(current), strict=False) if c.mailbox == other.name]
        spec = next((r for r in filing if first_match(_compiled([r]), facts.rule_facts) is not None), None)
        if spec is None:
            return None
    domain = spec.verified_domain if spec.is_list else ""
    return RulePrompt(
        kind=kind,
        message_id=message_id,
        mailbox=other.name,
        from_address=facts.from_address,
        list_id=facts.list_id if domain else "",
        verified_domain=domain,
        ruleset=spec,
    )


async def answer(wm: Webmail, reply: RuleAnswer) -> None:
    """Acts on the answer: "yes" adds (or removes) the ruleset, "no-sender" and "no-mailbox"
    are remembered, "later" does nothing. Raises InvalidInput for a prompt this account's
    rules cannot take (a tampered ruleset)."""
    prompt = reply.prompt
    if reply.answer == "later":
        return
    if reply.answer == "no-sender":
        key = f"list:{prompt.list_id}" if prompt.list_id else f"from:{prompt.from_address.lower()}"
        await wm.store.put_data(NS_ANSWERS, key[:1000], b"1")
        return
    if reply.answer == "no-mailbox":
        await wm.store.put_data(NS_ANSWERS, f"mailbox:{prompt.mailbox}"[:1000], b"1")
        return
    if prompt.ruleset.mailbox != prompt.mailbox:
        raise InvalidInput("the ruleset does not belong to the prompt", field="prompt")
    current = rulesops.list_rules(wm.server, rulesops.AccountRules(account=wm.account))
    if prompt.kind == "create":
        if not any(_same_conditions(prompt.ruleset, r) for r in current):
            rulesops.add(wm.server, rulesops.AddRuleset(account=wm.account, ruleset=prompt.ruleset))
        return
    for index, existing in enumerate(current, start=1):
        if _same_conditions(existing, prompt.ruleset) and existing.mailbox == prompt.mailbox:
            rulesops.remove(wm.server, rulesops.RemoveRuleset(account=wm.account, index=index))
            return


async def forget_answers(wm: Webmail) -> int:
    """Removes every remembered "no"; returns how many there were."""
    entries = await wm.store.list_data(NS_ANSWERS, limit=10_000)
    for key, _ in entries:
        await wm.store.put_data(NS_ANSWERS, key, None)
    return len(entries)


async def move_and_suggest(wm: Webmail, ids: list[int], dest: str) -> tuple[int, RulePrompt | None]:
    """Moves the messages into `dest`; for a single message, also the rule prompt (or None).
    Raises what `ops.webmail.move` raises."""
    from mailsrv.ops import webmail as wmops

    source = None
    if len(ids) == 1:
        found = await wm.store.find_message(ids[0])
        if found is not None:
            source = await wm.store.mailbox_by_id_async(found.mailbox_id)
    moved = await wmops.move(wm, ids, dest)
    if source is None or not moved:
        return moved, None
    return moved, await suggest(wm, ids[0], source, await wm.store.mailbox_async(dest))
