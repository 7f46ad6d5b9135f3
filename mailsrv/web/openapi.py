"""The OpenAPI 3.1 document of an interface's API, from the annotations of its `@api`
methods (mailsrv/web/jsonapi.py) and msgspec's JSON Schema generation, so the server, the
document and the TypeScript types made from it (web/ts/<iface>/api.gen.ts) cannot drift.

Each method is `POST /<Method>` with a body `{"params": [...]}` whose array has exactly the
method's parameters (`prefixItems`, named by `title`), answering `{"result": ...}`; every
error is `{"error": {"code", "message", "field"?}}`. Struct schemas say
`additionalProperties: false`: the server refuses unknown fields.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from mailsrv.web.jsonapi import Method

REF = "#/components/schemas/{name}"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "user:noAuth, user:badAuth, user:invalidInput, ..."},
                "message": {"type": "string"},
                "field": {"type": "string"},
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}


def _close_objects(schema: Any) -> None:
    if isinstance(schema, dict):
        if schema.get("type") == "object" and "properties" in schema:
            schema.setdefault("additionalProperties", False)
        for value in schema.values():
            _close_objects(value)
    elif isinstance(schema, list):
        for value in schema:
            _close_objects(value)


def _params_schema(params: list[dict[str, Any]]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "minItems": len(params), "maxItems": len(params)}
    if params:  # JSON Schema 2020-12 §10.3.1.1: prefixItems is a non-empty array
        schema["prefixItems"] = params
    return schema


def openapi_document(title: str, methods: dict[str, Method]) -> dict[str, Any]:
    ordered = sorted(methods.values(), key=lambda m: m.name)
    types: list[Any] = []
    for method in ordered:
        types += [annotation for _, annotation in method.params]
        types.append(method.result)
    generated, components = msgspec.json.schema_components(types, ref_template=REF)
    _close_objects(components)
    schemas = list(generated)
    paths: dict[str, Any] = {}
    for method in ordered:
        params = [{**schemas.pop(0), "title": name} for name, _ in method.params]
        result = schemas.pop(0)
        _close_objects(params)
        _close_objects(result)
        body = {
            "type": "object",
            "properties": {"params": _params_schema(params)},
            "required": ["params"],
            "additionalProperties": False,
        }
        error = {"description": "error", "content": {"application/json": {"schema": ERROR_SCHEMA}}}
        paths[f"/{method.name}"] = {
            "post": {
                "operationId": method.name,
                "summary": method.doc.split("\n", 1)[0],
                **({"description": method.doc} if "\n" in method.doc else {}),
                "security": [{"session": [], "csrf": []}] if method.auth else [],
                "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                "responses": {
                    "200": {
                        "description": "the result",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"result": result},
                                    "required": ["result"],
                                    "additionalProperties": False,
                                }
                            }
                        },
                    },
                    "400": error,
                    "401": error,
                    "429": error,
                    "default": error,
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "mailsrvsession"},
                "csrf": {"type": "apiKey", "in": "header", "name": "x-mailsrv-csrf"},
            },
        },
    }


def write_documents(directory: Path, classes: dict[str, type]) -> list[Path]:
    """Writes `<name>.json` for each API class (sorted keys, so the committed files diff cleanly)."""
    from mailsrv.web.jsonapi import api_methods

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, cls in sorted(classes.items()):
        document = openapi_document(getattr(cls, "title", name), api_methods(cls))
        path = directory / f"{name}.json"
        path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    """`python -m mailsrv.web.openapi DIR [NAME=module:Class ...]`: the documents of the
    registered interfaces (site.API_CLASSES), or of the classes named (test fixtures)."""
    if not argv:
        sys.stderr.write("usage: python -m mailsrv.web.openapi DIR [NAME=module:Class ...]\n")
        return 2
    if argv[1:]:
        classes: dict[str, type] = {}
        for spec in argv[1:]:
            name, _, target = spec.partition("=")
            module, _, attribute = target.partition(":")
            classes[name] = getattr(importlib.import_module(module), attribute)
    else:
        from mailsrv.web.site import API_CLASSES

        classes = dict(API_CLASSES)
    for path in write_documents(Path(argv[0]), classes):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
