# mypy: disable-error-code="no-untyped-call,misc"
"""Prometheus `/metrics` on the listener `[web] metrics_listener` names: the counters of
mailsrv/metrics.py (connections, logins, deliveries, errors) in the text exposition format."""

from __future__ import annotations

from typing import Any, cast

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.web.resource import Resource
from twisted.web.server import Request

from mailsrv import metrics
from mailsrv.server import Server

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

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return bytes(generate_latest(REGISTRY))
