"""Queue delivery in localserve mode (docs/localserve.md): nothing leaves the machine.
Messages still go through the queue — attempts, retries, DSNs, hold rules — but "delivery"
puts one copy into the sending account's INBOX, so a developer sees what the application
sent. Special recipient localparts simulate outcomes instead:

    tempfail@any.example     always 451 4.0.0: retried, a delay DSN after 4 h, a failure DSN on expiry
    tempfail2@any.example    451 4.0.0 for the first 2 attempts (any number), then delivered
    permfail@any.example     550 5.1.1 at once: a failure DSN to the sender

Localparts are compared case-insensitively; everything else is delivered.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mailsrv.queue.remote import DomainDelivery
from mailsrv.queue.runner import GroupToDeliver
from mailsrv.smtpclient import Reply

if TYPE_CHECKING:
    from mailsrv.server import Server

_TEMPFAIL = re.compile(r"tempfail(\d*)")


def simulated_reply(recipient: str, attempts: int) -> Reply:
    """The reply localserve gives `recipient` on its attempt number `attempts + 1`."""
    localpart = recipient.rpartition("@")[0].lower()
    m = _TEMPFAIL.fullmatch(localpart)
    if m is not None and (not m.group(1) or attempts < int(m.group(1))):
        return Reply(451, ("4.0.0 simulated temporary failure (localserve)",))
    if localpart == "permfail":
        return Reply(550, ("5.1.1 simulated permanent failure (localserve)",))
    return Reply(250, ("2.0.0 delivered to the sending account (localserve)",))


class LocalserveDeliverer:
    def __init__(self, server: Server) -> None:
        self.server = server

    async def __call__(self, group: GroupToDeliver) -> DomainDelivery:
        replies = {
            rcpt: simulated_reply(rcpt, attempts)
            for rcpt, attempts in zip(group.envelope.recipients, group.attempts, strict=True)
        }
        if group.account and any(r.positive for r in replies.values()):
            # One copy per message and domain, whatever the number of recipients.
            await self.server.stores.open(group.account).append("INBOX", group.message, delivery=True)
        return DomainDelivery(replies)
