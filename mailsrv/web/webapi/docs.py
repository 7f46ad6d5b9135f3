"""What `GET <path>` and `GET <path>openapi.json` serve: an HTML index of the methods with
an example request each and a plain form to try it (the browser asks for the Basic
credentials; no script, so the site's CSP holds), and the OpenAPI 3.1 document generated from
the request/response Structs (mailsrv/web/webapi/types.py) with msgspec's JSON Schema.
"""

from __future__ import annotations

import functools
import html
from typing import Any

import msgspec

from mailsrv.web.webapi import types as t
from mailsrv.web.webapi.methods import METHODS

# One example request per method (also in docs/webapi.md).
EXAMPLES: dict[str, dict[str, Any]] = {
    "Send": {
        "From": [{"Name": "Alice", "Address": "alice@example.org"}],
        "To": [{"Name": "Bob", "Address": "bob@example.org"}],
        "Subject": "hello",
        "Text": "hi ☺\n",
        "Extra": {"userid": "456"},
        "SaveSent": True,
    },
    "SuppressionList": {},
    "SuppressionAdd": {"EmailAddress": "bounces@example.net", "Manual": True, "Reason": "asked us to stop"},
    "SuppressionRemove": {"EmailAddress": "bounces@example.net"},
    "SuppressionPresent": {"EmailAddress": "bounces@example.net"},
    "MessageGet": {"MsgID": 1},
    "MessageRawGet": {"MsgID": 1},
    "MessagePartGet": {"MsgID": 1, "PartPath": [0]},
    "MessageDelete": {"MsgID": 1},
    "MessageFlagsAdd": {"MsgID": 1, "Flags": ["\\Seen", "custom"]},
    "MessageFlagsRemove": {"MsgID": 1, "Flags": ["\\Seen"]},
    "MessageMove": {"MsgID": 1, "DestMailboxName": "Archive"},
}

STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em}"
    "textarea{width:100%;font-family:monospace}pre{background:#f4f4f4;padding:.5em;overflow:auto}"
    "h2{margin-top:2em}"
)


BASIC_SCHEME = {
    "type": "http",
    "scheme": "basic",
    "description": "An address of the account, and its password or one of its API tokens (mailsrv_...).",
}


def _example(name: str) -> str:
    return msgspec.json.format(msgspec.json.encode(EXAMPLES.get(name, {})), indent=2).decode()


@functools.cache
def index_page(path: str, selected: str | None = None) -> bytes:
    """The HTML index (or one method's page when `selected`)."""
    esc = html.escape
    names = [selected] if selected else list(METHODS)
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='robots' content='noindex,nofollow'>",
        f"<title>{esc(selected + ' - ' if selected else '')}webapi v0</title>",
        f"<link rel='stylesheet' href='{esc(path)}style.css'></head><body>",
        f"<h1><a href='{esc(path)}'>webapi v0</a>{esc(' - ' + selected) if selected else ''}</h1>",
    ]
    if not selected:
        out += [
            "<p>An HTTP/JSON API for sending and reading mail, compatible with mox's webapi v0. Call a method with ",
            f"<code>POST {esc(path)}&lt;Method&gt;</code>, HTTP Basic authentication with an account's email ",
            "address and its password or one of its API tokens (made on the account page), and the JSON ",
            "request in the form field <code>request</code> (or as an ",
            '<code>application/json</code> body). Errors are HTTP 400 with <code>{"Code", "Message"}</code>. ',
            f"The <a href='{esc(path)}openapi.json'>OpenAPI document</a> describes every method; the server's ",
            "docs/webapi.md has the details and the webhooks.</p>",
            "<ul>",
            *(f"<li><a href='#{n}'>{n}</a>: {esc(m.summary)}</li>" for n, m in METHODS.items()),
            "</ul>",
        ]
    for name in names:
        method = METHODS[name]
        example = _example(name)
        curl = f"curl --user alice@example.org:password --data-urlencode request@req.json https://HOST{path}{name}"
        answer = "bytes (not JSON)" if method.result is None else "a JSON object"
        out += [
            f"<h2 id='{name}'>{name}</h2><p>{esc(method.summary)}; answers {answer}.</p>",
            f"<pre>{esc(curl)}</pre>",
            f"<form method='post' action='{esc(path)}{name}'>",
            f"<textarea name='request' rows='{example.count(chr(10)) + 2}'>{esc(example)}</textarea>",
            "<button type='submit'>Call</button></form>",
        ]
    out.append("</body></html>")
    return "\n".join(out).encode()


@functools.cache
def openapi_document(path: str) -> bytes:
    """OpenAPI 3.1 for every method at `path`, schemas from the Structs."""
    types: list[Any] = [t.Error]
    for m in METHODS.values():
        types.append(m.request)
        if m.result is not None:
            types.append(m.result)
    schemas, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    by_type = dict(zip(types, schemas, strict=True))
    error = {"application/json": {"schema": by_type[t.Error]}}
    paths: dict[str, Any] = {}
    for name, m in METHODS.items():
        request_schema = by_type[m.request]
        ok: dict[str, Any]
        if m.result is None:
            ok = {"description": "the data", "content": {"application/octet-stream": {"schema": {"type": "string"}}}}
        else:
            ok = {"description": "the result", "content": {"application/json": {"schema": by_type[m.result]}}}
        form = {
            "type": "object",
            "required": ["request"],
            "properties": {
                "request": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": request_schema,
                    "description": "the request, as JSON",
                }
            },
        }
        paths[f"{path}{name}"] = {
            "post": {
                "operationId": name,
                "summary": m.summary,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": request_schema, "example": EXAMPLES.get(name, {})},
                        "application/x-www-form-urlencoded": {"schema": form},
                        "multipart/form-data": {"schema": _multipart(form) if name == "Send" else form},
                    },
                },
                "responses": {
                    "200": ok,
                    "400": {"description": "refused: Code says why", "content": error},
                    "401": {"description": "missing or wrong credentials"},
                    "429": {"description": "too many failed logins from this address"},
                },
            }
        }
    document = {
        "openapi": "3.1.0",
        "info": {"title": "mailsrv webapi", "version": "v0", "description": "mox-compatible webapi v0"},
        "security": [{"basic": []}],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {"basic": BASIC_SCHEME}},
    }
    return msgspec.json.encode(document)


def _multipart(form: dict[str, Any]) -> dict[str, Any]:
    files = {"type": "array", "items": {"type": "string", "contentMediaType": "application/octet-stream"}}
    properties = dict(form["properties"])
    for field in ("alternativefile", "inlinefile", "attachedfile"):
        properties[field] = files
    return {**form, "properties": properties}
