"""The contract between the grader and the sandboxed engine host: every message and value encoding.

The grader runs test scenarios in its own process against a proxy of the
student's engine; the engine itself lives in a sandboxed child
(``engine_host.py``).  Everything that crosses between them is defined here,
and only here:

Framing
    A message is a 4-byte big-endian length followed by that many bytes of
    UTF-8 JSON.  Each side bounds what it accepts (``MAX_REQUEST_BYTES``,
    ``MAX_REPLY_BYTES``).

Grader -> child
    ``{"cell": [name, source]}``    run one notebook cell; the reply says whether it raised.
    ``{"ops": [op, ...]}``          run the operations in order; one reply for the batch.
    ``{"return": value}`` / ``{"raise": text}``   the answer to a callback (below).

    An operation is a list whose first item names it; ``out`` is the handle the
    grader chose for the result, so that no operation needs a round trip:
        ["global", out, name]                       an engine name (Tensor, no_grad, ...)
        ["call", out, target, args, kwargs]         target(*args, **kwargs)
        ["method", out, target, name, args, kwargs] target.name(*args, **kwargs)
        ["binary", out, operator, left, right]      e.g. operator.add(left, right)
        ["unary", out, operator, operand]           e.g. operator.neg(operand)
        ["get", out, target, name]                  target.name
        ["set", target, name, value]                target.name = value
        ["scale", target, name, factor]             np.multiply(target.name, factor, out=target.name)
        ["node", out, inputs]                       a graph node whose apply() the grader answers
        ["reset"]                                   forget every handle
    Only the last operation's value is returned, so a batch usually ends with
    the one read the grader waits for.

Child -> grader
    ``{"done": value}``             the batch ran; value of its last operation.
    ``{"failed": error, "at": i}``  operation i raised; the rest of the batch was not run.
    ``{"callback": [node, args]}``  a node made by "node" had apply() called; the
                                    grader answers with "return" or "raise".

Values
    None, booleans, integers, finite floats: themselves.
    {"float": "nan" | "inf" | "-inf"}            non-finite floats
    {"str": text}                                 a bounded string
    {"array": [dtype, shape, base64]}             a numeric numpy array
    {"scalar": [dtype, base64]}                   a numpy scalar (what a full reduction gives)
    {"list": [...]} / {"tuple": [...]}            bounded sequences
    {"ref": handle, "kind": k, "type": name}      an object that stays in the child; kind is
                                                  "tensor" or "object", type its class name
    {"kwargs": {name: value}}                     only as the kwargs of call and method
    Errors are {"type": name, "message": text, "where": text}.

The child's replies are untrusted: ``decode`` accepts only the forms above,
within bounds, and raises ``BadValue`` for anything else, never another
exception.  This module imports only the standard library and numpy, because
it is copied into the sandbox next to the engine host.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import struct

import numpy as np

MAX_REQUEST_BYTES = 64 * 1024 * 1024
# The grader's session holds at most this much unread output (grader.DEFAULT_LIMITS.output_bytes):
# a larger reply could never arrive whole.
MAX_REPLY_BYTES = 4 * 1024 * 1024
MAX_ARRAY_ELEMENTS = 250_000  # a float64 array of this size is about 2.7 MB of base64
MAX_SEQUENCE = 10_000
MAX_DEPTH = 8
MAX_TEXT = 300
MAX_NAME = 64

# Arrays cross only in these dtypes; anything else is "not a numeric array".
DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64",
          "uint8", "uint16", "uint32", "uint64", "bool")
NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

_HEADER = struct.Struct(">I")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class BadValue(ValueError):
    """A message or value that is not of the contract's forms."""


# --------------------------------------------------------------------------
# Framing


def frame(message) -> bytes:
    body = json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return _HEADER.pack(len(body)) + body


def frame_ready(buffer: bytearray) -> bool:
    """Whether ``buffer`` starts with a whole message (or with a header no message may have)."""
    if len(buffer) < _HEADER.size:
        return False
    (size,) = _HEADER.unpack_from(buffer)
    return size > MAX_REPLY_BYTES or len(buffer) >= _HEADER.size + size


def take_frame(buffer: bytearray):
    """Remove the first whole message from ``buffer`` and parse it; BadValue if it is not one."""
    (size,) = _HEADER.unpack_from(buffer)
    if size > MAX_REPLY_BYTES:
        raise BadValue(f"a message of {size} bytes, over the limit of {MAX_REPLY_BYTES}")
    body = bytes(buffer[_HEADER.size:_HEADER.size + size])
    del buffer[:_HEADER.size + size]
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as error:  # undecodable, not JSON, too deep, huge number
        raise BadValue("a message that is not JSON") from error


def read_frame(stream):
    """Read one message from a binary stream (the child's stdin); None at end of stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_REQUEST_BYTES:
        raise BadValue(f"a message of {size} bytes, over the limit of {MAX_REQUEST_BYTES}")
    body = stream.read(size)
    if len(body) < size:
        return None
    return json.loads(body.decode("utf-8"))


# --------------------------------------------------------------------------
# Values


class Ref:
    """A reference to an object that lives on the other side, as it crosses."""

    __slots__ = ("handle", "kind", "type_name")

    def __init__(self, handle: int, kind: str = "object", type_name: str = "object") -> None:
        self.handle, self.kind, self.type_name = handle, kind, type_name

    def __eq__(self, other) -> bool:
        return isinstance(other, Ref) and (self.handle, self.kind, self.type_name) == (
            other.handle, other.kind, other.type_name)

    def __repr__(self) -> str:
        return f"Ref({self.handle}, {self.kind!r}, {self.type_name!r})"


def encode(value, as_ref=None, depth: int = 0):
    """``value`` in the contract's JSON form.

    ``as_ref(obj)`` turns an object that is not a plain value into a Ref (the
    child binds it to a handle); without it, such an object is an error.
    """
    if depth > MAX_DEPTH:
        raise BadValue("nested too deeply")
    # First: numpy's float64 is also a Python float, and must keep its type.
    if isinstance(value, np.generic) and type(value).__module__ == "numpy" and value.dtype.name in DTYPES:
        raw = np.asarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()
        return {"scalar": [value.dtype.name, base64.b64encode(raw).decode("ascii")]}
    if value is None or type(value) is bool:
        return value
    if type(value) is int:
        if abs(value) > 2**63:
            raise BadValue("an integer too large")
        return value
    if type(value) is float:
        if math.isfinite(value):
            return value
        return {"float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if type(value) is str:
        return {"str": value[:MAX_TEXT]}
    if isinstance(value, Ref):
        return {"ref": value.handle, "kind": value.kind, "type": value.type_name}
    if type(value) is np.ndarray and value.dtype.name in DTYPES:
        if value.size > MAX_ARRAY_ELEMENTS:
            raise BadValue(f"an array of {value.size} elements")
        raw = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()
        return {"array": [value.dtype.name, list(value.shape), base64.b64encode(raw).decode("ascii")]}
    if type(value) in (list, tuple):
        if len(value) > MAX_SEQUENCE:
            raise BadValue("a sequence too long")
        return {type(value).__name__: [encode(item, as_ref, depth + 1) for item in value]}
    if as_ref is not None:
        return encode(as_ref(value), None, depth)
    raise BadValue(f"a value of type {type(value).__name__}")


def decode(data, depth: int = 0):
    """The value ``data`` stands for; BadValue for anything not of the contract's forms."""
    if depth > MAX_DEPTH:
        raise BadValue("nested too deeply")
    if data is None or isinstance(data, bool):
        return data
    if isinstance(data, int):
        if abs(data) > 2**63:
            raise BadValue("an integer too large")
        return data
    if isinstance(data, float):
        if not math.isfinite(data):
            raise BadValue("a non-finite float outside its form")
        return data
    if not isinstance(data, dict) or len(data) == 0:
        raise BadValue("not a value")
    if "ref" in data:
        return _decode_ref(data)
    if len(data) != 1:
        raise BadValue("not a value")
    (form, body), = data.items()
    if form == "float" and isinstance(body, str) and body in NON_FINITE:
        return NON_FINITE[body]
    if form == "str" and isinstance(body, str) and len(body) <= MAX_TEXT:
        return body
    if form == "array" and isinstance(body, list) and len(body) == 3:
        return _decode_array(*body)
    if form == "scalar" and isinstance(body, list) and len(body) == 2:
        return _decode_array(body[0], [], body[1])[()]
    if form in ("list", "tuple") and isinstance(body, list) and len(body) <= MAX_SEQUENCE:
        items = [decode(item, depth + 1) for item in body]
        return items if form == "list" else tuple(items)
    raise BadValue(f"not a value ({_describe_form(form)})")


def decode_kwargs(data) -> dict:
    if not isinstance(data, dict) or set(data) - {"kwargs"}:
        raise BadValue("not keyword arguments")
    named = data.get("kwargs", {})
    if not isinstance(named, dict) or len(named) > 16:
        raise BadValue("not keyword arguments")
    return {check_name(key): decode(value, 1) for key, value in named.items()}


def encode_kwargs(kwargs: dict, as_ref=None) -> dict:
    return {"kwargs": {key: encode(value, as_ref, 1) for key, value in kwargs.items()}}


def check_name(name) -> str:
    """An identifier of bounded length (attribute, class and engine names)."""
    if isinstance(name, str) and len(name) <= MAX_NAME and _NAME.fullmatch(name):
        return name
    raise BadValue("not a name")


def _describe_form(form) -> str:
    return form if isinstance(form, str) and _NAME.fullmatch(form) and len(form) < 20 else "unknown form"


def _decode_ref(data: dict) -> Ref:
    handle, kind, type_name = data.get("ref"), data.get("kind"), data.get("type")
    if set(data) != {"ref", "kind", "type"}:
        raise BadValue("a malformed reference")
    if not isinstance(handle, int) or isinstance(handle, bool) or not 0 <= handle < 2**53:
        raise BadValue("a malformed reference")
    if kind not in ("tensor", "object"):
        raise BadValue("a malformed reference")
    if not isinstance(type_name, str) or len(type_name) > MAX_NAME or not _NAME.fullmatch(type_name):
        type_name = "unnamed"
    return Ref(handle, kind, type_name)


def _decode_array(dtype, shape, payload) -> np.ndarray:
    if dtype not in DTYPES:
        raise BadValue("an array of a dtype that is not numeric")
    if not isinstance(shape, list) or len(shape) > 32 or not all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_ARRAY_ELEMENTS for n in shape):
        raise BadValue("an array with a malformed shape")
    count = math.prod(shape)
    # An empty array may still claim huge dimensions, which numpy refuses to make.
    if count > MAX_ARRAY_ELEMENTS or math.prod(n for n in shape if n) > MAX_ARRAY_ELEMENTS \
            or not isinstance(payload, str):
        raise BadValue("an array too large")
    try:
        raw = base64.b64decode(payload.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as error:
        raise BadValue("an array whose bytes are not base64") from error
    little = np.dtype(dtype).newbyteorder("<")
    if len(raw) != count * little.itemsize:
        raise BadValue("an array whose bytes do not match its shape")
    # A copy in native byte order: writable, and owned by nobody else.
    return np.frombuffer(raw, dtype=little).astype(np.dtype(dtype), copy=True).reshape(shape)


# --------------------------------------------------------------------------
# Errors


def encode_error(type_name: str, message: str, where: str) -> dict:
    return {"type": type_name[:MAX_NAME], "message": message[:MAX_TEXT], "where": where[:MAX_TEXT]}


def decode_error(data) -> tuple[str, str, str]:
    """(type, message, where) of an error reply; the texts bounded, the type a name."""
    if not isinstance(data, dict):
        raise BadValue("a malformed error")
    kind, message, where = data.get("type"), data.get("message"), data.get("where")
    if not isinstance(kind, str) or not _NAME.fullmatch(kind) or len(kind) > MAX_NAME:
        kind = "Exception"
    message = message[:MAX_TEXT] if isinstance(message, str) else ""
    where = where[:MAX_TEXT] if isinstance(where, str) else ""
    return kind, message, where
