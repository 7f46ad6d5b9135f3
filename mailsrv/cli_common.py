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
import sys
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


def become_owner(*directories: Path) -> None:
    """Run as root, become the user who owns `directories` (the daemon's user, for
    /var/lib/mailsrv) before touching anything in them, as Postfix's postqueue and Dovecot's
    doveadm effectively do: files root created there would be root's, and the daemon could
    no longer open them (issue 17 item 13). Directories that do not exist yet, or that root
    owns, ask for nothing; directories of two different users are refused. Through the
    control socket the daemon writes its files itself, so this concerns offline commands."""
    if os.geteuid() != 0:
        return
    owners: dict[int, Path] = {}
    for directory in directories:
        try:
            st = directory.stat()
        except FileNotFoundError:
            continue
        if st.st_uid != 0:
            owners.setdefault(st.st_uid, directory)
    if not owners:
        return
    if len(owners) > 1:
        listed = ", ".join(f"{d} ({_user_name(uid)})" for uid, d in owners.items())
        raise CLIError(f"these directories belong to different users: {listed}")
    [(uid, directory)] = owners.items()
    import pwd

    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        raise CLIError(f"{directory} belongs to uid {uid}, which has no user entry: run this as that uid") from None
    os.initgroups(entry.pw_name, entry.pw_gid)
    groups = set(os.getgroups()) | {entry.pw_gid}
    # Python imports some modules only when first used; if the user cannot read the Python
    # installation (a pyenv under /root), the process keeps the right to read and search
    # what root can (CAP_DAC_READ_SEARCH), nothing else: what it writes, it writes as the user.
    keep_read = not all(_readable(path, uid, groups) for path in _installation())
    # Groups first (they need root), then the user; the saved IDs go too, so nothing can
    # switch back to root.
    if keep_read:
        _keep_capabilities_across_setuid(True)
    os.setresgid(entry.pw_gid, entry.pw_gid, entry.pw_gid)
    os.setresuid(uid, uid, uid)
    if keep_read:
        _keep_capabilities_across_setuid(False)
        _set_capabilities(1 << _CAP_DAC_READ_SEARCH)
    os.environ["HOME"] = entry.pw_dir
    os.environ["USER"] = os.environ["LOGNAME"] = entry.pw_name


_CAP_DAC_READ_SEARCH = 2  # linux/capability.h
_PR_SET_KEEPCAPS = 8  # linux/prctl.h
_CAPABILITY_VERSION_3 = 0x20080522


def _installation() -> list[Path]:
    """Where this process imports its code from."""
    import mailsrv

    paths = {Path(sys.prefix), Path(sys.base_prefix), *(Path(p) for p in mailsrv.__path__)}
    paths |= {Path(p) for p in sys.path if p and Path(p).is_dir()}
    return sorted(paths)


def _readable(path: Path, uid: int, groups: set[int]) -> bool:
    """Whether `uid` (with `groups`) may search every directory down to `path` and read it."""
    import stat

    def allows(st: os.stat_result, bit: int) -> bool:
        if st.st_uid == uid:
            return bool(st.st_mode & (bit << 6))
        if st.st_gid in groups:
            return bool(st.st_mode & (bit << 3))
        return bool(st.st_mode & bit)

    try:
        resolved = path.resolve()
        for directory in [*reversed(resolved.parents), resolved]:
            st = directory.stat()
            if stat.S_ISDIR(st.st_mode) and not allows(st, 0o1):
                return False
        return allows(resolved.stat(), 0o4)
    except OSError:
        return False


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _keep_capabilities_across_setuid(keep: bool) -> None:
    import ctypes

    if _libc().prctl(_PR_SET_KEEPCAPS, int(keep), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_KEEPCAPS) failed")


def _set_capabilities(mask: int) -> None:
    """This thread's (and its future threads') permitted and effective capabilities: `mask`."""
    import ctypes

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    data = (Data * 2)()
    data[0].effective = data[0].permitted = mask & 0xFFFFFFFF
    data[1].effective = data[1].permitted = mask >> 32
    if _libc().capset(ctypes.byref(Header(_CAPABILITY_VERSION_3, 0)), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


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

    # The daemon does not run: this process writes its files, as their owner.
    become_owner(config.data_dir)
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
