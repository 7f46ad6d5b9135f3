"""The daemon's Prometheus counters (prometheus-client), shared by the layers that count.

Process-wide like the default registry they live in: one daemon per process. The web
listener the config names serves them at /metrics (mailsrv/web/metrics.py), together with
values read when scraped (queue size). Counting is a dictionary update: cheap enough for
every connection, login and delivery.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONNECTIONS = Counter("mailsrv_connections", "Connections accepted, by protocol", ["protocol"])
CONNECTIONS_OPEN = Gauge("mailsrv_connections_open", "Connections open now, by protocol", ["protocol"])
CONNECTIONS_REFUSED = Counter("mailsrv_connections_refused", "Connections refused by a connection limit")
LOGINS = Counter("mailsrv_logins", "Login attempts by result (ok, failed, ratelimited, temporary)", ["result"])
DELIVERIES = Counter(
    "mailsrv_deliveries", "Incoming messages by outcome (delivered, queued, failed, rejected)", ["result"]
)
ERRORS = Counter("mailsrv_errors", "Errors logged (log level error or critical), by log namespace", ["namespace"])
QUEUE_SIZE = Gauge("mailsrv_queue_size", "Messages in the outgoing queue, still to deliver (set when scraped)")
