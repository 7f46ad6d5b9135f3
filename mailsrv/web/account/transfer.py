# mypy: disable-error-code="no-untyped-call,misc"
# (twisted.web is unannotated: calling and subclassing it is fine.)
"""Mail import and export over HTTP for the account page: the two requests the JSON API
cannot carry, a file upload with progress and a download of any size.

- Import: `POST <account>/import?mailbox=NAME` with the file as the raw body (the site
  allows `[limits] http_max_upload` for this path). The answer streams newline-delimited
  JSON while the import runs: `{"progress": {...}}` lines (ops.importexport.ImportProgress,
  at most ~5 per second), then one `{"result": {...}}` or `{"error": {"code", "message"}}`.
  The page reads it as it comes and moves its progress bar: server events without keeping
  any job state on the server, and an import whose page went away still finishes.
- Export: `POST <account>/export` as a plain form (`csrf`, `format`, `archive`, `mailbox`),
  answered as an attachment streamed from `ops.importexport.Export`: the next chunk is only
  read when the client has taken the previous one (a push producer that pauses with the
  socket), so memory stays at one chunk whatever the account's size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.server import NOT_DONE_YET, Request

from mailsrv.ops.errors import LimitExceeded, OpsError, UserError
from mailsrv.ops.importexport import Export, ExportRequest, ImportProgress, import_upload, open_export
from mailsrv.web.jsonapi import ApiError, api_error

if TYPE_CHECKING:
    from mailsrv.server import Server

log = Logger()
_encode = msgspec.json.Encoder().encode
PROGRESS_INTERVAL = 0.2  # seconds between progress lines
MAX_EXPORTS_PER_ACCOUNT = 2  # running at once; an import is always one at a time

# (id of the server, account) of the imports and exports running now: an account cannot make
# the server parse several uploads or compress many archives at once.
_imports: set[tuple[int, str]] = set()
_exports: dict[tuple[int, str], int] = {}


class _Answer:
    """Writes lines to a request while its client is there (an import goes on without it)."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.gone = False
        request.notifyFinish().addBoth(self._ended)

    def _ended(self, _: object) -> None:
        self.gone = True

    def line(self, value: object) -> None:
        if not self.gone:
            self.request.write(_encode(value) + b"\n")

    def finish(self) -> None:
        if not self.gone:
            self.request.finish()


def serve_import(server: Server, account: str, request: Request) -> Any:
    """Runs the import of the request's body, streaming progress lines (see the module
    docstring). Returns NOT_DONE_YET."""
    values = (request.args or {}).get(b"mailbox") or [b"INBOX"]
    mailbox = values[0].decode("utf-8", "replace").strip() or "INBOX"
    request.setHeader(b"content-type", b"application/x-ndjson; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    # Progress must reach the page as it happens: no buffering proxy (nginx honours this).
    request.setHeader(b"x-accel-buffering", b"no")
    key = (id(server), account)
    if key in _imports:
        raise LimitExceeded("an import for this account is already running; wait for it to finish", temporary=True)
    _imports.add(key)
    answer = _Answer(request)
    last = [0.0]

    def progress(p: ImportProgress) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_INTERVAL or p.read >= p.total:
            last[0] = now
            answer.line({"progress": p})

    async def run() -> None:
        try:
            content = request.content
            if content is None:
                raise UserError("no file in the request body")
            result = await import_upload(server, account, content, default_mailbox=mailbox, progress=progress)
        except Exception as e:
            mapped = api_error(e)
            if mapped is None:
                log.failure("import for {account}", account=account)
                mapped = ApiError("server:error", "internal error during the import; the server log has the details")
            answer.line({"error": {"code": mapped.code, "message": mapped.message}})
        else:
            log.info(
                "import for {account}: {messages} messages, {skipped} skipped",
                account=account,
                messages=result.messages,
                skipped=result.skipped,
            )
            answer.line({"result": result})
        finally:
            _imports.discard(key)
        answer.finish()

    Deferred.fromCoroutine(run())
    return NOT_DONE_YET


def export_request(request: Request) -> ExportRequest:
    """The export form's fields as an ExportRequest; InvalidInput names a bad field."""
    from mailsrv.ops.errors import InvalidInput

    args = request.args or {}

    def field(name: str) -> str | None:
        values = args.get(name.encode())
        return values[0].decode("utf-8", "replace") if values else None

    data = {k: v for k in ("format", "archive", "mailbox") if (v := field(k))}
    try:
        return msgspec.convert(data, ExportRequest)
    except msgspec.ValidationError as e:
        raise InvalidInput(f"export: {e}") from None


class _ExportProducer:
    """Pushes an Export's chunks into the request while the client keeps up."""

    def __init__(self, export: Export, request: Request) -> None:
        self.export = export
        self.request = request
        self._resume: Deferred[None] | None = None
        self.stopped = False
        self.gone = False  # the client went away

    def pauseProducing(self) -> None:
        if self._resume is None:
            self._resume = Deferred()

    def resumeProducing(self) -> None:
        resume, self._resume = self._resume, None
        if resume is not None:
            resume.callback(None)

    def stopProducing(self) -> None:
        self.stopped = True
        self.resumeProducing()

    def client_gone(self, _: object) -> None:
        self.gone = True
        self.stopProducing()

    async def run(self) -> None:
        try:
            while not self.stopped:
                if self._resume is not None:
                    await self._resume
                    continue
                chunk = await self.export.next_chunk()
                if not chunk or self.stopped:
                    break
                self.request.write(chunk)
        except Exception:
            # Headers are sent: the client sees a truncated download (the zip/gzip trailer
            # is missing, so an unpacker reports it), the log the cause.
            log.failure("export failed")
            self.stopped = True
        finally:
            self.export.close()
            if not self.gone:
                self.request.unregisterProducer()
                if self.stopped:
                    self.request.loseConnection()
                else:
                    self.request.finish()


def serve_export(server: Server, account: str, request: Request, refuse: Callable[[Exception], bytes]) -> Any:
    """Answers the export form with the archive as an attachment, streamed. Raises ops
    errors (InvalidInput, LimitExceeded) before anything is sent; an unknown mailbox
    (NotFound, known once the index answered) is answered with `refuse(error)`."""
    key = (id(server), account)
    if _exports.get(key, 0) >= MAX_EXPORTS_PER_ACCOUNT:
        raise LimitExceeded(f"{MAX_EXPORTS_PER_ACCOUNT} exports of this account are running already", temporary=True)
    wanted = export_request(request)
    _exports[key] = _exports.get(key, 0) + 1

    def done(_: object) -> None:
        left = _exports.get(key, 1) - 1
        if left:
            _exports[key] = left
        else:
            _exports.pop(key, None)

    async def run() -> None:
        try:
            export = await open_export(server, account, wanted)
        except (ApiError, OpsError) as e:
            request.write(refuse(e))
            request.finish()
            return
        request.setHeader(b"content-type", export.content_type.encode())
        request.setHeader(b"content-disposition", f'attachment; filename="{export.filename}"'.encode())
        request.setHeader(b"cache-control", b"no-store")
        producer = _ExportProducer(export, request)
        request.registerProducer(producer, True)
        request.notifyFinish().addErrback(producer.client_gone)
        await producer.run()

    Deferred.fromCoroutine(run()).addBoth(done)
    return NOT_DONE_YET
