"""Typed errors of the application layer.

Each adapter maps these to its protocol: SMTP reply codes, IMAP ``NO [CODE]``/``BAD``, HTTP statuses and the web
API's ``user:...``/``server:...`` codes. ``code`` is a stable machine-readable name (used as the web API error
code suffix); the message is safe to show to the user who made the request.
"""

from __future__ import annotations


class OpsError(Exception):
    """Base of every error an ops function raises on purpose."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UserError(OpsError):
    """The request cannot be done as asked: bad parameters, a name that exists, a limit reached."""

    code = "user"


class NotFound(UserError):
    """The account, mailbox, message, domain or queue entry named does not exist (or is not visible)."""

    code = "notFound"


class Exists(UserError):
    """What the request would create already exists."""

    code = "exists"


class InvalidInput(UserError):
    """A parameter failed validation; ``field`` names it when one field is to blame."""

    code = "invalid"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PermissionDenied(UserError):
    """The authenticated account may not do this (send as that address, see that account, ...)."""

    code = "permissionDenied"


class LimitExceeded(UserError):
    """A quota, size, rate or count limit refuses the request; ``temporary`` when retrying later may succeed."""

    code = "limitExceeded"

    def __init__(self, message: str, temporary: bool = False) -> None:
        super().__init__(message)
        self.temporary = temporary


class AuthFailed(OpsError):
    """Credentials were wrong, unknown or refused (disabled account). Never says which."""

    code = "badAuth"


class RateLimited(OpsError):
    """Too many attempts from this source or for this account; ``retry_after`` in seconds."""

    code = "rateLimited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TemporaryFailure(OpsError):
    """A backend (store, directory, DNS) is unavailable for now; the caller may retry."""

    code = "temporary"


class StoreUnavailable(TemporaryFailure):
    """The mail store cannot be read or written just now (`store.interfaces.StoreUnavailable`):
    SMTP 451 4.3.0, IMAP NO [UNAVAILABLE], HTTP 503."""

    code = "storeUnavailable"


# --- delivery and submission (mailsrv/ops/delivery.py, mailsrv/ops/submission.py) ------------------------------


class RelayDenied(PermissionDenied):
    """A recipient outside our domains, and the sender may not relay (RFC 5321 §3.6.2)."""

    code = "relayDenied"


class UnknownRecipient(NotFound):
    """No account or alias receives mail for the address (or a list has no local member)."""

    code = "unknownRecipient"


class MembersOnly(PermissionDenied):
    """The list takes mail only from its members."""

    code = "membersOnly"


class MailboxFull(LimitExceeded):
    """The recipient's quota has no room; temporary: the user can make room."""

    code = "mailboxFull"

    def __init__(self, message: str) -> None:
        super().__init__(message, temporary=True)


class PolicyRejected(PermissionDenied):
    """The sender domain's published policy (DMARC p=reject) says to refuse the message."""

    code = "policyRejected"


class SendAsDenied(PermissionDenied):
    """The account may not send with this From: address or envelope sender."""

    code = "sendAsDenied"


class DirectoryUnavailable(TemporaryFailure):
    """The account directory (LDAP) did not answer."""

    code = "directoryUnavailable"
