"""Administrative operations shared by the control socket and the offline CLI.

Each operation is a function `(server, args) -> JSON-able result` registered in `COMMANDS`
under a dotted name ("account.add"). The daemon runs them when the CLI asks over the
control socket, so the daemon stays the only writer; when no daemon runs, the CLI builds a
`Server` on the same files and runs the same function. A result may be a Deferred (password
hashing runs in the thread pool). `AdminError` carries a one-line message for the user.

A command registered with `in_thread=True` runs in the reactor's thread pool: its writes
(the dynamic config's fsync and rename) never block the reactor thread. Such a handler
returns a plain result and touches only thread-safe objects (`DynamicConfigStore` mutations
take its lock); anything using the stores' SQLite connections stays on the reactor thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from mailsrv.config.dynamic import DynamicConfigError
from mailsrv.server import Server

JSON = Any
Handler = Callable[[Server, dict[str, Any]], "JSON | Deferred[JSON]"]
COMMANDS: dict[str, Handler] = {}
THREADED: set[str] = set()


class AdminError(Exception):
    """A request that cannot be done; `str()` is shown to the admin as is."""


def command(name: str, *, in_thread: bool = False) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = fn
        if in_thread:
            THREADED.add(name)
        return fn

    return register


def _arg(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise AdminError(f"missing argument: {name}")
    return value


def _as_admin_error(failure: Failure) -> JSON:
    if isinstance(failure.value, DynamicConfigError):
        raise AdminError(str(failure.value))
    return failure


def run(server: Server, name: str, args: dict[str, Any]) -> Deferred[JSON]:
    """Runs a command; failures are AdminError (a user mistake) or anything else (a bug)."""
    handler = COMMANDS.get(name)
    if handler is None:
        raise AdminError(f"unknown command: {name}")
    if name in THREADED:
        reactor: Any = server.reactor
        threaded: Deferred[JSON] = deferToThreadPool(reactor, reactor.getThreadPool(), handler, server, args)
        return threaded.addErrback(_as_admin_error)
    try:
        result = handler(server, args)
    except DynamicConfigError as e:
        raise AdminError(str(e)) from None
    if isinstance(result, Deferred):
        return result
    return succeed(result)


def _set_password(server: Server, account: str, password: str) -> Deferred[None]:
    if server.credentials is None:
        raise AdminError("this server keeps no passwords (accounts come from LDAP)")
    if len(password) < 8:
        raise AdminError("password too short: at least 8 characters")
    return server.credentials.set_password(account, password)


@command("domain.add", in_thread=True)
def domain_add(server: Server, args: dict[str, Any]) -> JSON:
    d = server.dynamic.add_domain(_arg(args, "domain"), catchall_separator=args.get("separator", "+"))
    return {"domain": d.name.ascii}


@command("domain.rm", in_thread=True)
def domain_rm(server: Server, args: dict[str, Any]) -> JSON:
    server.dynamic.remove_domain(_arg(args, "domain"))
    return {}


@command("domain.list")
def domain_list(server: Server, args: dict[str, Any]) -> JSON:
    return [
        {"domain": d.name.ascii, "unicode": d.name.unicode, "separator": d.localpart_catchall_separator or ""}
        for d in sorted(server.dynamic.current.domains.values(), key=lambda d: d.name.ascii)
    ]


@command("account.add")
def account_add(server: Server, args: dict[str, Any]) -> Deferred[JSON]:
    name = _arg(args, "account")
    address = _arg(args, "address")
    password = _arg(args, "password")
    if len(password) < 8:
        raise AdminError("password too short: at least 8 characters")
    acc = server.dynamic.add_account(name, address, full_name=args.get("full_name", "") or "")
    server.stores.open(name)

    def done(_: object) -> JSON:
        return {"account": acc.name, "address": acc.addresses[0].display()}

    def undo(failure: Any) -> Any:
        server.dynamic.remove_account(name)
        return failure

    return _set_password(server, name, password).addCallbacks(done, undo)


@command("account.rm")
def account_rm(server: Server, args: dict[str, Any]) -> JSON:
    name = _arg(args, "account")
    server.dynamic.remove_account(name)
    if server.credentials is not None:
        server.credentials.remove_account(name)
    # The account's mail stays on disk under data/accounts/<name>/ for the admin to remove.
    return {}


@command("account.list")
def account_list(server: Server, args: dict[str, Any]) -> JSON:
    return [
        {
            "account": a.name,
            "addresses": [x.display() for x in a.addresses],
            "quota": server.quota_for(a.name),
            "disabled": a.disabled,
        }
        for a in sorted(server.dynamic.current.accounts.values(), key=lambda a: a.name)
    ]


@command("account.setpassword")
def account_setpassword(server: Server, args: dict[str, Any]) -> Deferred[JSON]:
    name = _arg(args, "account")
    if server.dynamic.account_by_name(name) is None:
        raise AdminError(f"no such account: {name}")
    return _set_password(server, name, _arg(args, "password")).addCallback(lambda _: {})


@command("account.setquota", in_thread=True)
def account_setquota(server: Server, args: dict[str, Any]) -> JSON:
    name = _arg(args, "account")
    quota = args.get("quota")
    if quota is not None and (not isinstance(quota, int) or quota < 0):
        raise AdminError("quota must be a number of octets >= 0 (0: no limit)")
    server.dynamic.set_account_quota(name, quota)
    return {"quota": server.quota_for(name)}


# Modules with more commands register them on import (they import this module back).
from mailsrv import cli_alias as _cli_alias  # noqa: E402,F401
from mailsrv import cli_queue as _cli_queue  # noqa: E402,F401
from mailsrv import cli_rules as _cli_rules  # noqa: E402,F401
from mailsrv import cli_tlspubkey as _cli_tlspubkey  # noqa: E402,F401
