"""Autoconfig and autodiscover through the site (in memory): routes, statuses, content types,
security headers, hostile request XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailsrv import localserve
from mailsrv.server import Server
from mailsrv.web.autoconfig import AUTOCONFIG_PATHS, AUTODISCOVER_PATHS
from mailsrv.web.site import web_site
from tests.ops.world import InlineReactor
from tests.web.memhttp import Response, exchange, get


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Any]:
    server = Server.create(localserve.prepare(tmp_path / "ls"), InlineReactor())
    yield web_site(server, server.config.listeners[-1])
    server.close()


def _post(site: Any, path: bytes, body: bytes) -> Response:
    head = b"POST %s HTTP/1.1\r\nHost: localhost\r\ncontent-type: text/xml\r\ncontent-length: %d\r\n\r\n"
    return exchange(site, head % (path, len(body)) + body)


@pytest.mark.parametrize("path", [p.decode() for p in AUTOCONFIG_PATHS])
def test_autoconfig(site: Any, path: str) -> None:
    response = get(site, f"{path}?emailaddress=user%40localhost", host="autoconfig.localhost")
    assert response.status == 200 and response.headers["content-type"].startswith("application/xml")
    assert response.headers["x-content-type-options"] == "nosniff"
    incoming = ET.fromstring(response.body).find("emailProvider/incomingServer")
    assert incoming is not None and (incoming.findtext("port"), incoming.findtext("socketType")) == ("1993", "SSL")
    assert get(site, path).status == 400
    assert get(site, f"{path}?emailaddress=nope").status == 400
    assert get(site, f"{path}?emailaddress=user@elsewhere.example").status == 404


REQUEST = (
    b'<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
    b"<Request><EMailAddress>user@localhost</EMailAddress></Request></Autodiscover>"
)


@pytest.mark.parametrize("path", AUTODISCOVER_PATHS)
def test_autodiscover(site: Any, path: bytes) -> None:
    response = _post(site, path, REQUEST)
    assert response.status == 200 and response.headers["content-type"].startswith("application/xml")
    assert b"<Port>1993</Port>" in response.body and b"<Port>1465</Port>" in response.body
    assert get(site, path.decode()).status == 405
    xxe = b'<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><Autodiscover><Request><EMailAddress>&e;'
    refused = _post(site, path, xxe + b"</EMailAddress></Request></Autodiscover>")
    assert refused.status == 400 and b"root:" not in refused.body
