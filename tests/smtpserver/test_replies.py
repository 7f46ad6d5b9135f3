"""The SMTP adapter's mapping of ops' typed errors to reply codes (RFC 5321 §4.2, RFC 3463)."""

from __future__ import annotations

import pytest

from mailsrv.ops import errors
from mailsrv.smtpserver.replies import reply_for


@pytest.mark.parametrize(
    ("error", "code", "enhanced"),
    [
        (errors.RelayDenied("relay access denied"), 554, "5.7.1"),
        (errors.UnknownRecipient("no such user here"), 550, "5.1.1"),
        (errors.MembersOnly("only members"), 550, "5.7.1"),
        (errors.PolicyRejected("dmarc"), 550, "5.7.1"),
        (errors.SendAsDenied("not yours"), 550, "5.7.1"),
        (errors.MailboxFull("mailbox full"), 452, "4.2.2"),
        (errors.DirectoryUnavailable("ldap"), 451, "4.4.3"),
        (errors.TemporaryFailure("store"), 451, "4.3.0"),
        (errors.InvalidInput("the message needs exactly one From: field"), 550, "5.7.1"),
        (errors.LimitExceeded("too big"), 552, "5.3.4"),
        (errors.LimitExceeded("later", temporary=True), 452, "4.3.1"),
        (errors.OpsError("anything else"), 451, "4.3.0"),
    ],
)
def test_reply_codes(error: errors.OpsError, code: int, enhanced: str) -> None:
    reply = reply_for(error)
    assert (reply.code, reply.enhanced, reply.text) == (code, enhanced, error.message)
