# mypy: disable-error-code="no-untyped-call"
# (Twisted services are unannotated; calling them is fine.)
"""Certificate reload without a restart: on SIGHUP, and when a certificate or key file changes
(an ACME client or `certbot` renewed it). New TLS handshakes, implicit and STARTTLS, use the
new contexts; connections already in TLS keep the context they started with, so none is
dropped. A file that cannot be loaded (a half-written renewal) leaves the old certificates in
use and is logged; the watcher tries again at its next look."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from twisted.application.internet import TimerService
from twisted.application.service import MultiService, Service
from twisted.logger import Logger

from mailsrv.tlsutil import TLSConfigError, TLSContexts

log = Logger()

CHECK_SECONDS = 60.0  # how often the files' modification times are compared


def _stamps(files: list[Path]) -> tuple[tuple[int, int, int] | None, ...]:
    out: list[tuple[int, int, int] | None] = []
    for path in files:
        try:
            st = path.stat()
        except OSError:
            out.append(None)
        else:
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


class CertificateReloader:
    def __init__(self, tls: TLSContexts) -> None:
        self.tls = tls
        self._files = tls.files()
        self._seen = _stamps(self._files)

    def reload(self, why: str) -> bool:
        """Loads every key pair again; False (logged) when one fails and the old stay."""
        self._seen = _stamps(self._files)
        try:
            self.tls.reload()
        except TLSConfigError as e:
            log.error("TLS certificates not reloaded ({why}), the old ones stay in use: {error}", why=why, error=e)
            return False
        names = ", ".join(
            f"{cert.subject.rfc4514_string()} until {cert.not_valid_after_utc:%Y-%m-%d}"
            for cert in self.tls.certificates
        )
        log.info("TLS certificates reloaded ({why}): {names}", why=why, names=names)
        return True

    def check_files(self) -> bool:
        """Reloads when a file's modification time, size or inode changed since the last look."""
        if _stamps(self._files) == self._seen:
            return False
        return self.reload("file changed")


class CertificateReloadService(MultiService):
    """SIGHUP and a periodic look at the files, while the daemon runs."""

    name = "tls-reload"

    def __init__(self, reactor: Any, tls: TLSContexts, check_seconds: float = CHECK_SECONDS) -> None:
        super().__init__()
        self.reactor = reactor
        self.reloader = CertificateReloader(tls)
        watcher = TimerService(check_seconds, self.reloader.check_files)
        watcher.clock = reactor
        watcher.setServiceParent(self)
        _SignalHandler(self).setServiceParent(self)


class _SignalHandler(Service):
    def __init__(self, owner: CertificateReloadService) -> None:
        self.owner = owner

    def startService(self) -> None:
        super().startService()
        reactor = self.owner.reactor

        def hup(signum: int, frame: object) -> None:
            reactor.callFromThread(self.owner.reloader.reload, "SIGHUP")

        # Once the reactor runs, as the SIGTERM handler (service.CleanStopService).
        reactor.callWhenRunning(signal.signal, signal.SIGHUP, hup)
