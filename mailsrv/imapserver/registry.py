"""The handler modules whose import registers their commands (see `commands.py`).

Add a module here when it defines `@command` handlers.
"""

from __future__ import annotations

import importlib

HANDLER_MODULES: tuple[str, ...] = (
    "mailsrv.imapserver.cmd_any",
    "mailsrv.imapserver.cmd_auth",
    "mailsrv.imapserver.cmd_mailbox",
    "mailsrv.imapserver.cmd_append",
    "mailsrv.imapserver.cmd_list",
    "mailsrv.imapserver.cmd_selected",
    "mailsrv.imapserver.fetch",
    "mailsrv.imapserver.search",
    "mailsrv.imapserver.cmd_sort",
    "mailsrv.imapserver.cmd_messages",
)


def load_handlers() -> None:
    """Imports every handler module (Python caches them, so this is cheap to repeat)."""
    for name in HANDLER_MODULES:
        importlib.import_module(name)
