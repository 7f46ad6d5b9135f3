"""The webapi's own reading of an urlencoded form gives what urllib's parse_qs gives (the
`request` field, the first one; `+`, %XX, invalid UTF-8 replaced; too many fields refused)."""

from __future__ import annotations

import random
from urllib.parse import parse_qs

import pytest

from mailsrv.web.webapi.decode import RequestError
from mailsrv.web.webapi.forms import MAX_FORM_FIELDS, read_body

_PIECES = ["a", "=", "&", "+", "%", "%2", "%41", "%C3%A9", "%FF", "request", "reques%74", " ", "é", ";"]


def _by_parse_qs(body: bytes) -> bytes | None:
    try:
        values = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return None
    return values.get("request", [""])[0].encode("utf-8")


def _ours(body: bytes) -> bytes | None:
    try:
        return read_body("application/x-www-form-urlencoded", body).request
    except RequestError as e:
        assert e.code == "protocol"
        return None


def test_same_as_parse_qs() -> None:
    rng = random.Random(3)
    for _ in range(20000):
        body = "".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 14))).encode()
        expected = _by_parse_qs(body)
        if expected is not None and not expected.strip():
            expected = None  # an empty request is refused
        assert _ours(body) == expected, body


def test_too_many_fields() -> None:
    with pytest.raises(RequestError):
        read_body("application/x-www-form-urlencoded", b"a=1&" * MAX_FORM_FIELDS + b"request=%7B%7D")
    assert read_body("application/x-www-form-urlencoded", b"a=1&request=%7B%7D").request == b"{}"
