"""The class report: how the class did, and which behaviour it struggles with.

Written after every class run from the gradebook (``ClassRow``) and the
students' recorded results.json, as three things in the outputs folder:

- ``report.html``: one self-contained page (its charts are embedded PNGs), to
  open in a browser or attach to a message;
- ``report.md`` with ``score_histogram.png`` and ``pass_rates.png`` beside
  it, for a CI job summary;
- the charts themselves, drawn with matplotlib (its Agg canvas, no display).

What it shows: the score distribution, each test's pass rate, the statuses,
and for every test that some students failed, the most common wrong answer.
Answers are compared with their numbers blanked out, so that the same mistake
on different random inputs counts once.  Every text that came from a
submission is escaped (``literal``).
"""

from __future__ import annotations

import base64
import io
import re
from collections import Counter
from pathlib import Path

from . import literal
from .results import ClassRow

# In a wrong answer, the values change with the random inputs; shapes and the notebook's steps do not.
KEPT = re.compile(r"\(shape \([^()]*\)\)|Step \d+")
VALUE = re.compile(r"-?\d+(\.\d*)?(e[-+]?\d+)?")
ARRAY = re.compile(r"\[[^\[\]]*(\[[^\[\]]*\][^\[\]]*)*\]")


def write_report(folder: Path, rows: list[ClassRow], records: dict[str, dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    facts = class_facts(rows, records)
    charts = {"score_histogram.png": _histogram(facts), "pass_rates.png": _pass_rates(facts)}
    for name, png in charts.items():
        (folder / name).write_bytes(png)
    (folder / "report.md").write_text(_markdown(facts), encoding="utf-8")
    html_path = folder / "report.html"
    html_path.write_text(_html(facts, charts), encoding="utf-8")
    return html_path


def class_facts(rows: list[ClassRow], records: dict[str, dict]) -> dict:
    """Everything the report says, as plain data (also what its tests check)."""
    tests: list[str] = []
    for row in rows:
        tests += [name for name in row.tests if name not in tests]
    passed = {test: 0 for test in tests}
    graded = {test: 0 for test in tests}
    wrong: dict[str, Counter] = {test: Counter() for test in tests}
    for row in rows:
        record = records.get(row.student_id) or {}
        outputs = {str(t.get("name", "")).partition(":")[0]: t for t in record.get("tests", []) if isinstance(t, dict)}
        for test in tests:
            if test not in row.tests:
                continue
            graded[test] += 1
            entry = outputs.get(test, {})
            if entry.get("status") == "passed":
                passed[test] += 1
            else:
                wrong[test][_first_problem(str(entry.get("output", "")))] += 1
    return {
        "students": len(rows),
        "max_score": rows[0].max_score if rows else 0.0,
        "scores": [row.score for row in rows],
        "statuses": Counter(row.status or "not recorded by this grader" for row in rows),
        "pass_rates": {test: (passed[test] / graded[test] if graded[test] else 0.0) for test in tests},
        "most_common_wrong": {test: wrong[test].most_common(1)[0] + (graded[test] - passed[test],)
                              for test in tests if wrong[test]},
        "rows": rows,
    }


def _first_problem(output: str) -> str:
    """The first difference a test's output lists, with its numbers and arrays blanked out."""
    lines = [line.strip()[2:] for line in output.splitlines() if line.strip().startswith("- ")]
    text = lines[0] if lines else (output.strip().splitlines() or ["(no message)"])[0]
    pieces = KEPT.split(text)
    kept = KEPT.findall(text)
    blanked = [VALUE.sub("…", ARRAY.sub("[…]", piece)) for piece in pieces]
    return "".join(part for pair in zip(blanked, kept + [""]) for part in pair)[:300]


# -- charts


def _figure():
    from matplotlib.figure import Figure

    return Figure(figsize=(7, 3.2), dpi=100, layout="constrained")


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _histogram(facts: dict) -> bytes:
    figure = _figure()
    axes = figure.add_subplot()
    top = facts["max_score"] or 100.0
    axes.hist(facts["scores"], bins=[top * i / 10 for i in range(11)], color="#4477aa", edgecolor="white")
    axes.set_xlabel(f"score (of {top:g})")
    axes.set_ylabel("students")
    axes.set_title(f"Scores of {facts['students']} students")
    return _png(figure)


def _pass_rates(facts: dict) -> bytes:
    rates = facts["pass_rates"]
    figure = _figure()
    figure.set_size_inches(7, 0.3 * len(rates) + 1.2)
    axes = figure.add_subplot()
    names = list(rates)[::-1]
    axes.barh(names, [100 * rates[name] for name in names], color="#228833")
    axes.set_xlim(0, 100)
    axes.set_xlabel("students who passed (%)")
    axes.tick_params(axis="y", labelsize=8)
    return _png(figure)


# -- the two documents


def _status_lines(facts: dict) -> list[tuple[str, int]]:
    return sorted(facts["statuses"].items(), key=lambda item: -item[1])


def _markdown(facts: dict) -> str:
    scores = facts["scores"]
    mean = sum(scores) / len(scores) if scores else 0.0
    lines = ["# Class report: Module 05 (Autograd)", "",
             f"{facts['students']} students; mean score {mean:.1f} of {facts['max_score']:g}.", "",
             "![Score histogram](score_histogram.png)", "", "## Statuses", "", "| status | students |",
             "| --- | ---: |"]
    lines += [f"| {literal.markdown_inline(status)} | {count} |" for status, count in _status_lines(facts)]
    lines += ["", "## Each test's pass rate", "", "![Pass rates](pass_rates.png)", "",
              "| test | passed | most common wrong answer (students) |", "| --- | ---: | --- |"]
    for test, rate in facts["pass_rates"].items():
        answer, count, failed = facts["most_common_wrong"].get(test, ("", 0, 0))
        shown = f"{literal.markdown_inline(answer)} ({count} of {failed})" if answer else ""
        lines.append(f"| `{test}` | {100 * rate:.0f}% | {shown} |")
    lines += ["", "## Students", "", "| student | score | status |", "| --- | ---: | --- |"]
    lines += [f"| {literal.markdown_inline(row.student_id)} | {row.score:g} / {row.max_score:g} | "
              f"{literal.markdown_inline(row.status)} |" for row in facts["rows"]]
    return "\n".join(lines) + "\n"


def _html(facts: dict, charts: dict[str, bytes]) -> str:
    def image(name: str, alt: str) -> str:
        data = base64.b64encode(charts[name]).decode()
        return f'<img src="data:image/png;base64,{data}" alt="{alt}">'

    scores = facts["scores"]
    mean = sum(scores) / len(scores) if scores else 0.0
    status_rows = "".join(f"<tr><td>{literal.for_html(status)}</td><td>{count}</td></tr>"
                          for status, count in _status_lines(facts))
    test_rows = ""
    for test, rate in facts["pass_rates"].items():
        answer, count, failed = facts["most_common_wrong"].get(test, ("", 0, 0))
        shown = f"{literal.for_html(answer)} ({count} of {failed})" if answer else ""
        test_rows += f"<tr><td><code>{literal.for_html(test)}</code></td><td>{100 * rate:.0f}%</td><td>{shown}</td></tr>"
    student_rows = "".join(
        f"<tr><td>{literal.for_html(row.student_id)}</td><td>{row.score:g} / {row.max_score:g}</td>"
        f"<td>{literal.for_html(row.status)}</td></tr>" for row in facts["rows"])
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Class report: Module 05 (Autograd)</title>"
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto}table{border-collapse:collapse;"
        "margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}img{max-width:100%}</style>"
        "</head><body>\n<h1>Class report: Module 05 (Autograd)</h1>\n"
        f"<p>{facts['students']} students; mean score {mean:.1f} of {facts['max_score']:g}.</p>\n"
        f"{image('score_histogram.png', 'Score histogram')}\n"
        "<h2>Statuses</h2>\n<table><tr><th>status</th><th>students</th></tr>" + status_rows + "</table>\n"
        "<h2>Each test's pass rate</h2>\n" + image("pass_rates.png", "Pass rates") + "\n"
        "<table><tr><th>test</th><th>passed</th><th>most common wrong answer (students)</th></tr>"
        + test_rows + "</table>\n<h2>Students</h2>\n<table><tr><th>student</th><th>score</th><th>status</th></tr>"
        + student_rows + "</table>\n</body></html>\n"
    )
