"""What `twistd mailsrv` runs: configuration errors become one line and exit code 1."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

from twisted.application.service import MultiService

from mailsrv.config.types import ConfigError


def _die(message: str) -> NoReturn:
    # twistd would print a traceback for an exception from makeService; a config mistake
    # deserves one clear line instead.
    sys.stderr.write(f"mailsrv: {message}\n")
    sys.stderr.flush()
    raise SystemExit(1)


def make_daemon_service(
    config_path: str | None, localserve: bool, localserve_dir: str | None, port_offset: int = 0
) -> MultiService:
    from mailsrv.config.load import load_static
    from mailsrv.server import Server
    from mailsrv.service import make_service
    from mailsrv.tlsutil import TLSConfigError

    try:
        if localserve:
            from mailsrv import localserve as ls

            config = ls.prepare(Path(localserve_dir) if localserve_dir else None, port_offset)
            print(ls.banner(config), flush=True)
        else:
            assert config_path is not None
            config = load_static(Path(config_path))
        server = Server.create(config)
    except (ConfigError, TLSConfigError) as e:
        _die(str(e))
    except OSError as e:
        _die(f"{e.filename or ''}: {e.strerror}")
    return make_service(server)
