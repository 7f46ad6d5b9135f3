# mypy: disable-error-code="no-untyped-call,misc"
"""Prometheus `/metrics` on the listener `[web] metrics_listener` names: the counters of
mailsrv/metrics.py (connections, logins, deliveries, errors) and the queue size (read when
scraped), in the text exposition format."""

from __future__ import annotations

from typing import Any, cast

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from twisted.internet.defer import Deferred
from twisted.logger import ILogObserver, Logger, LogLevel, globalLogPublisher
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from mailsrv import metrics
from mailsrv.ops.queue import queue_size
from mailsrv.server import Server

log = Logger()
_counting_errors = False


def _count_error(event: dict[str, Any]) -> None:
    level = event.get("log_level")
    if level in (LogLevel.error, LogLevel.critical) or event.get("isError"):
        metrics.ERRORS.labels(str(event.get("log_namespace", "?"))[:80]).inc()


def count_logged_errors() -> None:
    """Counts every error the daemon logs (once per process)."""
    global _counting_errors
    if not _counting_errors:
        _counting_errors = True
        globalLogPublisher.addObserver(cast(ILogObserver, _count_error))


class MetricsResource(Resource):
    isLeaf = True

    def __init__(self, server: Server) -> None:
        super().__init__()
        self.mailsrv = server
        count_logged_errors()

    def render_GET(self, request: Request) -> int:
        Deferred.fromCoroutine(self._render(request))
        return NOT_DONE_YET

    async def _render(self, request: Request) -> None:
        try:
            metrics.QUEUE_SIZE.set(await queue_size(self.mailsrv))
        except Exception:
            log.failure("metrics: reading the queue size failed")
        if request.channel is None:  # the scraper went away meanwhile
            return
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        data = bytes(generate_latest(REGISTRY))
        request.setHeader(b"content-length", b"%d" % len(data))  # not chunked: one write
        request.write(data)
        request.finish()
