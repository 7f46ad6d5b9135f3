"""The body of a webapi call: the JSON request from the form field `request`
(application/x-www-form-urlencoded or multipart/form-data) or the whole body
(application/json), and the files a multipart form carries for Send (fields
`alternativefile`, `inlinefile`, `attachedfile`, as in mox: file name, Content-Type and
Content-ID from the part's header).
"""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote_to_bytes

from mailsrv.web.webapi.decode import RequestError

FILE_FIELDS = ("alternativefile", "inlinefile", "attachedfile")
MAX_FORM_PARTS = 1000
MAX_FORM_FIELDS = 1000


@dataclass(frozen=True)
class Upload:
    name: str  # the file name the client gave
    content_type: str  # "" when the part said none
    content_id: str  # as in the part's Content-ID field, "" when none
    data: bytes


@dataclass
class CallBody:
    request: bytes
    files: dict[str, list[Upload]] = field(default_factory=dict)


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def read_body(content_type: str, body: bytes) -> CallBody:
    """The request JSON and uploads of a call. Raises RequestError (code "protocol", as mox
    answers for problems of the HTTP form)."""
    media = _media_type(content_type)
    if media == "application/json":
        request = body
    elif media == "application/x-www-form-urlencoded":
        return _checked(CallBody(_form_request(body)))
    elif media == "multipart/form-data":
        return _checked(_multipart(content_type, body))
    else:
        raise RequestError("protocol", f"unknown content-type {content_type!r}")
    return _checked(CallBody(request))


def _form_request(body: bytes) -> bytes:
    """The `request` field of an urlencoded form (the first one), as parse_qs would give it
    (`+` is a space, %XX escapes, UTF-8 with invalid sequences replaced), read as bytes: the
    str round trips of parse_qs cost more than the rest of a call's decoding."""
    if not body.isascii():
        try:
            values = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
        except (UnicodeDecodeError, ValueError) as e:
            raise RequestError("protocol", f"parsing form: {e}") from None
        return values.get("request", [""])[0].encode("utf-8")
    if body.count(b"&") >= MAX_FORM_FIELDS:
        raise RequestError("protocol", f"parsing form: more than {MAX_FORM_FIELDS} fields")
    for pair in body.split(b"&"):
        name, _, value = pair.partition(b"=")
        if name == b"request" or _unquote(name) == b"request":
            value = _unquote(value)
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                value = value.decode("utf-8", "replace").encode("utf-8")
            return value
    return b""


def _unquote(value: bytes) -> bytes:
    return unquote_to_bytes(value.replace(b"+", b" ")) if b"%" in value or b"+" in value else value


def _checked(call: CallBody) -> CallBody:
    if not call.request.strip():
        raise RequestError("protocol", "missing/empty request")
    return call


def _multipart(content_type: str, body: bytes) -> CallBody:
    parser = email.parser.BytesParser(policy=email.policy.HTTP)
    message: Any = parser.parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart() or message.defects:
        raise RequestError("protocol", "parsing form: malformed multipart/form-data")
    call = CallBody(b"")
    for count, part in enumerate(message.iter_parts()):
        if count >= MAX_FORM_PARTS:
            raise RequestError("protocol", f"parsing form: more than {MAX_FORM_PARTS} parts")
        assert isinstance(part, EmailMessage)
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            data = b""
        if name == "request":
            call.request = data
        elif name in FILE_FIELDS:
            filename = part.get_filename() or ""
            declared = part.get("Content-Type")
            call.files.setdefault(name, []).append(
                Upload(
                    name=filename,
                    content_type=part.get_content_type() if declared else "",
                    content_id=str(part.get("Content-ID", "")).strip(),
                    data=data,
                )
            )
    return call
