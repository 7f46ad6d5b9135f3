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
    """--config, $MAILSRV_CONFIG, or the first of /etc/mailsrv/mailsrv.toml and the default
    localserve's config whose daemon runs (then the first that exists): a developer running
    `mailsrv localserve` needs no --config for the other commands."""
    given = args.config or os.environ.get("MAILSRV_CONFIG")
    if given:
        return Path(given)
    from mailsrv.localserve import DEFAULT_DIR

    candidates = [Path(DEFAULT_CONFIG), DEFAULT_DIR / "mailsrv.toml"]
    existing = [c for c in candidates if c.is_file()]
    for candidate in existing:
        if _daemon_runs(candidate):
            return candidate
    return existing[0] if existing else Path(DEFAULT_CONFIG)


def _daemon_runs(config_file: Path) -> bool:
    from mailsrv import control
    from mailsrv.config.load import load_static
    from mailsrv.config.types import ConfigError

    try:
        control_socket = load_static(config_file).control_socket
    except (ConfigError, OSError):
        return False
    return control.daemon_running(control_socket)


def refuse_foreign_owner(directory: Path) -> None:
    """Run as root, refuse to write into `directory` when another user owns it (the daemon's
    user, for /var/lib/mailsrv): files root created there would be root's, and the daemon
    could no longer open them. The user is told how to run it instead. (Through the control
    socket the daemon writes its files itself, so commands work as root while it runs.)"""
    if os.geteuid() != 0:
        return
    try:
        owner = directory.stat().st_uid
    except FileNotFoundError:
        return
    if owner == 0:
        return
    import pwd

    try:
        name = pwd.getpwuid(owner).pw_name
    except KeyError:
        name = f"uid {owner}"
    raise CLIError(
        f"{directory} belongs to {name}, and files root writes there would lock the daemon out: run this as"
        f" that user (sudo -u {name} mailsrv ...), or while the daemon runs (it then makes the change)"
    )


def admin_call(args: argparse.Namespace, command: str, params: dict[str, Any], timeout: float = 60.0) -> Any:
    """Runs an admin operation through the daemon, or on the files when it is not running."""
    from mailsrv import control
    from mailsrv.config.load import load_static

    config = load_static(config_path(args))
    try:
        return control.call(config.control_socket, command, params, timeout=timeout)
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

    # The daemon does not run: this process writes its files, as their owner only.
    refuse_foreign_owner(config.data_dir)
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
