"""The site's routing, headers and limits, in memory (tests/web/memhttp.py) with test
interfaces registered in INTERFACES."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.web.resource import Resource

from mailsrv.config.types import ListenerConfig, WebConfig
from mailsrv.server import Server
from mailsrv.web import site as site_module
from mailsrv.web.site import web_site
from mailsrv.web.static import StaticFolder
from tests.ops.world import make_server
from tests.web.memhttp import exchange, get

LOOPBACK = ListenerConfig(name="http", protocol="http", address="127.0.0.1", port=80)
PUBLIC = ListenerConfig(name="public", protocol="http", address="0.0.0.0", port=80)


@pytest.fixture
def assets(tmp_path: Path) -> Path:
    folder = tmp_path / "assets"
    folder.mkdir()
    (folder / "index.html").write_text("<!doctype html><title>test</title>")
    (folder / "app.js").write_text("console.log(1)")
    return folder


@pytest.fixture
def interfaces(assets: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def make(server: Server, listener: ListenerConfig) -> Any:
        return StaticFolder(assets)

    monkeypatch.setattr(site_module, "INTERFACES", {"account": make, "admin": make, "webapi": make})
    yield


def _server(tmp_path: Path, **web: Any) -> Server:
    return make_server(tmp_path, web=dataclasses.replace(WebConfig(), **web))


def test_unknown_paths_are_404_with_security_headers(tmp_path: Path) -> None:
    site = web_site(_server(tmp_path), LOOPBACK)
    # The site's root leads to the webmail (registered in site.INTERFACES).
    home = get(site, "/")
    assert home.status == 302 and home.headers["location"] == "/webmail/"
    for path in ("/nothing", "/webaccountx/", "/.well-known/", "/metrics", "/%2e%2e/etc/passwd"):
        response = get(site, path)
        assert response.status == 404, path
        headers = response.headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
        assert headers["server"] == "mailsrv"
        assert "strict-transport-security" not in headers


def test_hsts_only_over_https_and_when_configured(tmp_path: Path) -> None:
    site = web_site(_server(tmp_path, hsts_max_age=31536000), LOOPBACK)
    assert get(site, "/x", secure=True).headers["strict-transport-security"] == "max-age=31536000"
    assert "strict-transport-security" not in get(site, "/x").headers
    plain = web_site(_server(tmp_path / "2"), LOOPBACK)
    assert "strict-transport-security" not in get(plain, "/x", secure=True).headers


def test_interfaces_at_their_prefixes(tmp_path: Path, interfaces: None) -> None:
    site = web_site(_server(tmp_path), LOOPBACK)
    response = get(site, "/webaccount/")
    assert response.status == 200 and b"<title>test</title>" in response.body
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert get(site, "/webaccount/app.js").headers["content-type"] == "text/javascript; charset=utf-8"
    assert get(site, "/webapi/v0/app.js").status == 200  # a two-segment prefix
    assert get(site, "/webapi/app.js").status == 404
    assert get(site, "/webadmin/app.js").status == 200
    redirect = get(site, "/webaccount")
    assert redirect.status in (301, 302, 303) and redirect.headers["location"].endswith("/webaccount/")
    assert get(site, "/webaccountx/").status == 404
    assert get(site, "/webmail/").status == 404  # no webmail interface registered


def test_admin_on_loopback_listeners_only_unless_configured(tmp_path: Path, interfaces: None) -> None:
    assert get(web_site(_server(tmp_path), PUBLIC), "/webadmin/").status == 404
    assert get(web_site(_server(tmp_path), PUBLIC), "/webaccount/").status == 200
    ipv6 = ListenerConfig(name="v6", protocol="http", address="::1", port=80)
    assert get(web_site(_server(tmp_path), ipv6), "/webadmin/").status == 200
    everywhere = _server(tmp_path / "2", admin_on_all_listeners=True)
    assert get(web_site(everywhere, PUBLIC), "/webadmin/").status == 200


def test_configured_paths(tmp_path: Path, interfaces: None) -> None:
    site = web_site(_server(tmp_path, account_path="/my/account/"), LOOPBACK)
    assert get(site, "/my/account/app.js").status == 200
    assert get(site, "/webaccount/app.js").status == 404


def test_interface_at_root_gets_the_rest(tmp_path: Path, assets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(site_module, "INTERFACES", {"webmail": lambda server, listener: StaticFolder(assets)})
    site = web_site(_server(tmp_path, webmail_path="/"), LOOPBACK)
    assert get(site, "/").status == 200
    assert get(site, "/app.js").status == 200
    assert get(site, "/nothing.js").status == 404
    assert get(site, "/.well-known/mta-sts.txt").status == 404  # well-known paths first


def test_root_redirects_to_webmail(tmp_path: Path, assets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(site_module, "INTERFACES", {"webmail": lambda server, listener: StaticFolder(assets)})
    response = get(web_site(_server(tmp_path), LOOPBACK), "/")
    assert response.status in (301, 302, 303) and response.headers["location"].endswith("/webmail/")


def _post(site: Any, path: str, body: bytes, chunked: bool = False) -> Any:
    if chunked:
        pieces = [body[i : i + 4096] for i in range(0, len(body), 4096)]
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        return exchange(site, head + chunks + b"0\r\n\r\n")
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    return exchange(site, head + body)


def test_request_body_limit(tmp_path: Path, interfaces: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailsrv.config.types import LimitsConfig

    server = make_server(tmp_path, limits=LimitsConfig(http_max_body=2048, http_max_upload=8192))
    small = LimitsConfig(max_message_size=3000)
    assert site_module.message_upload_limit(small) == 4000 + 1024 * 1024
    assert site_module.message_upload_limit(LimitsConfig(http_max_upload=5000)) == 5000
    monkeypatch.setattr(site_module, "UPLOAD_PATHS", [("account", b"import"), ("account", b"send", lambda _: 5000)])
    site = web_site(server, LOOPBACK)
    # A Content-Length over the limit is refused before the body is read.
    head = b"POST /webaccount/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2049\r\n\r\n"
    response = exchange(site, head)
    assert response.status == 413 and response.headers["connection"] == "close"
    assert _post(site, "/webaccount/x", b"a" * 3000, chunked=True).status == 413
    assert _post(site, "/webaccount/x", b"a" * 2048).status != 413
    assert _post(site, "/webaccount/x", b"a" * 2048, chunked=True).status != 413
    assert _post(site, "/webaccount/import", b"a" * 8000).status != 413
    assert _post(site, "/webaccount/import?x=1", b"a" * 8193).status == 413
    assert _post(site, "/webaccount/send", b"a" * 5000).status != 413
    assert _post(site, "/webaccount/send", b"a" * 5001).status == 413


def test_metrics_on_the_named_listener_only(tmp_path: Path) -> None:
    site = web_site(_server(tmp_path, metrics_listener="http"), LOOPBACK)
    response = get(site, "/metrics")
    assert response.status == 200 and response.headers["content-type"].startswith("text/plain")
    assert b"mailsrv_logins_total" in response.body or b"# HELP mailsrv_logins" in response.body
    other = ListenerConfig(name="other", protocol="http", address="127.0.0.1", port=81)
    assert get(web_site(_server(tmp_path, metrics_listener="http"), other), "/metrics").status == 404


def test_webapi_forms_are_parsed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Twisted parses a POSTed form into request.args for every other path; a webapi call's form is
    the webapi's to parse (Twisted's parse was a second one, multipart files included)."""
    seen: dict[bytes, dict[bytes, list[bytes]]] = {}

    class Recording(Resource):
        isLeaf = True

        def render_POST(self, request: Any) -> bytes:
            seen[request.path] = dict(request.args)
            return b"ok"

    monkeypatch.setattr(
        site_module, "INTERFACES", {"account": lambda s, li: Recording(), "webapi": lambda s, li: Recording()}
    )
    site = web_site(_server(tmp_path), LOOPBACK)
    body = b"request=%7B%7D"
    for path in (b"/webapi/v0/Send", b"/webaccount/export"):
        raw = b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\n" % path
        assert exchange(site, raw + b"content-length: %d\r\n\r\n%s" % (len(body), body)).status == 200
    assert seen == {b"/webapi/v0/Send": {}, b"/webaccount/export": {b"request": [b"{}"]}}
