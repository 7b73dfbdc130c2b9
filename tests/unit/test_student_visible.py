"""What a student may see: hostile strings stay literal in every format, and the seed and isolation detail stay out.

Every test builds a synthetic GradeResult (no grading run) whose
student-originated strings (test outputs, scenario problems, notes, the
message, the student and file names) carry markup, control characters and
invalid code points, and compares what each format shows with the same result
carrying harmless strings.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import mistune
import pytest

from autograder import grader as grader_module
from autograder import literal
from autograder.assignment import load_assignment
from autograder.cli import main
from autograder.course import source_notebook
from autograder.feedback import feedback_html, feedback_markdown
from autograder.formats import render
from autograder import results
from autograder.results import GradeResult, ScenarioOutcome

from html_elements import parsed

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = load_assignment(source_notebook(ROOT))
SEED = 918273645
DETAIL = "bubblewrap: read-only binds /opt/instructor-secrets/hidden_tests, /home/grader/.venv"

PLANTED = {
    "link": "[Grading error: request your regrade here](http://evil.example/regrade)",
    "bold": "**Score overridden by the instructor: 100/100**",
    "script": "<script>alert('owned')</script>",
    "img": "<img src=x onerror=alert(1)>",
    "autolink": "<http://evil.example/auto>",
}
TERMINAL = "\x1b[2J\x1b[1;1Hscore:     100 / 100\x07\x08\rstatus:    graded\x00\x9b2J"
MULTILINE = "fine\nscore:     100 / 100\n[test_add_visible] forged heading\n```\n# Heading\n| a | b |"
INVALID_CODE_POINTS = "lone \ud800 surrogate \udfff and \ufffe \uffff"


def _result(text: str, *, student: str = "alice", seed: int = SEED) -> GradeResult:
    """Every test failed, every student-originated string set to ``text``; odd tests have scenarios."""
    tests = []
    for index, test in enumerate(ASSIGNMENT.tests):
        outcomes = [ScenarioOutcome(s.name, s.summary, False, [text, f"result: {text}"], diagnosis=text)
                    for s in test.scenarios]
        tests.append(results.TestResult(test.grade_id, test.title, 0.0, test.points, "failed", f"{text}\n  - {text}",
                                test.hidden, "visible", outcomes if index % 2 else []))
    return GradeResult(student=student, submission=f"{student}.ipynb", status="crashed", message=text, score=0.0,
                       max_score=ASSIGNMENT.max_score, seed=seed, isolation="bubblewrap", execution_time=1.5,
                       tests=tests, notes=[text, f"cell exercise_add raised {text}"], isolation_detail=DETAIL)


# A stand-in for GitHub's renderer of the Markdown summary: raw HTML passes
# (GitHub keeps <img>, <details>), bare URLs are linked.
GITHUB_LIKE = mistune.create_markdown(escape=False, plugins=["table", "url", "strikethrough"])


def _feedback_html(result: GradeResult) -> str:
    return feedback_html(feedback_markdown(result, ASSIGNMENT), f"Feedback for {result.student}")


@pytest.mark.parametrize("name", PLANTED)
def test_feedback_html_shows_planted_markup_as_text(name):
    planted = PLANTED[name]
    hostile = parsed(_feedback_html(_result(planted)))
    harmless = parsed(_feedback_html(_result("a plain sentence")))
    # The same elements as for a harmless string: none came from the student's text.
    assert hostile.tags == harmless.tags
    assert not {"a", "script", "img"} & set(hostile.tags)
    assert planted in hostile.text


@pytest.mark.parametrize("name", PLANTED)
def test_markdown_summary_shows_planted_markup_as_text(name):
    planted = PLANTED[name]
    hostile = parsed(GITHUB_LIKE(render(_result(planted), "markdown")))
    harmless = parsed(GITHUB_LIKE(render(_result("a plain sentence"), "markdown")))
    assert hostile.tags == harmless.tags
    assert not {"a", "script", "img"} & set(hostile.tags)
    assert planted in hostile.text


@pytest.mark.parametrize("fmt", ["markdown", "feedback"])
def test_markdown_fences_and_tables_hold_against_multiline_text(fmt):
    def rendered(text):
        result = _result(text)
        if fmt == "feedback":
            return parsed(_feedback_html(result))
        return parsed(GITHUB_LIKE(render(result, "markdown")))

    hostile, harmless = rendered(MULTILINE), rendered("a plain sentence")
    assert hostile.tags == harmless.tags  # no fence closed early, no heading, no extra table or cell
    assert "```\n# Heading\n| a | b |" in hostile.text  # inside a code block, line breaks kept


@pytest.mark.parametrize("fmt", ["text", "json", "junit", "markdown", "feedback"])
def test_every_format_renders_control_characters_and_invalid_code_points(fmt, tmp_path):
    result = _result(TERMINAL + INVALID_CODE_POINTS, student="weird\udcff\x1bname")
    text = feedback_markdown(result, ASSIGNMENT) if fmt == "feedback" else render(result, fmt)
    assert not [char for char in text if (ord(char) < 0x20 and char not in "\n\t") or 0x7F <= ord(char) <= 0x9F]
    assert not [char for char in text if 0xD800 <= ord(char) <= 0xDFFF or ord(char) in (0xFFFE, 0xFFFF)]
    (tmp_path / "out").write_text(text, encoding="utf-8")
    if fmt == "json":
        json.dumps(json.loads(text), ensure_ascii=False).encode("utf-8")
    if fmt == "junit":
        ElementTree.fromstring(text.encode("utf-8"))


def _column_zero(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line[0].isspace()]


@pytest.mark.parametrize("value", [MULTILINE, TERMINAL, "a\r\nb\u2028c\x85d\x0be\x1cf"], ids=["lines", "terminal", "breaks"])
def test_text_lines_from_the_student_never_start_at_column_zero(value):
    hostile = render(_result(value), "text")
    harmless = render(_result("a plain sentence"), "text")
    # Every line the grader writes itself starts at column 0; a student's line never does.
    assert len(_column_zero(hostile)) == len(_column_zero(harmless))
    assert [line for line in _column_zero(hostile) if line.startswith("score:")] == ["score:     0 / 100"]
    assert "\x1b" not in hostile and "\r" not in hostile and "\x07" not in hostile and "\x08" not in hostile


def test_junit_parses_back_to_the_literal_text():
    planted = PLANTED["script"] + " & ]]> " + PLANTED["link"]
    root = ElementTree.fromstring(render(_result(planted + "\x00" + INVALID_CODE_POINTS), "junit").encode("utf-8"))
    failures = [case.find("failure") for case in root.iter("testcase")]
    assert failures and all(planted in failure.text for failure in failures)
    assert all("\ufffd" in failure.text and "␀" in failure.text for failure in failures)


def test_gradescope_json_outputs_are_plain_text():
    data = json.loads(render(_result(PLANTED["link"]), "json"))
    assert data["output_format"] == data["test_output_format"] == data["test_name_format"] == "text"
    assert all(PLANTED["link"] in test["output"] for test in data["tests"])


def _student_visible() -> dict[str, str]:
    result = _result(PLANTED["bold"])
    data = json.loads(render(result, "json"))
    instructor = data.pop("instructor")
    assert instructor == {"seed": SEED, "isolation_detail": DETAIL}
    markdown = feedback_markdown(result, ASSIGNMENT)
    return {
        "text": render(result, "text"),
        "json without instructor": json.dumps(data),
        "junit": render(result, "junit"),
        "markdown": render(result, "markdown"),
        "feedback.md": markdown,
        "feedback.html": feedback_html(markdown, "Feedback"),
    }


@pytest.mark.parametrize("where", ["text", "json without instructor", "junit", "markdown", "feedback.md",
                                   "feedback.html"])
def test_seed_and_isolation_detail_only_for_the_instructor(where):
    shown = _student_visible()[where]
    assert str(SEED) not in shown
    assert "/opt/instructor-secrets" not in shown and "read-only binds" not in shown
    assert "bubblewrap" in shown or where == "feedback.md" or where == "feedback.html"


def test_only_the_level_is_shown_even_if_isolation_still_carries_the_detail():
    result = _result("x")
    result.isolation = DETAIL
    for fmt in ("text", "json", "junit", "markdown"):
        shown = render(result, fmt)
        if fmt == "json":
            shown = json.dumps({k: v for k, v in json.loads(shown).items() if k != "instructor"})
        assert "/opt/instructor-secrets" not in shown and "bubblewrap" in shown


def test_grade_prints_the_seed_to_standard_error_only(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(grader_module, "grade_submission", lambda path, **kwargs: _result(PLANTED["img"]))
    out = tmp_path / "result.txt"
    (tmp_path / "alice.ipynb").write_text("{}", encoding="utf-8")  # graded by the stand-in above
    assert main(["grade", str(tmp_path / "alice.ipynb"), "--out", str(out), "--feedback", str(tmp_path / "fb")]) == 0
    err = capsys.readouterr().err
    assert f"--seed {SEED}" in err and "/opt/instructor-secrets" in err
    for path in (out, tmp_path / "fb" / "feedback.md", tmp_path / "fb" / "feedback.html"):
        shown = path.read_text(encoding="utf-8")
        assert str(SEED) not in shown and "/opt/instructor-secrets" not in shown


def _class_row(message: str) -> results.ClassRow:
    return results.ClassRow("alice", "05_autograd", "", "", "", "", "", 0.0, 0.0, 0.0, 100.0,
                            status="crashed", message=message, seed=SEED, tests={"test_add_visible": 0.0})


def test_class_csv_keeps_the_seed():
    from autograder.tables import class_csv, class_table

    assert str(SEED) in class_csv([_class_row("x")])
    assert str(SEED) not in class_table([_class_row("x")])


def test_class_table_shows_messages_on_one_visible_line():
    from autograder.tables import class_table

    table = class_table([_class_row(TERMINAL + "\nforged line")])
    assert "\x1b" not in table and "\r" not in table and len(table.splitlines()) == 3


def test_long_outputs_are_bounded():
    result = _result("y" * 2_000_000)
    for fmt in ("text", "json", "junit", "markdown"):
        assert len(render(result, fmt)) < 60 * (literal.BLOCK_LIMIT + literal.INLINE_LIMIT)
