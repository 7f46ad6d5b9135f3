# mypy: disable-error-code="no-untyped-call"
# (Failure is an unannotated Twisted API.)
"""What every `mailsrv` subcommand module shares: the one-line error, the config path, and
running an admin operation through the daemon or, when none runs, on the files.

The subcommand modules (`cli_alias`, `cli_rules`, `cli_tlspubkey`, ...) import this module,
never `mailsrv.cli`, which imports them: no import cycle.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "/etc/mailsrv/mailsrv.toml"


class CLIError(Exception):
    """A one-line error for the user."""


def config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get("MAILSRV_CONFIG") or DEFAULT_CONFIG)


def admin_call(args: argparse.Namespace, command: str, params: dict[str, Any]) -> Any:
    """Runs an admin operation through the daemon, or on the files when it is not running."""
    from mailsrv import control
    from mailsrv.config.load import load_static

    config = load_static(config_path(args))
    try:
        return control.call(config.control_socket, command, params)
    except control.DaemonNotRunning:
        pass
    except control.ControlError as e:
        raise CLIError(str(e)) from None
    return _offline(config, command, params)


def _offline(config: Any, command: str, params: dict[str, Any]) -> Any:
    from twisted.internet import reactor as default_reactor
    from twisted.internet.defer import Deferred
    from twisted.python.failure import Failure

    from mailsrv import admin
    from mailsrv.ops.errors import OpsError
    from mailsrv.server import Server

    reactor: Any = default_reactor
    outcome: list[Any] = []
    server = Server.create(config, reactor)

    def start() -> None:
        try:
            d: Deferred[Any] = admin.run(server, command, params)
        except Exception:
            outcome.append(Failure())
            reactor.stop()
            return

        def done(result: Any) -> None:
            outcome.append(result)
            reactor.stop()

        d.addBoth(done)

    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=False)
    server.close()
    result = outcome[0]
    if isinstance(result, Failure):
        if isinstance(result.value, OpsError):
            raise CLIError(result.value.message)
        if result.check(admin.AdminError):
            raise CLIError(str(result.value))
        raise CLIError(f"internal error: {result.getErrorMessage()}")
    return result


def print_json(result: Any, as_json: bool = True) -> None:
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
