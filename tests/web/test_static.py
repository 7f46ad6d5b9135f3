"""Asset folders: files by name, index.html at the root, nothing outside the folder whatever
the encoding (`..`, `%2e%2e`, `%2f`, absolute paths, NUL, backslashes, symlinks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailsrv.web.static import StaticFolder, asset_path
from tests.web.memhttp import get


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "secret.txt").write_text("secret")
    root = tmp_path / "assets"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html>")
    (root / "app.js").write_text("x")
    (root / "sub" / "style.css").write_text("a{}")
    (root / ".hidden").write_text("h")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    return root


def test_names_inside_the_folder(folder: Path) -> None:
    assert asset_path(folder, [b""]) == folder / "index.html"
    assert asset_path(folder, []) == folder / "index.html"
    assert asset_path(folder, [b"app.js"]) == folder / "app.js"
    assert asset_path(folder, [b"sub", b"style.css"]) == folder / "sub" / "style.css"
    assert asset_path(folder, [b"sub"]) is None  # a folder without index.html
    assert asset_path(folder, [b"missing.js"]) is None


@pytest.mark.parametrize(
    "segments",
    [
        [b"..", b"secret.txt"],
        [b"sub", b"..", b"..", b"secret.txt"],
        [b"../secret.txt"],  # %2f decoded inside one segment
        [b"..\\secret.txt"],
        [b"/etc/passwd"],
        [b"", b"etc", b"passwd"],
        [b"app.js\x00.html"],
        [b".hidden"],
        [b"link.txt"],  # a symlink leading out
        [b"sub", b"", b"style.css"],
        [b"a" * 200],
    ],
)
def test_traversal_refused(folder: Path, segments: list[bytes]) -> None:
    assert asset_path(folder, segments) is None


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/%2fetc%2fpasswd",
        "//etc/passwd",
        "/app.js%00.html",
        "/..%5csecret.txt",
        "/link.txt",
    ],
)
def test_traversal_over_http(folder: Path, path: str) -> None:
    from twisted.web.server import Site

    response = get(Site(StaticFolder(folder)), path)
    assert response.status == 404, path
    assert b"secret" not in response.body


def test_serves_with_type_and_revalidation(folder: Path) -> None:
    from twisted.web.server import Site

    site = Site(StaticFolder(folder))
    response = get(site, "/sub/style.css")
    assert response.status == 200 and response.body == b"a{}"
    assert response.headers["content-type"] == "text/css; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    again = get(site, "/sub/style.css", if_none_match=response.headers["etag"])
    assert again.status == 304 and again.body == b""
    assert get(site, "/").headers["content-type"] == "text/html; charset=utf-8"


def test_other_methods_get_405(folder: Path) -> None:
    from twisted.web.server import Site

    from tests.web.memhttp import exchange

    response = exchange(Site(StaticFolder(folder)), b"POST /app.js HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert response.status == 405 and response.headers["allow"] == "GET, HEAD"
    assert response.body == b"method not allowed\n"
