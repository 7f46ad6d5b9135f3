"""ENVELOPE, BODY and BODYSTRUCTURE (RFC 9051 §7.5.2) from the stored part tree.

Nothing here reads the message: everything comes from `mailsrv.message.part.Part`, parsed
once at delivery. Strings are written through `responses` so quoting is decided in one
place; `utf8` allows 8-bit UTF-8 in quoted strings for IMAP4rev2/UTF8=ACCEPT sessions.
"""

from __future__ import annotations

from mailsrv.imapserver import responses
from mailsrv.message.part import Envelope, EnvelopeAddress, Part

NIL = responses.NIL


def _s(value: str | None, utf8: bool) -> bytes:
    if value is None:
        return NIL
    if not utf8 and not value.isascii():
        # IMAP4rev1 clients get 8-bit text as a literal rather than mangled; clients cope.
        return responses.literal(value.encode("utf-8"))
    return responses.string(value, utf8=utf8)


def _address(a: EnvelopeAddress, utf8: bool) -> bytes:
    return responses.paren([_s(a.name, utf8), _s(a.adl, utf8), _s(a.mailbox, utf8), _s(a.host, utf8)])


def _addresses(addrs: tuple[EnvelopeAddress, ...], utf8: bool) -> bytes:
    if not addrs:
        return NIL
    return b"(" + b"".join(_address(a, utf8) for a in addrs) + b")"


def envelope(env: Envelope | None, utf8: bool) -> bytes:
    if env is None:
        env = Envelope(None, None, (), (), (), (), (), (), None, None)
    return responses.paren(
        [
            _s(env.date, utf8),
            _s(env.subject, utf8),
            _addresses(env.from_, utf8),
            _addresses(env.sender, utf8),
            _addresses(env.reply_to, utf8),
            _addresses(env.to, utf8),
            _addresses(env.cc, utf8),
            _addresses(env.bcc, utf8),
            _s(env.in_reply_to, utf8),
            _s(env.message_id, utf8),
        ]
    )


def _params(params: dict[str, str], utf8: bool) -> bytes:
    if not params:
        return NIL
    items: list[bytes] = []
    for k, v in params.items():
        items.append(_s(k.upper() if k == "charset" else k, utf8))
        items.append(_s(v, utf8))
    return responses.paren(items)


def _disposition(part: Part, utf8: bool) -> bytes:
    if not part.disposition:
        return NIL
    return responses.paren([_s(part.disposition, utf8), _params(part.disposition_params, utf8)])


def _language(part: Part, utf8: bool) -> bytes:
    if not part.language:
        return NIL
    if len(part.language) == 1:
        return _s(part.language[0], utf8)
    return responses.paren([_s(x, utf8) for x in part.language])


def body(part: Part, extended: bool, utf8: bool) -> bytes:
    """BODYSTRUCTURE when `extended`, else BODY (no extension data)."""
    if part.is_multipart and part.children:
        items = [b"".join(body(c, extended, utf8) for c in part.children), _s(part.media_subtype.upper(), utf8)]
        if extended:
            items += [
                _params(part.params, utf8),
                _disposition(part, utf8),
                _language(part, utf8),
                _s(part.location, utf8),
            ]
        return b"(" + b" ".join(items) + b")"
    params = dict(part.params)
    if part.media_type == "text" and "charset" not in params:
        params["charset"] = "us-ascii"  # RFC 2045 §5.2 default, which clients expect to see
    items = [
        _s(part.media_type.upper(), utf8),
        _s(part.media_subtype.upper(), utf8),
        _params(params, utf8),
        _s(part.content_id, utf8),
        _s(part.description, utf8),
        _s(part.encoding.upper(), utf8),
        responses.number(part.body_octets),
    ]
    if part.is_message and part.children:
        inner = part.children[0]
        items += [envelope(inner.envelope, utf8), body(inner, extended, utf8), responses.number(part.body_lines)]
    elif part.media_type == "text":
        items.append(responses.number(part.body_lines))
    if extended:
        items += [_s(part.md5, utf8), _disposition(part, utf8), _language(part, utf8), _s(part.location, utf8)]
    return responses.paren(items)
