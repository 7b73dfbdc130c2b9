"""The grader-child contract (autograder/protocol.py): round trips, bounds, and a decoder that never raises.

Pure logic, no sandbox: these run in well under a second.
"""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from autograder import protocol
from autograder.protocol import BadValue, Ref


ROUND_TRIPS = [
    None, True, False, 0, -7, 2**62, 1.5, -0.0, "AddBackward", "",
    math.inf, -math.inf,
    np.arange(6, dtype=np.float64).reshape(2, 3), np.array(3.5), np.zeros((0, 4), dtype=np.float32),
    np.array([True, False]), np.arange(5, dtype=np.int32), np.float64(2.25), np.float32(-1.5),
    [1, 2.5, None], (1.0, "x", (2, 3)), Ref(17, "tensor", "Tensor"), Ref(2**40, "object", "MulBackward"),
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=lambda v: type(v).__name__)
def test_values_survive_a_round_trip_through_a_frame(value):
    buffer = bytearray(protocol.frame({"done": protocol.encode(value)}))
    assert protocol.frame_ready(buffer)
    decoded = protocol.decode(protocol.take_frame(buffer)["done"])
    assert buffer == b""
    if isinstance(value, (np.ndarray, np.generic)):
        assert type(decoded) is type(value) and decoded.dtype == value.dtype
        assert np.asarray(decoded).shape == np.asarray(value).shape
        assert np.array_equal(decoded, value)
    else:
        assert decoded == value and type(decoded) is type(value)


def test_nan_round_trips_as_nan():
    assert math.isnan(protocol.decode(protocol.encode(math.nan)))


def test_decoded_arrays_are_writable_copies():
    array = protocol.decode(protocol.encode(np.ones(3)))
    array *= 2  # would raise on a read-only view of the message's bytes
    assert array.flags.writeable


def test_objects_cross_only_as_references():
    class Thing:
        pass

    with pytest.raises(BadValue):
        protocol.encode(Thing())
    assert protocol.encode(Thing(), lambda obj: Ref(5, "object", "Thing")) == {"ref": 5, "kind": "object",
                                                                            "type": "Thing"}
    # An ndarray subclass is not an array: it could compare equal to anything.
    impostor = np.ones(2).view(type("Impostor", (np.ndarray,), {}))
    assert protocol.encode(impostor, lambda obj: Ref(6))["ref"] == 6


def test_frames_over_the_limit_are_refused_before_they_are_read():
    buffer = bytearray((protocol.MAX_REPLY_BYTES + 1).to_bytes(4, "big"))
    assert protocol.frame_ready(buffer)  # ready to be refused: the grader does not wait for 8 MiB more
    with pytest.raises(BadValue):
        protocol.take_frame(buffer)


def _nested(depth: int):
    value = 1
    for _ in range(depth):
        value = {"list": [value]}
    return value


MALFORMED = [
    {"array": ["object", [1], "AA=="]},
    {"array": ["float64", [2], "AAAAAAAAAAA="]},  # 8 bytes for 2 elements
    {"array": ["float64", [10**9], ""]},
    {"array": ["float64", [-1], ""]},
    {"array": ["float64", [1], "not base64!"]},
    {"array": ["float64", [True], ""]},
    {"ref": 1, "kind": "tensor"},
    {"ref": -1, "kind": "tensor", "type": "T"},
    {"ref": True, "kind": "tensor", "type": "T"},
    {"ref": 1, "kind": "module", "type": "T"},
    {"float": "NaN"}, {"str": "x" * (protocol.MAX_TEXT + 1)}, {"str": 5},
    {"list": [1] * (protocol.MAX_SEQUENCE + 1)}, {"dict": {}}, {}, {"a": 1, "b": 2},
    [1, 2], "bare text", 2**70, float("nan"), _nested(protocol.MAX_DEPTH + 2),
    {"array": ["float64", [0, 10**6, 10**6, 10**6], ""]},  # empty, but numpy refuses its shape
]


@pytest.mark.parametrize("data", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_values_are_refused_with_bad_value(data):
    with pytest.raises(BadValue):
        protocol.decode(data)


def test_unprintable_type_names_are_replaced():
    ref = protocol.decode({"ref": 3, "kind": "object", "type": "<script>alert(1)</script>"})
    assert ref.type_name == "unnamed"


def _random_json(rng: random.Random, depth: int = 0):
    choice = rng.randrange(12 if depth < 6 else 7)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 2**53, 2**64, rng.randrange(-10**6, 10**6)])
    if choice == 3:
        return rng.choice([0.5, -1e308, 1e-320, rng.random()])
    if choice == 4:
        return "".join(rng.choice("ab<>*[]()\\\"\u2028\ud800 ") for _ in range(rng.randrange(0, 40)))
    if choice == 5:
        return rng.choice(protocol.DTYPES + ("object", "", "float128", "<f8"))
    if choice == 6:  # shapes: small ones, and empty ones with huge dimensions
        return [rng.choice([rng.randrange(-2, 5), 0, 10**6, 2**40]) for _ in range(rng.randrange(0, 6))]
    if choice in (7, 8):
        form = rng.choice(["array", "scalar", "list", "tuple", "ref", "float", "str", "kind", "type", "kwargs"])
        return {form: _random_json(rng, depth + 1)}
    if choice == 9:
        return {"ref": _random_json(rng, depth + 1), "kind": rng.choice(["tensor", "object", 3]),
                "type": _random_json(rng, depth + 1)}
    if choice == 10:
        return {"array": [_random_json(rng, depth + 1), _random_json(rng, depth + 1), rng.choice(
            ["", "AAAAAAAAAAA=", "AAAAAAAAAAAAAAAAAAAAAA==", _random_json(rng, depth + 1)])]}
    return [_random_json(rng, depth + 1) for _ in range(rng.randrange(0, 4))]


def test_the_decoder_never_raises_anything_but_bad_value_on_random_input():
    rng = random.Random(20261202)
    decoded = refused = 0
    for _ in range(5000):
        data = _random_json(rng)
        for decoder in (protocol.decode, protocol.decode_kwargs, protocol.decode_error):
            try:
                decoder(data)
                decoded += 1
            except BadValue:
                refused += 1
    # Both outcomes occur, so the generator reaches the decoder's accepting and refusing paths.
    assert decoded > 500 and refused > 500


def test_frames_with_random_bytes_never_raise_anything_but_bad_value():
    rng = random.Random(7)
    for _ in range(2000):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 30)))
        if rng.random() < 0.5:
            body = json.dumps(_random_json(rng)).encode()[: rng.randrange(1, 60)]
        buffer = bytearray(len(body).to_bytes(4, "big") + body)
        try:
            protocol.take_frame(buffer)
        except BadValue:
            pass


def test_errors_are_bounded_and_typed():
    kind, message, where = protocol.decode_error({"type": "x y", "message": "m" * 10_000, "where": 5})
    assert kind == "Exception" and len(message) == protocol.MAX_TEXT and where == ""
    with pytest.raises(BadValue):
        protocol.decode_error(["ValueError"])
