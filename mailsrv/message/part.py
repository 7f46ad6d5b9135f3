"""The stored MIME part tree of a message.

A message is parsed once, at delivery, into a tree of `Part`s that records for every part
its MIME metadata and the byte offsets of its header and body inside the raw message file.
IMAP FETCH BODYSTRUCTURE/ENVELOPE/BODY[section] and the webmail are served from this tree
and from ranged reads of the file; nothing re-parses a stored message.

The tree is serialised to JSON (`Part.to_json` / `Part.from_json`) in the store's index.
Offsets are absolute positions in the raw message file (which includes the headers the
server prepended at delivery), so `file[header_start:body_start]` is the part's header
block including the blank line that ends it, and `file[body_start:body_end]` its body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import msgspec

_encode_json = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class EnvelopeAddress:
    """One address of an envelope field, as IMAP ENVELOPE shows it (RFC 9051 §7.5.2).

    `name` is the display name (RFC 2047 words kept as in the header), `mailbox`/`host` the two
    halves of the addr-spec as they appear in the header (host may be a U-label). A group
    start is `(None, None, group_name, None)`-shaped: mailbox=group name, host=None; a group
    end is mailbox=None, host=None, per the RFC's group syntax.
    """

    name: str | None
    adl: str | None
    mailbox: str | None
    host: str | None


@dataclass(frozen=True)
class Envelope:
    """RFC 9051 §7.5.2 ENVELOPE fields as the header has them, RFC 2047 encoded-words not
    decoded (IMAP clients decode them); folding is unfolded. None when the header is absent."""

    date: str | None
    subject: str | None
    from_: tuple[EnvelopeAddress, ...]
    sender: tuple[EnvelopeAddress, ...]
    reply_to: tuple[EnvelopeAddress, ...]
    to: tuple[EnvelopeAddress, ...]
    cc: tuple[EnvelopeAddress, ...]
    bcc: tuple[EnvelopeAddress, ...]
    in_reply_to: str | None
    message_id: str | None


@dataclass
class Part:
    """One MIME part (the message itself is the root part).

    - `media_type`/`media_subtype` are lower-case ("text", "plain"); a part without
      Content-Type is text/plain (or message/rfc822 inside multipart/digest).
    - `params` are the Content-Type parameters, names lower-case, values decoded (RFC 2231).
    - `body_octets` = body_end - body_start; `body_lines` counts lines of the body for
      text/* and message/rfc822 parts (0 otherwise).
    - `children`: the sub-parts of a multipart, or exactly one child (the encapsulated
      message's root part) for message/rfc822 and message/global.
    - `envelope`: for the root part and for the root of an encapsulated message.
    """

    media_type: str
    media_subtype: str
    params: dict[str, str] = field(default_factory=dict)
    content_id: str | None = None
    description: str | None = None
    encoding: str = "7bit"
    md5: str | None = None
    disposition: str | None = None
    disposition_params: dict[str, str] = field(default_factory=dict)
    language: list[str] | None = None
    location: str | None = None
    header_start: int = 0
    body_start: int = 0
    body_end: int = 0
    body_lines: int = 0
    children: list[Part] = field(default_factory=list)
    envelope: Envelope | None = None

    @property
    def body_octets(self) -> int:
        return self.body_end - self.body_start

    @property
    def is_multipart(self) -> bool:
        return self.media_type == "multipart"

    @property
    def is_message(self) -> bool:
        return self.media_type == "message" and self.media_subtype in ("rfc822", "global")

    def to_json(self) -> str:
        obj = _part_to_obj(self)
        try:
            # The same text as json.dumps below (checked on random strings), at a fraction of its CPU.
            return _encode_json(obj).decode()
        except UnicodeEncodeError:  # a lone surrogate, which json writes as it is
            return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Part:
        return _part_from_obj(json.loads(text))


def _addrs_to_obj(addrs: tuple[EnvelopeAddress, ...]) -> list[list[str | None]]:
    return [[a.name, a.adl, a.mailbox, a.host] for a in addrs]


def _addrs_from_obj(obj: list[list[str | None]]) -> tuple[EnvelopeAddress, ...]:
    return tuple(EnvelopeAddress(*a) for a in obj)


def _envelope_to_obj(env: Envelope) -> dict[str, Any]:
    return {
        "date": env.date,
        "subject": env.subject,
        "from": _addrs_to_obj(env.from_),
        "sender": _addrs_to_obj(env.sender),
        "reply_to": _addrs_to_obj(env.reply_to),
        "to": _addrs_to_obj(env.to),
        "cc": _addrs_to_obj(env.cc),
        "bcc": _addrs_to_obj(env.bcc),
        "in_reply_to": env.in_reply_to,
        "message_id": env.message_id,
    }


def _envelope_from_obj(obj: dict[str, Any]) -> Envelope:
    return Envelope(
        date=obj["date"],
        subject=obj["subject"],
        from_=_addrs_from_obj(obj["from"]),
        sender=_addrs_from_obj(obj["sender"]),
        reply_to=_addrs_from_obj(obj["reply_to"]),
        to=_addrs_from_obj(obj["to"]),
        cc=_addrs_from_obj(obj["cc"]),
        bcc=_addrs_from_obj(obj["bcc"]),
        in_reply_to=obj["in_reply_to"],
        message_id=obj["message_id"],
    )


def _part_to_obj(part: Part) -> dict[str, Any]:
    return {
        "t": part.media_type,
        "s": part.media_subtype,
        "p": part.params,
        "id": part.content_id,
        "desc": part.description,
        "enc": part.encoding,
        "md5": part.md5,
        "disp": part.disposition,
        "dp": part.disposition_params,
        "lang": part.language,
        "loc": part.location,
        "hs": part.header_start,
        "bs": part.body_start,
        "be": part.body_end,
        "bl": part.body_lines,
        "c": [_part_to_obj(c) for c in part.children],
        "env": _envelope_to_obj(part.envelope) if part.envelope is not None else None,
    }


def _part_from_obj(obj: dict[str, Any]) -> Part:
    return Part(
        media_type=obj["t"],
        media_subtype=obj["s"],
        params=obj["p"],
        content_id=obj["id"],
        description=obj["desc"],
        encoding=obj["enc"],
        md5=obj["md5"],
        disposition=obj["disp"],
        disposition_params=obj["dp"],
        language=obj["lang"],
        location=obj["loc"],
        header_start=obj["hs"],
        body_start=obj["bs"],
        body_end=obj["be"],
        body_lines=obj["bl"],
        children=[_part_from_obj(c) for c in obj["c"]],
        envelope=_envelope_from_obj(obj["env"]) if obj["env"] is not None else None,
    )
