"""What `twistd mailsrv` runs: configuration errors become one line and exit code 1."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

from twisted.application.service import MultiService
from twisted.logger import ILogObserver, Logger

from mailsrv.config.types import ConfigError

log = Logger()


def _die(message: str) -> NoReturn:
    # twistd would print a traceback for an exception from makeService; a config mistake
    # deserves one clear line instead.
    sys.stderr.write(f"mailsrv: {message}\n")
    sys.stderr.flush()
    raise SystemExit(1)


class DaemonService(MultiService):
    """The daemon's top service. Under twistd it hands our log observer to the Application,
    which twistd's logger asks for (`ILogObserver` component) before it starts logging."""

    log_observer: Any = None

    def setServiceParent(self, parent: Any) -> Any:
        if self.log_observer is not None and hasattr(parent, "setComponent"):
            parent.setComponent(ILogObserver, self.log_observer)
        return super().setServiceParent(parent)  # type: ignore[no-untyped-call]


def install_logging(top: DaemonService, runner_options: Any, log_format: str | None) -> None:
    """Use our one-line observers (mailsrv.logging) with twistd, and with `twist` (`python -m
    twisted`) when `--logformat` is given or twist's `--log-format` is text (twist's JSON
    format stays as it is)."""
    from mailsrv.logging import make_observer, observer_factory, open_log_output

    if runner_options is None:
        return
    if "logFile" in runner_options:  # twist: its runner builds the observer after makeService
        if log_format is None and runner_options.get("logFormat") == "text":
            # twist's text is Twisted's line format: ours is the documented one
            # (docs/operations.md), at about half the CPU per line.
            log_format = "text"
        if log_format is not None:
            runner_options["fileLogObserverFactory"] = observer_factory(log_format)  # type: ignore[arg-type]
    elif "nodaemon" in runner_options:  # twistd
        output = open_log_output(runner_options.get("logfile"), bool(runner_options.get("nodaemon")))
        top.log_observer = make_observer(output, log_format or "text")  # type: ignore[arg-type]


def make_daemon_service(
    config_path: str | None,
    localserve: bool,
    localserve_dir: str | None,
    port_offset: int = 0,
    log_format: str | None = None,
    runner_options: Any = None,
) -> MultiService:
    from mailsrv.config.load import load_static
    from mailsrv.control import daemon_running
    from mailsrv.filemodes import make_tree_private, set_private_umask
    from mailsrv.server import Server
    from mailsrv.service import make_service
    from mailsrv.tlsutil import TLSConfigError

    set_private_umask()  # before anything is created: dirs 0700, files 0600
    try:
        if localserve:
            from mailsrv import localserve as ls

            config = ls.prepare(Path(localserve_dir) if localserve_dir else None, port_offset)
            print(ls.banner(config), flush=True)
        else:
            assert config_path is not None
            config = load_static(Path(config_path))
        # Before Server.create: opening the stores cleans up "interrupted" deliveries, which
        # would be the running daemon's deliveries in progress.
        if daemon_running(config.control_socket):
            _die(f"another mailsrv daemon is running on {config.data_dir}")
        made_private = make_tree_private(config.data_dir)
        if made_private:
            # An installation from before umask 077 (or files copied in by hand).
            log.warn(
                "made {count} path(s) under {data_dir} private to the service user (group/other "
                "permissions removed), e.g. {example}",
                count=len(made_private),
                data_dir=str(config.data_dir),
                example=str(made_private[0]),
            )
        server = Server.create(config)
    except (ConfigError, TLSConfigError) as e:
        _die(str(e))
    except OSError as e:
        _die(f"{e.filename or ''}: {e.strerror}")
    top = DaemonService()  # type: ignore[no-untyped-call]
    make_service(server).setServiceParent(top)  # type: ignore[no-untyped-call]
    install_logging(top, runner_options, log_format)
    return top
