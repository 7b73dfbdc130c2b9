"""Tables of results: the one text-table helper, and the class table and CSV every class command writes."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ElementTree

from . import literal
from .results import CellScore, ClassRow

# nbgrader export's columns, in its order, so that a spreadsheet made for it reads this file too.
NBGRADER_EXPORT_COLUMNS = ("assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                           "raw_score", "late_submission_penalty", "score", "max_score")


def text_table(header: list[str], rows: list[list[str]], *, right: frozenset[int] = frozenset(),
               separator: str = "  ") -> str:
    """Columns padded to their widest cell, a rule under the header; columns in ``right`` right-aligned.

    Cells are shown as given: a caller makes untrusted text safe (``literal``) before it gets here.
    """
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [cell.rjust(width) if i in right else cell.ljust(width)
                  for i, (cell, width) in enumerate(zip(cells, widths))]
        return separator.join(padded).rstrip()

    rule = "-" * len(line(["-" * width for width in widths]))
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def points(score: float | None, max_score: float) -> str:
    """A test's or a submission's points as "6/8"; "-" for a score still to be graded by hand."""
    return f"{'-' if score is None else format(score, 'g')}/{max_score:g}"


def score_matrix(scores: dict[str, dict[str, CellScore]]) -> str:
    """Submissions as rows, tests as numbered columns (in notebook order), points in each cell; a legend."""
    tests: list[str] = []
    for row in scores.values():  # the first row that has a test fixes its place
        tests += [grade_id for grade_id in row if grade_id not in tests]
    rows = []
    for name, row in scores.items():
        cells, total, maximum = [], 0.0, 0.0
        for test in tests:
            cell = row.get(test)
            if cell is None:
                cells.append("?")
                continue
            maximum += cell.max_score
            total += cell.score or 0.0
            cells.append("-" if cell.score is None else f"{cell.score:g}")
        rows.append([name, "|", *cells, "|", f"{total:g}/{maximum:g}"])
    header = ["", "|", *(str(i) for i in range(1, len(tests) + 1)), "|", "total"]
    numbered = frozenset(range(2, 2 + len(tests)))
    legend = [f"{i:>3}: {test}" for i, test in enumerate(tests, 1)]
    return "\n".join([text_table(header, rows, right=numbered, separator=" "), "", *legend])


def class_table(rows: list[ClassRow]) -> str:
    """Student, points and status, with the grader's message on the same line."""
    lines = [[row.student_id, points(row.score, row.max_score),
              row.status + (f" ({literal.one_line(row.message)})" if row.message else "")] for row in rows]
    return text_table(["student", "score", "status"], lines, right=frozenset({1}))


def class_csv(rows: list[ClassRow]) -> str:
    """nbgrader export's columns, then status, each test's points and the seed (an instructor's file)."""
    tests: list[str] = []
    for row in rows:
        tests += [name for name in row.tests if name not in tests]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*NBGRADER_EXPORT_COLUMNS, "status", *tests, "seed"])
    for row in rows:
        writer.writerow([*(getattr(row, column) for column in NBGRADER_EXPORT_COLUMNS), row.status,
                         *("" if row.tests.get(test) is None else row.tests[test] for test in tests),
                         "" if row.seed is None else row.seed])
    return buffer.getvalue()


def class_junit(records: dict[str, dict]) -> str:
    """One JUnit XML for a CI test reporter: a test suite per student, a test case per test.

    Built from the students' recorded results.json, whose texts ``literal``
    already made safe for JSON; ``for_junit`` makes them safe for XML.
    """
    suites = ElementTree.Element("testsuites")
    for student, data in sorted(records.items()):
        tests = [test for test in data.get("tests", []) if isinstance(test, dict)]
        failed = [test for test in tests if test.get("status") != "passed"]
        suite = ElementTree.SubElement(suites, "testsuite", name=literal.for_junit(f"05_autograd.{student}"),
                                       tests=str(len(tests)), failures=str(len(failed)), errors="0",
                                       time=f"{float(data.get('execution_time') or 0):.3f}")
        properties = ElementTree.SubElement(suite, "properties")
        for key in ("status", "score", "max_score"):
            ElementTree.SubElement(properties, "property", name=key, value=literal.for_junit(data.get(key, "")))
        for test in tests:
            name = str(test.get("name", "")).partition(":")[0]
            case = ElementTree.SubElement(suite, "testcase", classname=literal.for_junit(f"05_autograd.{student}"),
                                          name=literal.for_junit(name), time="0")
            if test in failed:
                failure = ElementTree.SubElement(case, "failure", message=literal.for_junit(
                    f"{test.get('score', 0):g} of {test.get('max_score', 0):g} points"))
                failure.text = literal.for_junit(test.get("output", ""))
    ElementTree.indent(suites)
    return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True)
