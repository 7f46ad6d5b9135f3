"""The server-side exchange loop, for protocols that want it in one call.

`run_exchange` drives a mechanism to the end: it sends each challenge through the
protocol's `send_challenge` callable and awaits the client's decoded response, and
delivers SCRAM's additional data with success as a final challenge that the client must
answer with an empty response (RFC 9051 §6.2.2, RFC 4954 §4). Base64 and the "*" abort
stay in the protocol: its `send_challenge` raises SASLAborted on "*".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mailsrv.auth.interfaces import LoginIdentity
from mailsrv.sasl.mechanism import Challenge, SASLError, ServerMechanism, Success

# Sends a challenge (raw bytes) and returns the client's response (raw bytes).
SendChallenge = Callable[[bytes], Awaitable[bytes]]


async def run_exchange(mech: ServerMechanism, initial: bytes | None, send_challenge: SendChallenge) -> LoginIdentity:
    """Runs `mech` from its initial response to success. Raises what the mechanism raises
    (SASLError, AuthError) and whatever `send_challenge` raises (SASLAborted)."""
    step = await mech.start(initial)
    while isinstance(step, Challenge):
        step = await mech.respond(await send_challenge(step.data))
    assert isinstance(step, Success)
    if step.final_data is not None and await send_challenge(step.final_data) != b"":
        raise SASLError("expected an empty response after the server's final data")
    return step.identity
