"""Decoding a webapi request the way mox's (Go's) JSON decoder reads it.

Go's `encoding/json` matches object keys to field names case-insensitively and reads `null`
as "leave the zero value"; mox's Go client sends every field, `null` for empty lists and
absent times. msgspec is exact, so a request is first decoded strictly (the fast path, what
a careful client sends); only when that fails is it read generically, `null` members dropped
and keys matched to field names ignoring case (never the keys of a map such as `Extra`),
and converted again. A request that still does not fit gets the error of that second pass,
which names the field.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi

T = TypeVar("T")


class RequestError(Exception):
    """A request that is not JSON, or does not fit the method's request type; `code` says which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def decode_request(raw: bytes, request_type: type[T]) -> T:
    """The request, or RequestError with code badJSON, unknownField, missingField or badType."""
    try:
        return msgspec.json.decode(raw, type=request_type)
    except msgspec.ValidationError:
        pass
    except msgspec.DecodeError as e:
        raise RequestError("badJSON", f"request is not JSON: {e}") from None
    generic = msgspec.json.decode(raw)  # valid JSON: the strict pass got past the syntax
    try:
        return msgspec.convert(_normalise(generic, mi.type_info(request_type)), request_type)
    except msgspec.ValidationError as e:
        text = str(e)
        if text.startswith("Object contains unknown field"):
            code = "unknownField"
        elif text.startswith("Object missing required field"):
            code = "missingField"
        else:
            code = "badType"
        raise RequestError(code, f"parsing request: {text}") from None


def _normalise(value: Any, info: mi.Type) -> Any:
    if isinstance(info, mi.UnionType):
        # `X | None`: the non-None member decides the shape.
        members = [t for t in info.types if not isinstance(t, mi.NoneType)]
        return _normalise(value, members[0]) if len(members) == 1 else value
    if isinstance(info, mi.StructType) and isinstance(value, dict):
        fields = {f.encode_name.lower(): f for f in info.fields}
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is None:
                continue  # Go: null leaves the zero value
            field = fields.get(key.lower()) if isinstance(key, str) else None
            if field is None:
                out[key] = item  # unknown: the conversion names it
            else:
                out[field.encode_name] = _normalise(item, field.type)
        return out
    if isinstance(info, (mi.ListType, mi.TupleType, mi.VarTupleType)) and isinstance(value, list):
        if isinstance(info, mi.TupleType):
            return [_normalise(v, t) for v, t in zip(value, info.item_types, strict=False)] + value[
                len(info.item_types) :
            ]
        return [_normalise(v, info.item_type) for v in value]
    return value
