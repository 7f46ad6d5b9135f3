"""Our SMTP client (RFC 5321) on Twisted, for queue delivery and `mailsrv sendmail`.

`send_message(reactor, host, port, Envelope, message, SessionOptions) -> DeliveryResult`
is the whole API: one message, a classified outcome per recipient; with a `ConnectionCache`
(`cache.py`, queue delivery) the session may come from and go back to a pool of idle ones.
See `session.py` for the invariants (timeouts, TLS policies, extensions used).
"""

from mailsrv.smtpclient.reply import DeliveryResult, RecipientOutcome, Reply, SMTPFailure
from mailsrv.smtpclient.session import Envelope, SessionOptions, Timeouts, TLSPolicy, normalise_data, send_message

__all__ = [
    "DeliveryResult",
    "Envelope",
    "RecipientOutcome",
    "Reply",
    "SMTPFailure",
    "SessionOptions",
    "TLSPolicy",
    "Timeouts",
    "normalise_data",
    "send_message",
]
