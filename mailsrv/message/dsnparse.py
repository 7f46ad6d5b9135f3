"""Reading delivery status notifications (RFC 3464; RFC 6533 for the "global" UTF-8 forms):
a `multipart/report; report-type=delivery-status` message whose `message/delivery-status`
part holds one group of per-message fields and one group per recipient (Final-Recipient,
Action, Status, Diagnostic-Code, ...), and usually the returned message or its header.

Never raises: anything that is not a readable DSN is None. Bounded: at most
`MAX_RECIPIENTS` recipient groups are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailsrv.message.parse import decode_body, header_end, parse_headers, parse_message
from mailsrv.message.part import Part

MAX_RECIPIENTS = 100
MAX_FIELDS_SIZE = 256 * 1024

_STATUS = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})")
_CODE = re.compile(r"^\s*([245]\d\d)\b[ -]*(.*)$", re.S)


@dataclass(frozen=True)
class RecipientReport:
    final_recipient: str  # the address, without its "rfc822;" type
    action: str  # failed, delayed, delivered, relayed, expanded (lowercase), or what the DSN said
    status: str  # the enhanced status code, e.g. 5.1.1 ("" when unreadable)
    diagnostic: str  # Diagnostic-Code without its "smtp;" type
    code: int  # the SMTP reply code in the diagnostic, 0 if none
    remote_mta: str = ""


@dataclass(frozen=True)
class DSNReport:
    envelope_id: str
    recipients: tuple[RecipientReport, ...]
    original_message_id: str  # of the returned message or header, "" if none came back


def _typed_value(value: str) -> str:
    """`rfc822; bob@example.org` -> `bob@example.org` (RFC 3464 §2.3.2 address-type)."""
    _type, sep, rest = value.partition(";")
    return " ".join((rest if sep else value).split())


def _groups(text: str) -> list[str]:
    return [g for g in re.split(r"\r?\n[ \t]*\r?\n", text) if g.strip()]


def _find(part: Part, subtypes: tuple[str, ...], depth: int = 0) -> Part | None:
    if depth > 10:
        return None
    if part.media_type == "message" and part.media_subtype in subtypes:
        return part
    if part.media_type == "text" and part.media_subtype in subtypes:
        return part
    for child in part.children:
        found = _find(child, subtypes, depth + 1)
        if found is not None:
            return found
    return None


def _is_report(root: Part) -> bool:
    return (
        root.media_type == "multipart"
        and root.media_subtype == "report"
        and root.params.get("report-type", "").lower() in ("delivery-status", "global-delivery-status")
    )


def parse_dsn(raw: bytes) -> DSNReport | None:
    root = parse_message(raw)
    if not _is_report(root):
        return None
    status_part = _find(root, ("delivery-status", "global-delivery-status"))
    if status_part is None:
        return None
    body = raw[status_part.body_start : status_part.body_end][:MAX_FIELDS_SIZE]
    decoded = decode_body(status_part, body)
    text = (decoded if decoded is not None else body).decode("utf-8", "replace")
    groups = _groups(text)
    if len(groups) < 2:
        return None
    per_message = parse_headers(groups[0].encode())
    recipients = []
    for group in groups[1 : 1 + MAX_RECIPIENTS]:
        fields = parse_headers(group.encode())
        final = _typed_value(str(fields.get("Final-Recipient") or fields.get("Original-Recipient") or ""))
        if not final:
            continue
        status = _STATUS.match(str(fields.get("Status") or ""))
        diagnostic = _typed_value(str(fields.get("Diagnostic-Code") or ""))
        code = _CODE.match(diagnostic)
        recipients.append(
            RecipientReport(
                final_recipient=final,
                action=str(fields.get("Action") or "").strip().lower(),
                status=status.group(1) if status else "",
                diagnostic=diagnostic[:1000],
                code=int(code.group(1)) if code else 0,
                remote_mta=_typed_value(str(fields.get("Remote-MTA") or "")),
            )
        )
    if not recipients:
        return None
    return DSNReport(
        envelope_id=str(per_message.get("Original-Envelope-Id") or "").strip(),
        recipients=tuple(recipients),
        original_message_id=_returned_message_id(root, raw),
    )


def _returned_message_id(root: Part, raw: bytes) -> str:
    returned = _find(root, ("rfc822", "rfc822-headers", "global", "global-headers"))
    if returned is None:
        return ""
    start = returned.body_start
    end = header_end(raw, start, returned.body_end)
    value = parse_headers(raw[start:end]).get("Message-ID")
    return str(value).strip() if value else ""
