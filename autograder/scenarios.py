"""Judging scenarios: run them on the reference engine and compare observations.

See ``scenario_runtime.py`` for what a scenario is.  This module is the
trusted half: it knows the reference engine, decides whether two observations
agree, and words the message a student reads when they do not.  Hidden test
cells of the notebook call ``check_against_reference`` under ``nbgrader
autograde``; the trusted grader calls ``compare_results`` on what a scenario
observed through the proxies of the student's engine (``remote_engine.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import math
import os
import secrets

import numpy as np

from .scenario_runtime import EngineNamespace, run_scenario

# Gradients computed in another order differ by rounding only; anything
# beyond these tolerances is a different gradient.
RTOL = 1e-7
ATOL = 1e-9
# Arrays up to this size are shown whole in a message; longer ones by where they differ.
WHOLE_ARRAY_ELEMENTS = 6


def reference_namespace() -> EngineNamespace:
    """The reference engine ``tinytorch`` as a scenario's ``tt``."""
    import tinytorch

    return EngineNamespace(vars(tinytorch))


def fresh_base_seed() -> int:
    """A new grading run's secret: 128 bits, so that no search over seeds is feasible."""
    return secrets.randbits(128)


def scenario_seed(name: str, base_seed: int) -> int:
    """The seed a scenario's inputs are drawn with: one per scenario and grading run.

    A keyed hash of the base seed: a student sees functions of the hidden inputs
    (expected values in messages), and with an unkeyed hash of a small seed
    those could be searched back to the seed and so to every other scenario's
    inputs.
    """
    digest = hmac.new(str(base_seed).encode(), name.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:16], "big")


def default_base_seed() -> int:
    return int(os.environ.get("AUTOGRADER_SEED", "0"))


def summary(scenario) -> str:
    """The scenario's docstring: what it checks, in words a student can act on."""
    return inspect.cleandoc(scenario.__doc__ or scenario.__name__)


def check_against_reference(scenario, namespace: dict, *, base_seed: int | None = None) -> None:
    """Run ``scenario`` on the engine in ``namespace`` and on the reference; fail on any difference.

    ``namespace`` is the notebook's ``globals()``.  Raises AssertionError with
    the scenario's explanation and every difference found.
    """
    seed = scenario_seed(scenario.__name__, default_base_seed() if base_seed is None else base_seed)
    expected = run_scenario(scenario, reference_namespace(), seed)
    if "error" in expected:
        raise RuntimeError(f"the reference engine fails {scenario.__name__}: {expected['error']}")
    actual = run_scenario(scenario, EngineNamespace(namespace), seed)
    problems = compare_results(expected, actual)
    if problems:
        raise AssertionError(failure_message(summary(scenario), problems))


def failure_message(explanation: str, problems: list[str]) -> str:
    lines = [explanation, "", "What differs from the reference engine:"]
    lines += [f"  - {problem}" for problem in problems]
    return "\n".join(lines)


def compare_results(expected: dict, actual) -> list[str]:
    """Differences between the reference's result and the student's, as sentences.

    ``actual`` may be anything that came out of an untrusted process; this
    never raises on malformed input, it reports it.
    """
    if not isinstance(actual, dict):
        return ["no result came back for this scenario"]
    if "problem" in actual:  # the grader's own sentence: a timeout, a dead process, an unreadable answer
        return [str(actual["problem"])]
    if "error" in actual:
        error = _short(actual["error"])
        if error.startswith("NotImplementedError"):
            return [f"not written yet: your engine raised {error}"]
        if error.startswith("RecursionError"):
            return [f"your engine raised {error}: backward() calls itself once per node. Step 2: walk the "
                    "graph with a loop and a stack, not recursion"]
        return [f"your engine raised {error}; the reference engine did not"]
    if "observed" not in actual:
        return ["no result came back for this scenario"]
    problems: list[str] = []
    _compare(expected["observed"], actual["observed"], "", problems)
    return problems


def _compare(expected, actual, path: str, problems: list[str]) -> None:
    if isinstance(expected, dict) and expected.get("kind") == "ndarray":
        _compare_arrays(expected, actual, path, problems)
    elif isinstance(expected, dict) and expected.get("kind") in ("float", "object"):
        if actual != expected:
            problems.append(f"{path}: expected {_show(expected)}, got {_show(actual)}")
    elif isinstance(expected, dict):
        if not isinstance(actual, dict) or actual.get("kind") is not None:
            problems.append(f"{path or 'result'}: expected a dict, got {_show(actual)}")
            return
        for key, value in expected.items():
            where = f"{path}.{key}" if path else key
            if key not in actual:
                problems.append(f"{where}: missing from your result")
            else:
                _compare(value, actual[key], where, problems)
    elif isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            problems.append(f"{path}: expected {_show(expected)}, got {_show(actual)}")
            return
        for index, (want, got) in enumerate(zip(expected, actual)):
            _compare(want, got, f"{path}[{index}]", problems)
    elif isinstance(expected, float):
        if not _is_number(actual) or not math.isclose(actual, expected, rel_tol=RTOL, abs_tol=ATOL):
            problems.append(f"{path}: expected {expected:.10g}, got {_show(actual)}")
    elif type(actual) is not type(expected) or actual != expected:
        problems.append(f"{path}: expected {_show(expected)}, got {_show(actual)}")


def _compare_arrays(expected: dict, actual, path: str, problems: list[str]) -> None:
    if not isinstance(actual, dict) or actual.get("kind") != "ndarray":
        problems.append(f"{path}: expected a numpy array {_show(expected)}, got {_show(actual)}")
        return
    if actual.get("shape") != expected["shape"]:
        problems.append(
            f"{path}: expected shape {tuple(expected['shape'])}, got shape "
            f"{_shape_text(actual.get('shape'))}"
        )
        return
    if actual.get("dtype") != expected["dtype"]:
        problems.append(f"{path}: expected dtype {expected['dtype']}, got {_short(actual.get('dtype'))}")
        return
    want, got = _values(expected), _values(actual)
    if got is None or len(got) != len(want):
        problems.append(f"{path}: the array's values could not be read")
        return
    close = np.isclose(got, want, rtol=RTOL, atol=ATOL, equal_nan=True)
    if close.all():
        return
    if want.size <= WHOLE_ARRAY_ELEMENTS:
        problems.append(f"{path}: expected {_show(expected)}, got {_show(actual)}")
        return
    # A long array in full is noise: its shape, and where it first differs.
    shape = tuple(expected["shape"])
    wrong = np.flatnonzero(~close)
    entries = "; ".join(
        f"at {_index_text(np.unravel_index(i, shape))} expected {want[i]:.6g}, got {got[i]:.6g}" for i in wrong[:3]
    )
    problems.append(f"{path}: {len(wrong)} of {want.size} entries differ (shape {shape}); {entries}")


def _index_text(index: tuple) -> str:
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def _values(array_record: dict) -> np.ndarray | None:
    values = array_record.get("values")
    if not isinstance(values, list):
        return None
    numbers = []
    for value in values:
        if isinstance(value, dict) and value.get("kind") == "float":
            value = float(value.get("value", "nan"))
        if not _is_number(value):
            return None
        numbers.append(float(value))
    return np.array(numbers, dtype=np.float64)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shape_text(shape) -> str:
    return str(tuple(shape)) if isinstance(shape, list) else _short(shape)


def _show(value) -> str:
    """A short, readable rendering of an observation for a message."""
    if isinstance(value, dict) and value.get("kind") == "ndarray":
        values = _values(value)
        shape = value.get("shape")
        if values is None or not isinstance(shape, list):
            return "an unreadable array"
        try:
            shaped = values.reshape(shape)
        except (ValueError, TypeError):
            shaped = values
        # One line, whatever the shape: messages are read in tables and diagrams.
        text = np.array2string(shaped, precision=6, threshold=12, separator=", ", max_line_width=10**6)
        text = " ".join(text.split())
        return f"{text} (shape {tuple(shape)})"
    if isinstance(value, dict) and value.get("kind") == "object":
        return f"an object of type {_short(value.get('type'))}"
    if isinstance(value, dict) and value.get("kind") == "float":
        return _short(value.get("value"))
    return _short(value)


def _short(value, limit: int = 200) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."
