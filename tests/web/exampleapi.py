"""A test-only interface on the web framework (never shipped): an API with sessions over the
account login, registered as "account" so its paths are the account page's. Used by the
framework's own tests and the browser test before the real interfaces exist.

`python -m tests.web.exampleapi --log-format=text mailsrv --config X` runs the daemon with it
(`tests/daemon.py`'s `python_args`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import msgspec

from mailsrv.config.types import ListenerConfig
from mailsrv.ops.errors import InvalidInput, NotFound, StoreUnavailable
from mailsrv.server import Server
from mailsrv.web.interface import InterfaceResource
from mailsrv.web.jsonapi import Call, api
from mailsrv.web.sessions import SessionAPI, account_login
from mailsrv.web.site import interface_path
from mailsrv.web.static import StaticFolder

ASSETS = Path(__file__).resolve().parent / "example_static"


class Item(msgspec.Struct):
    name: str
    count: int = 0
    tags: list[str] = msgspec.field(default_factory=list)


class Box(msgspec.Struct):
    item: Item
    note: str | None = None


class ExampleAPI(SessionAPI):
    title = "example"

    @api
    async def Whoami(self, call: Call) -> str:
        """The logged-in account."""
        assert call.principal is not None
        return call.principal

    @api
    async def Echo(self, call: Call, box: Box, times: int) -> list[Item]:
        """The box's item `times` times."""
        if not 0 <= times <= 100:
            raise InvalidInput("times must be 0 to 100", "times")
        return [box.item] * times

    @api
    async def Fail(self, call: Call, kind: str) -> None:
        """Raises the error `kind` names."""
        if kind == "notfound":
            raise NotFound("no such thing")
        if kind == "unavailable":
            raise StoreUnavailable("the mail store is busy")
        if kind == "bug":
            raise RuntimeError("secret internal detail")
        raise InvalidInput(f"unknown kind {kind!r}", "kind")

    @api
    async def EndOtherSessions(self, call: Call) -> int:
        """What the account page does after a password change."""
        return self.invalidate_other_sessions(call)


def example_interface(server: Server, listener: ListenerConfig) -> Any:
    api_object = ExampleAPI(server, "account", interface_path(server, "account"), account_login)
    return InterfaceResource(api_object, StaticFolder(ASSETS))


def register() -> None:
    from mailsrv.web import site

    site.INTERFACES["account"] = example_interface


if __name__ == "__main__":
    from twisted.application.twist._twist import Twist

    register()
    Twist.main([sys.argv[0], *sys.argv[1:]])
