"""Per-login CPU costs of the auth layer.

Run from the checkout: `PYTHONPATH=. python bench/auth_costs.py`. Prints milliseconds per
operation for argon2 (production parameters), deriving all secrets at set-password time,
a SCRAM server exchange (server side only), a SCRAM client exchange (PBKDF2 with 4096
rounds), and CRAM-MD5 verification with the pure-Python MD5.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

# Run as a script: the checkout, not bench/, goes first on sys.path, so mailsrv and tests import
# from it and bench/queue.py cannot shadow the standard library's queue module.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from mailsrv.auth.passwords import PasswordHasher, cram_md5_digest, cram_md5_states, derive_credentials  # noqa: E402
from mailsrv.sasl.client import ScramClient  # noqa: E402
from mailsrv.sasl.mechanism import Challenge, Success  # noqa: E402
from mailsrv.sasl.scram import ScramServer  # noqa: E402
from mailsrv.tlsutil import ChannelBindings  # noqa: E402
from tests.sasl.fakes import FakeProvider, result_of  # noqa: E402


def per_op_ms(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) * 1000 / n


def main() -> None:
    hasher = PasswordHasher()
    h = hasher.hash("correct horse battery staple")
    print(f"argon2id verify (passlib defaults): {per_op_ms(lambda: hasher.verify('x', h), 5):.1f} ms")
    print(
        f"set-password derivation (argon2 + 2x PBKDF2 + CRAM): "
        f"{per_op_ms(lambda: derive_credentials('pw', hasher), 3):.1f} ms"
    )
    provider = FakeProvider()

    # Client messages precomputed so only the server side is timed.
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce="abc")
    first = client.initial_response() or b""

    def server_exchange() -> None:
        m = ScramServer("SCRAM-SHA-256", provider, ChannelBindings(), False, b"k" * 32)
        step = result_of(m.start(first))
        assert isinstance(step, Challenge)
        c = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce="abc")
        c.initial_response()
        final = c.respond(step.data)
        assert isinstance(result_of(m.respond(final)), Success)

    def client_only() -> None:
        c = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce="abc")
        c.initial_response()
        c.respond(b"r=abcdef,s=QSXCR+Q6sek8bf92,i=4096")

    c_ms = per_op_ms(client_only, 20)
    print(f"SCRAM-SHA-256 client (PBKDF2 4096): {c_ms:.2f} ms")
    print(f"SCRAM-SHA-256 server exchange: {per_op_ms(server_exchange, 20) - c_ms:.2f} ms")
    states = cram_md5_states("tanstaaftanstaaf")
    print(f"CRAM-MD5 verify (pure-Python MD5): {per_op_ms(lambda: cram_md5_digest(states, b'<1.2@x>'), 200):.3f} ms")


if __name__ == "__main__":
    main()
