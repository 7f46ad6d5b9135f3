"""The dynamic config's refusals as ops errors.

`DynamicConfigStore` validates every change the way loading `dynamic.toml` does and says
why in one line; ops functions check existence first (NotFound, Exists) and let this turn
whatever else it refuses into InvalidInput with its message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mailsrv.config.dynamic import DynamicConfigError
from mailsrv.ops.errors import InvalidInput


@contextmanager
def refusals_as_invalid_input() -> Iterator[None]:
    try:
        yield
    except DynamicConfigError as e:
        raise InvalidInput(str(e)) from None
