"""A GradeResult written out: readable text, Gradescope's results.json, JUnit XML, Markdown.

Every format here may reach the student, so none holds the seed (with it,
hidden inputs can be recomputed) or the isolation detail (host paths): they
only name the isolation level.  The JSON keeps both in a top-level
"instructor" object, which Gradescope ignores and never shows; the command
line prints them to standard error.  Strings that the submission could
influence (test outputs, notes, the message, the student and file names) go
through ``literal`` for the target format.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

from . import literal
from .results import GradeResult
from .tables import points, text_table

FORMATS = ("text", "json", "junit", "markdown")
# Header lines are "label:" plus a value starting at this column; a value's
# continuation lines are indented to it, never back to column 0.
VALUE_COLUMN = 11
TEST_OUTPUT_INDENT = "    "


def render(result: GradeResult, fmt: str) -> str:
    if fmt == "text":
        return to_text(result)
    if fmt == "json":
        # ensure_ascii (the default) writes every non-ASCII character as an escape.
        return json.dumps(to_gradescope(result), indent=2)
    if fmt == "junit":
        return to_junit(result)
    if fmt == "markdown":
        return to_markdown(result)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def isolation_level(result: GradeResult) -> str:
    """The level alone, even from a result that still carries "level: detail" in ``isolation``."""
    return result.isolation.partition(":")[0].strip()


def instructor_summary(result: GradeResult) -> str:
    """For the instructor's eyes only (standard error): how to reproduce the grade, and what was isolated."""
    detail = literal.one_line(result.isolation_detail or isolation_level(result), limit=2000)
    return f"seed: {result.seed} (grade again with --seed {result.seed} to reproduce); isolation: {detail}"


def _header_lines(result: GradeResult) -> list[str]:
    indent = " " * VALUE_COLUMN

    def line(label: str, value: str) -> str:
        return f"{label + ':':<{VALUE_COLUMN}}{value}"

    def shown(value: str) -> str:
        return literal.for_text(value, indent=indent, limit=literal.INLINE_LIMIT)

    message = f": {shown(result.message)}" if result.message else ""
    lines = [
        line("student", f"{shown(result.student)}  ({shown(result.submission)})"),
        line("status", f"{shown(result.status)}{message}"),
        line("score", f"{result.score:g} / {result.max_score:g}"),
        line("isolation", shown(isolation_level(result))),
    ]
    return lines + [line("note", shown(note)) for note in result.notes]


def _test_output_lines(output: str) -> list[str]:
    return [TEST_OUTPUT_INDENT + literal.for_text(output, indent=TEST_OUTPUT_INDENT)]


def to_text(result: GradeResult) -> str:
    rows = [[test.name, points(test.score, test.max_score), test.status] for test in result.tests]
    lines = _header_lines(result) + ["", text_table(["test", "points", "result"], rows, right=frozenset({1}))]
    failed = [test for test in result.tests if test.status != "passed"]
    if failed:
        lines += ["", "What went wrong:"]
        for test in failed:
            lines += ["", f"[{test.name}] {test.title}", *_test_output_lines(test.output)]
    return "\n".join(lines)


def to_gradescope(result: GradeResult) -> dict:
    """Gradescope's results.json, plus the grading status and level; seed and detail only under "instructor"."""
    return {
        "score": result.score,
        "max_score": result.max_score,
        "execution_time": result.execution_time,
        "output": "\n".join(_header_lines(result)),
        # Plain text: Gradescope's default (simple_format) and its md/html/ansi
        # formats would interpret what a submission managed to put in an output.
        "output_format": "text",
        "test_output_format": "text",
        "test_name_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "status": result.status,
        "isolation": isolation_level(result),
        "tests": [
            {
                "name": literal.for_json(f"{test.name}: {test.title}", limit=literal.INLINE_LIMIT),
                "score": test.score,
                "max_score": test.max_score,
                "status": test.status,
                "output": literal.for_json(test.output),
                "visibility": test.visibility,
                "tags": ["hidden" if test.hidden else "visible"],
            }
            for test in result.tests
        ],
        "instructor": {"seed": result.seed, "isolation_detail": literal.for_json(result.isolation_detail)},
    }


def to_junit(result: GradeResult) -> str:
    failures = sum(test.status != "passed" for test in result.tests)
    classname = literal.for_junit(f"05_autograd.{result.student}", limit=literal.INLINE_LIMIT)
    suites = ElementTree.Element("testsuites")
    suite = ElementTree.SubElement(
        suites, "testsuite", name=classname, tests=str(len(result.tests)),
        failures=str(failures), errors="0", time=f"{result.execution_time:.3f}",
    )
    properties = ElementTree.SubElement(suite, "properties")
    shown = {"status": result.status, "isolation": isolation_level(result), "score": f"{result.score:g}",
             "max_score": f"{result.max_score:g}"}
    for key, value in shown.items():
        ElementTree.SubElement(properties, "property", name=key, value=literal.for_junit(value))
    for test in result.tests:
        case = ElementTree.SubElement(suite, "testcase", classname=classname, name=test.name, time="0")
        if test.status != "passed":
            failure = ElementTree.SubElement(case, "failure", message=f"0 of {test.max_score:g} points: {test.title}")
            failure.text = literal.for_junit(test.output)
    ElementTree.indent(suites)
    return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True)


def to_markdown(result: GradeResult) -> str:
    """A summary for a CI job page (e.g. GitHub's $GITHUB_STEP_SUMMARY)."""
    message = f": {literal.markdown_inline(result.message)}" if result.message else ""
    lines = [
        f"## 05_autograd: {literal.markdown_inline(result.student)}: {result.score:g} / {result.max_score:g}",
        "",
        f"Status **{literal.markdown_inline(result.status)}**{message}"
        f" · isolation: {literal.markdown_inline(isolation_level(result))}",
        "",
        *[f"> {literal.markdown_inline(note)}" for note in result.notes],
        "",
        "| test | points | result |",
        "| --- | ---: | --- |",
    ]
    for test in result.tests:
        mark = "passed" if test.status == "passed" else "**failed**"
        lines.append(f"| `{test.name}` {test.title} | {test.score:g} / {test.max_score:g} | {mark} |")
    for test in result.tests:
        if test.status != "passed":
            lines += ["", f"<details><summary>{test.name}</summary>", "",
                      *literal.markdown_block(test.output), "", "</details>"]
    return "\n".join(lines) + "\n"
