"""Running a test scenario on an engine, and reducing what it saw to plain data.

A *scenario* is a function ``scenario_<name>(tt, rng) -> dict`` written in a
test cell of the instructor notebook.  ``tt`` is a namespace holding an
engine's ``Tensor``, ``no_grad`` and Function classes; ``rng`` is a seeded
``numpy.random.Generator``.  The scenario builds a computation and returns
what it observed (gradients, values, grad_fn class names, identity checks).

The same scenario runs on the student's engine and on the reference engine,
and the two observations are compared.  This module runs a scenario on any
``tt`` (the reference here, the proxies of ``remote_engine.py`` for the
student's engine in the sandbox, or the notebook's own names in a student's
kernel) and reduces what it returned to plain data for the comparison;
nothing here decides a score.
"""

from __future__ import annotations

import math
import traceback

import numpy as np

# Names a scenario may use through ``tt``.  An engine that lacks one gets a
# placeholder that fails loudly when used, so a missing class costs only the
# scenarios that need it.
ENGINE_NAMES = (
    "Tensor",
    "Function",
    "no_grad",
    "AddBackward",
    "SubBackward",
    "MulBackward",
    "NegBackward",
    "PowBackward",
    "SumBackward",
    "MeanBackward",
)

MAX_ARRAY_ELEMENTS = 10_000  # observations are small; anything bigger is a scenario bug


class EngineNamespace:
    """The ``tt`` a scenario sees: attributes taken from an engine's names."""

    def __init__(self, names: dict) -> None:
        for name in ENGINE_NAMES:
            setattr(self, name, names.get(name, _Missing(name)))

    @staticmethod
    def scale_grad_in_place(tensor, factor: float) -> None:
        """Multiply ``tensor.grad`` in place, as an optimizer step would.

        A scenario decides whether two tensors share one gradient array by
        doing this to one and reading both back: on the student's engine in
        the sandbox the same write is a request carried out there (the one
        check the engine's own process performs; the README says so).
        """
        if type(tensor.grad) is not np.ndarray:
            raise TypeError(f".grad is a {type(tensor.grad).__name__}, not a numpy array")
        np.multiply(tensor.grad, factor, out=tensor.grad)


class _Missing:
    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args, **kwargs):
        raise NameError(f"the notebook does not define {self.name}")

    def __repr__(self) -> str:
        return f"<missing {self.name}>"


def to_plain(value, depth: int = 0):
    """Reduce an observed value to JSON-able data: numbers, strings, lists, dicts.

    Arrays keep their dtype and shape so that a gradient of the wrong shape or
    type is reported as such.  Anything unexpected becomes a description of
    its type: an object pretending to be an array is not an array.
    """
    if depth > 8:
        return {"kind": "object", "type": "too deeply nested"}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (np.ndarray, np.floating)):
        # A numpy float scalar is what a full reduction returns (grad.sum()):
        # it stands for a 0-d array, and is recorded as one.
        array = np.array(value, copy=True).view(np.ndarray)
        if array.size > MAX_ARRAY_ELEMENTS:
            return {"kind": "object", "type": f"array of {array.size} elements (too large)"}
        return {
            "kind": "ndarray",
            "dtype": str(array.dtype),
            "shape": list(array.shape),
            "values": [_plain_float(float(v)) for v in array.astype(np.float64).ravel()]
            if array.dtype.kind in "fiub"
            else None,
        }
    if isinstance(value, float):
        return _plain_float(value)
    if isinstance(value, (list, tuple)):
        return [to_plain(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {str(key): to_plain(item, depth + 1) for key, item in value.items()}
    return {"kind": "object", "type": type(value).__name__}


def _plain_float(number: float):
    # JSON has no NaN or infinity; spell them so they survive any parser.
    if math.isfinite(number):
        return number
    return {"kind": "float", "value": repr(number)}


def run_scenario(scenario, tt: EngineNamespace, seed: int) -> dict:
    """Run one scenario; its observations, or the error it raised, as plain data."""
    try:
        observed = scenario(tt, np.random.default_rng(seed))
    except KeyboardInterrupt:
        raise  # a timeout's interrupt belongs to whoever set the timeout
    except BaseException as error:  # SystemExit too: exiting is the engine's failure
        return {"error": _describe_error(error)}
    if not isinstance(observed, dict):
        return {"error": f"scenario returned {type(observed).__name__}, not a dict"}
    return {"observed": to_plain(observed)}


def _describe_error(error: BaseException) -> str:
    """The exception type and message, and the innermost line of the engine that raised it."""
    text = str(error)
    message = f"{type(error).__name__}: {text}" if text else type(error).__name__
    if isinstance(error, RecursionError):
        return message
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        where = frames[-1]
        message += f" (in {where.name}, line {where.lineno})"
    return message[:500]
