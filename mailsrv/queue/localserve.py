"""Queue delivery in localserve mode (docs/localserve.md): nothing leaves the machine.
Messages still go through the queue — attempts, retries, DSNs, hold rules — but "delivery"
puts one copy into the sending account's INBOX, so a developer sees what the application
sent. Special recipient localparts simulate outcomes instead (mox's forms, and our older ones):

    ...permerror@any.example   550 5.0.0 at once: failed, a DSN to the sender (and suppressed)
    ...temperror@any.example   451 4.0.0 every time: delayed, retried, failed when it expires
    timeout@any.example        no answer for a while, then a temporary failure (4.4.1)
    ...NNN@any.example         reply code NNN (e.g. 550, 421, 554; 2xx delivers), enhanced
                               code X.0.0 (X.1.1 for 550): "bounce550", "421" and "550" work
    tempfail@any.example       always 451 4.0.0 (older form of temperror)
    tempfail2@any.example      451 4.0.0 for the first 2 attempts (any number), then delivered
    permfail@any.example       550 5.1.1 at once (older form of permerror)

Localparts are compared case-insensitively, after the catchall separator's tag is cut off
("+"); everything else is delivered. Retries in localserve are quick (`LOCALSERVE_OPTIONS`
in queue/service.py): a developer sees "delayed" and then "failed" within a minute.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from twisted.internet import task

from mailsrv.queue.remote import DomainDelivery
from mailsrv.queue.runner import GroupToDeliver
from mailsrv.smtpclient import Reply

if TYPE_CHECKING:
    from mailsrv.server import Server

_TEMPFAIL = re.compile(r"tempfail(\d*)")
_CODE = re.compile(r"(?:.*\D)?([2-5]\d\d)")
TIMEOUT_SECONDS = 3.0  # how long a "timeout" recipient keeps the attempt waiting


def simulated_reply(recipient: str, attempts: int) -> Reply:
    """The reply localserve gives `recipient` on its attempt number `attempts + 1`."""
    localpart = recipient.rpartition("@")[0].lower().split("+", 1)[0]
    m = _TEMPFAIL.fullmatch(localpart)
    if m is not None and (not m.group(1) or attempts < int(m.group(1))):
        return Reply(451, ("4.0.0 simulated temporary failure (localserve)",))
    if localpart == "permfail":
        return Reply(550, ("5.1.1 simulated permanent failure (localserve)",))
    if localpart.endswith("permerror"):
        return Reply(550, ("5.0.0 simulated permanent error (localserve)",))
    if localpart.endswith("temperror"):
        return Reply(451, ("4.0.0 simulated temporary error (localserve)",))
    if localpart == "timeout":
        return Reply(451, ("4.4.1 simulated timeout: no answer from the host (localserve)",))
    code = _CODE.fullmatch(localpart)
    if code is not None:
        n = int(code.group(1))
        if n >= 400:
            detail = "1.1" if n == 550 else "0.0"
            return Reply(n, (f"{n // 100}.{detail} simulated reply {n} (localserve)",))
    return Reply(250, ("2.0.0 delivered to the sending account (localserve)",))


class LocalserveDeliverer:
    def __init__(self, server: Server) -> None:
        self.server = server

    async def __call__(self, group: GroupToDeliver) -> DomainDelivery:
        replies = {
            rcpt: simulated_reply(rcpt, attempts)
            for rcpt, attempts in zip(group.envelope.recipients, group.attempts, strict=True)
        }
        if any(r.rpartition("@")[0].lower().split("+", 1)[0] == "timeout" for r in replies):
            await task.deferLater(self.server.reactor, TIMEOUT_SECONDS, lambda: None)
        if group.account and any(r.positive for r in replies.values()):
            # One copy per message and domain, whatever the number of recipients.
            # Idempotent (like every delivery): this attempt made again after its outcome was lost
            # (a crash before the queue recorded it) stores no second copy.
            delivered = ",".join(sorted(r for r, reply in replies.items() if reply.positive))
            once = (
                "localserve:"
                + hashlib.sha256(
                    f"{group.message_id}\0{group.domain}\0{delivered}\0".encode() + group.message
                ).hexdigest()[:40]
            )
            await self.server.stores.open(group.account).append("INBOX", group.message, delivery=True, delivery_id=once)
        return DomainDelivery(replies)
