"""SMTP replies: the exception a command raises to answer, and the mapping of the application
layer's typed errors (mailsrv/ops/errors.py) to basic and enhanced status codes (RFC 5321
§4.2, RFC 3463)."""

from __future__ import annotations

from mailsrv.ops import errors


class SMTPReply(Exception):
    """A reply that ends the current command: `code` (3 digits), enhanced code, text."""

    def __init__(self, code: int, enhanced: str, text: str) -> None:
        super().__init__(f"{code} {enhanced} {text}")
        self.code = code
        self.enhanced = enhanced
        self.text = text


# Most specific first: the first class the error is an instance of decides.
_CODES: tuple[tuple[type[errors.OpsError], int, str], ...] = (
    (errors.RelayDenied, 554, "5.7.1"),
    (errors.UnknownRecipient, 550, "5.1.1"),
    (errors.MembersOnly, 550, "5.7.1"),
    (errors.PolicyRejected, 550, "5.7.1"),
    (errors.SendAsDenied, 550, "5.7.1"),
    # RFC 3463 4.2.2 mailbox full, temporary: the sender retries after the user makes room.
    (errors.MailboxFull, 452, "4.2.2"),
    (errors.DirectoryUnavailable, 451, "4.4.3"),
    (errors.TemporaryFailure, 451, "4.3.0"),
    (errors.InvalidInput, 550, "5.7.1"),  # a submitted message's From: field
    (errors.PermissionDenied, 550, "5.7.1"),
    (errors.NotFound, 550, "5.1.1"),
)


def reply_for(error: errors.OpsError) -> SMTPReply:
    """The SMTP reply for a typed error of the application layer."""
    for cls, code, enhanced in _CODES:
        if isinstance(error, cls):
            return SMTPReply(code, enhanced, error.message)
    if isinstance(error, errors.LimitExceeded):
        return SMTPReply(452, "4.3.1", error.message) if error.temporary else SMTPReply(552, "5.3.4", error.message)
    return SMTPReply(451, "4.3.0", error.message)
