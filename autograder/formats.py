"""A GradeResult written out: readable text, Gradescope's results.json, JUnit XML, Markdown."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

from .results import GradeResult

FORMATS = ("text", "json", "junit", "markdown")


def render(result: GradeResult, fmt: str) -> str:
    if fmt == "text":
        return to_text(result)
    if fmt == "json":
        return json.dumps(to_gradescope(result), indent=2)
    if fmt == "junit":
        return to_junit(result)
    if fmt == "markdown":
        return to_markdown(result)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _header_lines(result: GradeResult) -> list[str]:
    lines = [
        f"student:   {result.student}  ({result.submission})",
        f"status:    {result.status}" + (f": {result.message}" if result.message else ""),
        f"score:     {result.score:g} / {result.max_score:g}",
        f"seed:      {result.seed}   (regrade with --seed {result.seed} to reproduce)",
        f"isolation: {result.isolation}",
    ]
    return lines + [f"note:      {note}" for note in result.notes]


def to_text(result: GradeResult) -> str:
    width = max((len(test.name) for test in result.tests), default=10)
    lines = _header_lines(result) + ["", f"{'test':<{width}}  points   result", "-" * (width + 20)]
    for test in result.tests:
        lines.append(f"{test.name:<{width}}  {test.score:>2g}/{test.max_score:<3g}  {test.status}")
    failed = [test for test in result.tests if test.status != "passed"]
    if failed:
        lines += ["", "What went wrong:"]
        for test in failed:
            lines += ["", f"[{test.name}] {test.title}", *("    " + line for line in test.output.splitlines())]
    return "\n".join(lines)


def to_gradescope(result: GradeResult) -> dict:
    """Gradescope's results.json, plus the submission's grading status, seed and isolation."""
    return {
        "score": result.score,
        "max_score": result.max_score,
        "execution_time": result.execution_time,
        "output": "\n".join(_header_lines(result)),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "status": result.status,
        "seed": result.seed,
        "isolation": result.isolation,
        "tests": [
            {
                "name": f"{test.name}: {test.title}",
                "score": test.score,
                "max_score": test.max_score,
                "status": test.status,
                "output": test.output,
                "visibility": test.visibility,
                "tags": ["hidden" if test.hidden else "visible"],
            }
            for test in result.tests
        ],
    }


def to_junit(result: GradeResult) -> str:
    failures = sum(test.status != "passed" for test in result.tests)
    suites = ElementTree.Element("testsuites")
    suite = ElementTree.SubElement(
        suites, "testsuite", name=f"05_autograd.{result.student}", tests=str(len(result.tests)),
        failures=str(failures), errors="0", time=f"{result.execution_time:.3f}",
    )
    properties = ElementTree.SubElement(suite, "properties")
    for key in ("status", "seed", "isolation", "score", "max_score"):
        ElementTree.SubElement(properties, "property", name=key, value=str(getattr(result, key)))
    for test in result.tests:
        case = ElementTree.SubElement(suite, "testcase", classname=f"05_autograd.{result.student}",
                                      name=test.name, time="0")
        if test.status != "passed":
            failure = ElementTree.SubElement(case, "failure", message=f"0 of {test.max_score:g} points: {test.title}")
            failure.text = test.output
    ElementTree.indent(suites)
    return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True)


def to_markdown(result: GradeResult) -> str:
    """A summary for a CI job page (e.g. GitHub's $GITHUB_STEP_SUMMARY)."""
    lines = [
        f"## 05_autograd: {result.student}: {result.score:g} / {result.max_score:g}",
        "",
        f"Status **{result.status}**" + (f": {result.message}" if result.message else "")
        + f" · seed `{result.seed}` · isolation: {result.isolation}",
        "",
        *[f"> {note}" for note in result.notes],
        "",
        "| test | points | result |",
        "| --- | ---: | --- |",
    ]
    for test in result.tests:
        mark = "passed" if test.status == "passed" else "**failed**"
        lines.append(f"| `{test.name}` {test.title} | {test.score:g} / {test.max_score:g} | {mark} |")
    for test in result.tests:
        if test.status != "passed":
            lines += ["", f"<details><summary>{test.name}</summary>", "", "```", test.output, "```", "</details>"]
    return "\n".join(lines) + "\n"
