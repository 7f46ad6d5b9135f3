"""SASL (RFC 4422) mechanisms, server and client side, for IMAP AUTHENTICATE, SMTP AUTH,
our SMTP client and `mailsrv sendmail`.

Mechanisms work on raw bytes; protocol code does base64 and framing. See
`mailsrv.sasl.mechanism` for the server-side contract, `mailsrv.sasl.server` for what to
advertise and `make_server_mechanism`, `mailsrv.sasl.client` for the client side.
"""

from mailsrv.sasl.mechanism import Challenge, SASLAborted, SASLError, ServerMechanism, Step, Success
from mailsrv.sasl.server import advertised_mechanisms, make_server_mechanism

__all__ = [
    "Challenge",
    "SASLAborted",
    "SASLError",
    "ServerMechanism",
    "Step",
    "Success",
    "advertised_mechanisms",
    "make_server_mechanism",
]
