"""The judge: does what the student's engine observed agree with the reference engine?

For every scenario, the two observations (plain data, ``scenario_runtime.to_plain``)
are compared here, in the grader, and each difference becomes a sentence a
student can act on; a test passes when all its scenarios agree.  What the
student's engine returned may be anything an untrusted process can produce:
nothing here raises on it, it is reported.
"""

from __future__ import annotations

import math
import re
from typing import Callable

import numpy as np

from .assignment import Assignment, Scenario, TestCell
from .results import Diagnosis, ScenarioOutcome, TestResult

# Gradients computed in another order differ by rounding only; anything
# beyond these tolerances is a different gradient.
RTOL = 1e-7
ATOL = 1e-9
# Arrays up to this size are shown whole in a message; longer ones by where they differ.
WHOLE_ARRAY_ELEMENTS = 6


def judge(assignment: Assignment, expected: dict[tuple[str, str], dict], actual: dict[tuple[str, str], dict],
          hidden_visibility: str, diagnose: Callable[[Scenario], Diagnosis | None] | None = None,
          ) -> list[TestResult]:
    """Compare every scenario's result with the reference engine's; all scenarios of a test must agree.

    ``diagnose`` is asked where a scenario whose gradients differ probably
    goes wrong; what it says is feedback only.
    """
    tests = []
    for test in assignment.tests:
        outcomes = []
        for scenario in test.scenarios:
            key = (test.grade_id, scenario.name)
            problems = _compare_safely(expected[key], actual.get(key))
            outcome = ScenarioOutcome(scenario.name, scenario.summary, not problems, problems)
            if problems and diagnose is not None and gradient_differences(problems):
                diagnosis = diagnose(scenario)
                if diagnosis is not None:
                    outcome.culprit, outcome.diagnosis = diagnosis.position, diagnosis.text
            outcomes.append(outcome)
        tests.append(_test_result(test, outcomes, hidden_visibility))
    return tests


def _compare_safely(expected: dict, actual: dict) -> list[str]:
    # Both results were made here from decoded values; a failure is a grader
    # bug, and it must cost this scenario only, never the whole batch.
    try:
        return compare_results(expected, actual)
    except Exception as error:  # noqa: BLE001
        return [f"the grader could not compare this result ({type(error).__name__}); tell your instructor"]


def _test_result(test: TestCell, outcomes: list[ScenarioOutcome], hidden_visibility: str) -> TestResult:
    passed = all(outcome.passed for outcome in outcomes)
    lines = []
    for outcome in outcomes:
        if not outcome.passed:
            lines.append(outcome.summary)
            lines += [f"  - {problem}" for problem in outcome.problems]
            if outcome.diagnosis:
                lines.append(f"  Where: {outcome.diagnosis}")
    output = "All checks passed." if passed else "\n".join(lines)
    return TestResult(
        name=test.grade_id, title=test.title, score=test.points if passed else 0.0, max_score=test.points,
        status="passed" if passed else "failed", output=output, hidden=test.hidden,
        visibility=hidden_visibility if test.hidden else "visible", scenarios=outcomes,
    )


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


def gradient_differences(problems: list[str]) -> dict[str, str]:
    """Tensor name -> how its gradient differs, from the comparison's sentences ("x.grad: expected ...").

    The name is the one before ``.grad`` in the key, so a nested key
    (``second.x.grad``) names ``x``, as the drawing does.
    """
    found = {}
    for problem in problems:
        key, _, text = problem.partition(": ")
        match = _GRAD_KEY.search(key)
        if match and text:
            found.setdefault(match.group(1), text)
    return found


_GRAD_KEY = re.compile(r"([A-Za-z_][A-Za-z_0-9]*)\.grad\b")
