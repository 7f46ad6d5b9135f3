"""A client of the web interfaces' JSON API (mailsrv/web/jsonapi.py) for tests: keeps the
cookies, logs in with LoginPrep + Login, sends the CSRF header on every call.

    client = ApiClient.for_daemon(daemon, "/webaccount/")
    client.login("alice@example.org", "alicepass")
    assert client.call("Whoami") == "alice"

Over real sockets (`for_daemon`, http.client, one kept-alive connection) or in memory
against a site object (`in_memory`, tests/web/memhttp.py)."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.web.memhttp import Response, exchange

# (method, path, body, headers) -> response
Send = Callable[[str, str, bytes, dict[str, str]], Response]


class ApiCallError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def socket_sender(host: str, port: int, context: ssl.SSLContext | None = None) -> Send:
    connection: list[http.client.HTTPConnection] = []

    def send(method: str, path: str, body: bytes, headers: dict[str, str]) -> Response:
        if not connection:
            if context is not None:
                connection.append(http.client.HTTPSConnection(host, port, context=context, timeout=30))
            else:
                connection.append(http.client.HTTPConnection(host, port, timeout=30))
        conn = connection[0]
        try:
            conn.request(method, path, body=body or None, headers=headers)
            r = conn.getresponse()
        except (http.client.HTTPException, OSError):
            connection.clear()
            raise
        data = r.read()
        if r.getheader("connection", "").lower() == "close":
            conn.close()
            connection.clear()
        cookies = r.headers.get_all("set-cookie") or []
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data, b"", cookies)

    return send


def memory_sender(site: Any, secure: bool = False, peer: str = "127.0.0.1") -> Send:
    def send(method: str, path: str, body: bytes, headers: dict[str, str]) -> Response:
        fields = {"Host": "mail.example.org", "Content-Length": str(len(body)), **headers}
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
        return exchange(site, head.encode() + body, secure=secure, peer=peer)

    return send


@dataclass
class ApiClient:
    send: Send
    prefix: str  # the interface path, "/webaccount/"
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str | None = None

    @classmethod
    def for_daemon(cls, daemon: Any, prefix: str, port_name: str = "http", **state: Any) -> ApiClient:
        context = daemon.ssl_context() if port_name in ("https",) else None
        return cls(socket_sender(daemon.address, daemon.ports[port_name], context), prefix, **state)

    @classmethod
    def in_memory(cls, site: Any, prefix: str, secure: bool = False, **state: Any) -> ApiClient:
        return cls(memory_sender(site, secure=secure), prefix, **state)

    def raw(self, method: str, body: bytes, headers: dict[str, str] | None = None) -> Response:
        """POST <prefix>api/<method> with this body; keeps the cookies the answer sets."""
        fields = {"Content-Type": "application/json", **(headers or {})}
        if self.cookies:
            fields["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = self.send("POST", f"{self.prefix}api/{method}", body, fields)
        for cookie in response.cookies:
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if value and "max-age=0" not in cookie.lower():
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return response

    def call(self, method: str, *params: Any, csrf: str | None = None) -> Any:
        """The result of an API call, or ApiCallError with the error's code."""
        token = csrf if csrf is not None else self.csrf
        headers = {"x-mailsrv-csrf": token} if token else {}
        response = self.raw(method, json.dumps({"params": list(params)}).encode(), headers)
        answer = json.loads(response.body)
        if "error" in answer:
            error = answer["error"]
            raise ApiCallError(response.status, error["code"], error["message"], error.get("field"))
        assert response.status == 200, response
        return answer["result"]

    def login(self, username: str, password: str) -> str:
        token = self.call("LoginPrep")
        self.csrf = self.call("Login", token, username, password)
        return self.csrf
