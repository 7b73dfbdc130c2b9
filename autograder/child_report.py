"""Reading what the sandboxed child reported: parse, validate, bound, and nothing more.

Every byte of the child's stdout is under the submission's control: it can
forge lines, nest JSON a million levels deep, send numbers too large for a
float, strings with control characters or lone surrogates, or quote the hidden
tests it read from job.json.  This module turns that stream into a
``ChildReport`` in which every value has a known type and size:

- only the job's own cells and scenarios are taken, the first line of each;
- an observation is kept only if it has the shape ``to_plain`` produces
  (numbers, short names, arrays of finite floats, bounded lists and dicts);
  anything else becomes an error "unreadable result";
- errors are cut down to the exception type and where it was raised;
- strings that are not short, plain names are replaced by a description.

The grader compares and displays only what comes out of here.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

MAX_LINE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 12
MAX_ITEMS = 10_000
MAX_KEYS = 200
MAX_NAME = 80
SPECIAL_FLOATS = {"nan", "inf", "-inf"}
UNREADABLE = "an unreadable result (not the numbers, arrays and names a scenario reports)"

_PLAIN_TEXT = re.compile(r"[A-Za-z0-9_ .,:=()\[\]+\-*/']*")
_ERROR_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,79}")
_ERROR_PLACE = re.compile(r"\(in ([A-Za-z_<>][A-Za-z0-9_<>]{0,79}), line (\d{1,7})\)$")
_TIMEOUT = re.compile(r"Timeout: took longer than (\d+(?:\.\d+)?) s$")


class Unreadable(ValueError):
    """A value that is not shaped like an observation."""


@dataclass(frozen=True)
class ChildReport:
    cell_errors: dict[str, str]  # cell id -> safe error text ("" if the cell ran)
    scenario_results: dict[tuple[str, str], dict]  # (test, scenario) -> {"observed": ...} or {"error": ...}
    complete: bool  # a result came back for every scenario of the job


def parse_report(stdout: bytes, job: dict) -> ChildReport:
    cells = {cell["id"] for cell in job["cells"]}
    wanted = {(test["id"], s["name"]) for test in job["tests"] for s in test["scenarios"]}
    cell_errors: dict[str, str] = {}
    results: dict[tuple[str, str], dict] = {}
    for raw in stdout.splitlines():
        event = _load_line(raw)
        if not isinstance(event, dict):
            continue
        if event.get("event") == "cell" and event.get("id") in cells and event["id"] not in cell_errors:
            error = event.get("error")
            cell_errors[event["id"]] = safe_error(error) if error is not None else ""
        elif event.get("event") == "scenario":
            key = (event.get("test"), event.get("scenario"))
            # The first line for a scenario counts; a repeated one cannot replace it.
            if key in wanted and key not in results:
                results[key] = _result(event.get("result"))
    return ChildReport(cell_errors, results, complete=wanted <= set(results))


def _load_line(raw: bytes):
    if len(raw) > MAX_LINE_BYTES:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, undecodable, too deep, or a number too long
        return None


def _result(result) -> dict:
    if isinstance(result, dict) and "error" in result:
        return {"error": safe_error(result["error"])}
    if isinstance(result, dict) and "observed" in result:
        try:
            return {"observed": plain_value(result["observed"], 0)}
        except Unreadable:
            return {"error": UNREADABLE}
    return {"error": UNREADABLE}


def plain_value(value, depth: int):
    """``value`` if it is shaped like an observation, with every string made safe; else Unreadable."""
    if depth > MAX_DEPTH:
        raise Unreadable("too deep")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > 2**53:
            raise Unreadable("integer out of range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unreadable("non-finite float outside the special form")
        return value
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, list):
        if len(value) > MAX_ITEMS:
            raise Unreadable("list too long")
        return [plain_value(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return _plain_dict(value, depth)
    raise Unreadable(type(value).__name__)


def _plain_dict(value: dict, depth: int):
    kind = value.get("kind")
    if kind == "ndarray":
        return _plain_array(value)
    if kind == "float":
        if value.get("value") not in SPECIAL_FLOATS or len(value) != 2:
            raise Unreadable("special float")
        return {"kind": "float", "value": value["value"]}
    if kind == "object":
        return {"kind": "object", "type": safe_text(value.get("type"))}
    if len(value) > MAX_KEYS:
        raise Unreadable("too many keys")
    return {safe_text(key): plain_value(item, depth + 1) for key, item in value.items()}


def _plain_array(value: dict) -> dict:
    shape, values, dtype = value.get("shape"), value.get("values"), value.get("dtype")
    if not isinstance(shape, list) or len(shape) > 8 or not all(
        isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_ITEMS for n in shape
    ):
        raise Unreadable("array shape")
    if not isinstance(values, list) or len(values) != math.prod(shape) or len(values) > MAX_ITEMS:
        raise Unreadable("array values")
    numbers = []
    for number in values:
        if isinstance(number, dict) and number.get("kind") == "float" and number.get("value") in SPECIAL_FLOATS:
            numbers.append({"kind": "float", "value": number["value"]})
        elif isinstance(number, (int, float)) and not isinstance(number, bool) and abs(number) <= 1e308:
            numbers.append(float(number))
        else:
            raise Unreadable("array value")
    return {"kind": "ndarray", "dtype": safe_text(dtype), "shape": shape, "values": numbers}


def safe_text(text) -> str:
    """A string from the child, kept only if it is a short plain name; otherwise described."""
    if isinstance(text, str) and len(text) <= MAX_NAME and _PLAIN_TEXT.fullmatch(text):
        return text
    if isinstance(text, str):
        return f"<a text of {len(text)} characters>"
    return "<not a text>"


def safe_error(text) -> str:
    """An error reported by the child, reduced to its exception type and where it was raised.

    The message itself is dropped: it is text the submission controls, and
    could carry anything it read during grading, hidden test code included.
    """
    if not isinstance(text, str):
        return "an error"
    timeout = _TIMEOUT.match(text)
    if timeout:
        return f"Timeout (took longer than {timeout.group(1)} s)"
    kind = _ERROR_TYPE.match(text)
    place = _ERROR_PLACE.search(text)
    described = kind.group(0) if kind else "an error"
    if place:
        described += f" in {place.group(1)}, line {place.group(2)}"
    return described
