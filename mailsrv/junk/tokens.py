"""A message's tokens: what the classifier counts.

Tokens are lower-cased, NFKC-normalised words of 2–40 characters; a word longer than that is one token
``long:<first 8 chars>`` (a base64 blob or an enormous run says something, its content does not). Header words
carry a prefix naming their field (``subject:``, ``fromname:``) so a word in a Subject is not the same evidence
as the same word in the body. Body word pairs (``word1 word2``) are added for n-gram size 2 and triples for 3.

Bounds (a hostile message must not cost more than these): each text part contributes at most
``MAX_PART_BYTES`` of its body, the whole message at most ``MAX_TEXT_CHARS`` of text and ``MAX_TOKENS``
distinct tokens.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from email.utils import getaddresses

from mailsrv.message.htmltext import html_text
from mailsrv.message.parse import body_text, decode_text, header_table, parse_headers, parse_message
from mailsrv.message.part import Part

MAX_PART_BYTES = 256 * 1024
MAX_TEXT_CHARS = 512 * 1024
MAX_TOKENS = 20_000
MAX_WORD = 40
MAX_PARTS = 100

# A word: letters and digits, with apostrophes, dots, dashes and currency signs inside it ("don't", "1.5",
# "e-mail", "$100"). Anything else separates words. Possessive and linear: no nested quantifiers.
_WORD = re.compile(r"[$€£]?[^\W_](?:[\w'.$€£%-]*[^\W_%])?%?")
_URL_HOST = re.compile(r"(?i)\bhttps?://([a-z0-9.-]{1,253})")
# Headers whose words are evidence of their own (with the field name as prefix), and headers whose mere
# presence is.
_WORD_HEADERS = ("to", "reply-to", "return-path", "list-id", "precedence", "x-mailing-list", "organization")
_PRESENCE_HEADERS = ("list-unsubscribe", "list-id", "in-reply-to", "references", "x-priority", "x-msmail-priority")


def words(text: str) -> Iterator[str]:
    """The words of a text, lower-cased and normalised, long ones folded (module docstring)."""
    for match in _WORD.finditer(text):
        word = match.group()
        if len(word) < 2:
            continue
        if len(word) > MAX_WORD:
            yield "long:" + word[:8].lower()
            continue
        yield unicodedata.normalize("NFKC", word).lower()


def _visible_text(raw: bytes, root: Part) -> str:
    """Visible text of the message's text parts (plain preferred where an alternative offers both)."""
    pieces: list[str] = []
    budget = MAX_TEXT_CHARS
    parts_seen = 0

    def walk(part: Part) -> None:
        nonlocal budget, parts_seen
        parts_seen += 1
        if budget <= 0 or parts_seen > MAX_PARTS:
            return
        if part.is_multipart:
            children = part.children
            if part.media_subtype == "alternative":
                plain = [c for c in children if (c.media_type, c.media_subtype) == ("text", "plain")]
                children = plain[:1] or children[-1:]
            for child in children:
                walk(child)
            return
        if part.is_message:
            for child in part.children:
                walk(child)
            return
        if part.media_type != "text" or part.disposition == "attachment":
            return
        end = min(part.body_end, part.body_start + MAX_PART_BYTES)
        text = body_text(part, raw[part.body_start : end])
        if part.media_subtype == "html":
            text = html_text(text)
        text = text[:budget]
        budget -= len(text)
        pieces.append(text)

    walk(root)
    return "\n".join(pieces)


def _header_tokens(raw: bytes) -> Iterator[str]:
    fields = header_table(parse_headers(raw))
    for subject in fields.get("subject", [])[:1]:
        for word in words(decode_text(subject) or ""):
            yield "subject:" + word
    for from_ in fields.get("from", [])[:1]:
        for name, address in getaddresses([decode_text(from_) or ""]):
            for word in words(name):
                yield "fromname:" + word
            if "@" in address:
                yield "fromdomain:" + address.rsplit("@", 1)[1].lower()[:100]
            if name and "@" in name:
                yield "fromname:has-address"
    for name in ("x-mailer", "user-agent"):
        for value in fields.get(name, [])[:1]:
            yield "mailer:" + " ".join(words(value[:200]))[:60]
    for value in fields.get("content-type", [])[:1]:
        yield "ctype:" + value.split(";", 1)[0].strip().lower()[:60]
        charset = re.search(r'(?i)charset="?([\w.-]{1,40})', value)
        if charset:
            yield "charset:" + charset.group(1).lower()
    for name in _WORD_HEADERS:
        for value in fields.get(name, [])[:1]:
            for word in words((decode_text(value) or "")[:500]):
                yield name + ":" + word
    for name in _PRESENCE_HEADERS:
        if fields.get(name, []):
            yield "has:" + name
    recipients = sum(len(getaddresses(fields.get(n, [])[:1])) for n in ("to", "cc"))
    yield "recipients:" + ("0" if recipients == 0 else "1" if recipients == 1 else "few" if recipients < 10 else "many")
    if not fields.get("message-id", []):
        yield "header:no-message-id"
    if not fields.get("date", []):
        yield "header:no-date"
    for value in fields.get("reply-to", [])[:1]:
        for _name, address in getaddresses([value]):
            if "@" in address:
                yield "replytodomain:" + address.rsplit("@", 1)[1].lower()[:100]


def message_tokens(raw: bytes, ngram_sizes: tuple[int, ...] = (1, 2)) -> set[str]:
    """The distinct tokens of a raw message (RFC 5322), at most MAX_TOKENS of them."""
    tokens: set[str] = set()

    def add(token: str) -> bool:
        tokens.add(token)
        return len(tokens) < MAX_TOKENS

    for token in _header_tokens(raw):
        if not add(token):
            return tokens
    root = parse_message(raw)
    text = _visible_text(raw, root)
    for host in _URL_HOST.findall(text[:MAX_TEXT_CHARS]):
        if not add("urlhost:" + host.lower().rstrip(".")):
            return tokens
    body_words = list(words(text))
    for size in sorted(set(ngram_sizes)):
        if size < 1:
            continue
        for i in range(len(body_words) - size + 1):
            gram = body_words[i] if size == 1 else " ".join(body_words[i : i + size])
            if not add(gram):
                return tokens
    return tokens
