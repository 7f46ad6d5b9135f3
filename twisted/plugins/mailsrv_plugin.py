"""twistd dropin: `twistd mailsrv`.

No __init__.py lives in twisted/ or twisted/plugins/ of this project (it would replace
Twisted's own); mailsrv is imported lazily in makeService so that listing plugins stays cheap.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer


class Options(usage.Options):
    synopsis = "[--config PATH | --localserve [--dir DIR] [--port-offset N]]"
    optParameters = [
        ["config", "c", None, "Path of mailsrv.toml (static configuration)."],
        ["dir", "d", None, "Localserve directory (default ~/.local/share/mailsrv-localserve)."],
        ["port-offset", None, "0", "Localserve: add N to every port (1025+N, 1143+N, ...).", int],
        ["logformat", None, None, "Log lines as 'text' or 'json' (one JSON object per line)."],
    ]
    optFlags = [["localserve", "l", "Run a self-contained development server on loopback ports."]]

    def postOptions(self) -> None:
        if not self["localserve"] and not self["config"]:
            raise usage.UsageError("give --config PATH or --localserve")
        if self["logformat"] not in (None, "text", "json"):
            raise usage.UsageError("--logformat is 'text' or 'json'")


@implementer(IServiceMaker, IPlugin)
class MailsrvServiceMaker:
    tapname = "mailsrv"
    description = "mailsrv: SMTP, submission, IMAP and web in one daemon."
    options = Options

    def makeService(self, options: Any) -> Any:
        from mailsrv.daemon import make_daemon_service

        return make_daemon_service(
            config_path=options["config"],
            localserve=bool(options["localserve"]),
            localserve_dir=options["dir"],
            port_offset=options["port-offset"],
            log_format=options["logformat"],
            runner_options=getattr(options, "parent", None),
        )


serviceMaker = MailsrvServiceMaker()
