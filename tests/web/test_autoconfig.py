"""The autoconfig and autodiscover resources (no socket): statuses, content types, bodies."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.web.test.requesthelper import DummyRequest

from mailsrv import localserve
from mailsrv.server import Server
from mailsrv.web.autoconfig import AUTOCONFIG_PATHS, AUTODISCOVER_PATHS, well_known_resources
from tests.ops.world import InlineReactor


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server.create(localserve.prepare(tmp_path / "ls"), InlineReactor())
    yield s
    s.close()


def _render(
    server: Server, path: bytes, method: bytes = b"GET", body: bytes = b"", **args: str
) -> tuple[int, str, bytes]:
    resource = well_known_resources(server)[path]
    request = DummyRequest(path.split(b"/")[1:])
    request.method = method
    request.args = {k.encode(): [v.encode()] for k, v in args.items()}
    request.content = io.BytesIO(body)
    out = resource.render(request)
    assert isinstance(out, bytes)
    ctype = request.responseHeaders.getRawHeaders(b"content-type", [b""])[0].decode()
    return request.responseCode or 200, ctype, out


@pytest.mark.parametrize("path", AUTOCONFIG_PATHS)
def test_autoconfig(server: Server, path: bytes) -> None:
    status, ctype, body = _render(server, path, emailaddress="user@localhost")
    assert status == 200 and ctype.startswith("application/xml")
    incoming = ET.fromstring(body).find("emailProvider/incomingServer")
    assert incoming is not None and incoming.findtext("port") == "1993"
    assert _render(server, path)[0] == 400
    assert _render(server, path, emailaddress="nope")[0] == 400
    assert _render(server, path, emailaddress="user@elsewhere.example")[0] == 404


@pytest.mark.parametrize("path", AUTODISCOVER_PATHS)
def test_autodiscover(server: Server, path: bytes) -> None:
    request = (
        b'<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
        b"<Request><EMailAddress>user@localhost</EMailAddress></Request></Autodiscover>"
    )
    status, ctype, body = _render(server, path, b"POST", request)
    assert status == 200 and ctype.startswith("application/xml") and b"<Port>1993</Port>" in body
    assert _render(server, path, b"GET")[0] == 405
    xxe = b'<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><Autodiscover><Request><EMailAddress>&e;'
    status, _, body = _render(server, path, b"POST", xxe + b"</EMailAddress></Request></Autodiscover>")
    assert status == 400 and b"root:" not in body
