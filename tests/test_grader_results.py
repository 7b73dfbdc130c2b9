"""The trusted grader's results: formats, gradebook, feedback, seeds, and refusing to run unsandboxed."""

from __future__ import annotations

import copy
import csv
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import nbformat
import pytest

from autograder import grader as grader_module
from autograder import sandbox
from autograder.assignment import load_assignment
from autograder.variants import instructor_bodies, load_variants, submission_notebook, variant_notebook
from autograder.course import copy_course, nbgrader, release_notebook, source_notebook
from autograder.feedback import explanation, feedback_html, feedback_markdown, write_feedback
from autograder.formats import render
from autograder.gradebook import record, scores_in_gradebook
from autograder.grader import SandboxUnavailable, grade_submission
from autograder.results import GradeResult

pytestmark = [pytest.mark.sandbox, pytest.mark.nbgrader]

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = load_assignment(source_notebook(ROOT))
UNSANDBOXED = sandbox.detect_isolation().level == "none"


def _write(notebook, path: Path) -> Path:
    nbformat.write(notebook, path)
    return path


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    release_nb = nbformat.read(release_notebook(ROOT), as_version=4)
    source_nb = nbformat.read(source_notebook(ROOT), as_version=4)
    variants = {v.name: v for v in load_variants(ROOT / "corpus" / "validity.py")}
    return {
        "blank": _write(release_nb, folder / "blank.ipynb"),
        "instructor": _write(submission_notebook(release_nb, instructor_bodies(source_nb)), folder / "instructor.ipynb"),
        "first_arrival": _write(variant_notebook(variants["backward_propagates_first_arrival"], root=ROOT),
                                folder / "first_arrival.ipynb"),
        "mul_swapped": _write(variant_notebook(variants["mul_swapped_operands"], root=ROOT),
                              folder / "mul_swapped.ipynb"),
        "scratch": _write(variant_notebook(variants["correct_scratch_cell_that_raises"], root=ROOT),
                          folder / "scratch.ipynb"),
    }


@pytest.fixture(scope="module")
def graded(notebooks):
    return {name: grade_submission(path, root=ROOT, student=name, base_seed=7, allow_unsandboxed=UNSANDBOXED)
            for name, path in notebooks.items()}


def test_scores_and_status(graded):
    assert (graded["instructor"].score, graded["instructor"].status) == (100, "graded")
    assert (graded["blank"].score, graded["blank"].status) == (0, "graded")
    assert 0 < graded["first_arrival"].score < 100
    assert graded["instructor"].isolation.split(":")[0] == sandbox.detect_isolation().level


def test_a_scratch_cell_that_raises_costs_nothing_and_is_named(graded):
    """Cells the student added run where they stand; one that raises is reported by its number and line."""
    scratch = graded["scratch"]
    assert (scratch.score, scratch.status) == (100, "graded")
    raised = [note for note in scratch.notes if "AttributeError" in note]
    assert len(raised) == 1 and "your cell 9" in raised[0] and "t.grad.shape_of_it" in raised[0], scratch.notes


def test_same_seed_same_grade_and_messages(notebooks, graded):
    again = grade_submission(notebooks["first_arrival"], root=ROOT, student="first_arrival", base_seed=7,
                             allow_unsandboxed=UNSANDBOXED)
    assert [(t.name, t.score, t.output) for t in again.tests] == \
           [(t.name, t.score, t.output) for t in graded["first_arrival"].tests]


def test_failed_test_explains_itself(graded):
    order = next(t for t in graded["first_arrival"].tests if t.name == "hidden_backward_order")
    assert order.status == "failed" and order.score == 0
    assert "wait for both contributions" in order.output  # the scenario's explanation
    assert "x.grad: expected" in order.output and ", got" in order.output


def test_gradescope_json_shape(graded):
    data = json.loads(render(graded["first_arrival"], "json"))
    assert {"score", "execution_time", "output", "tests", "status", "isolation", "instructor"} <= set(data)
    # The seed is instructor-only: kept out of the top level Gradescope shows, kept under "instructor".
    assert "seed" not in data and data["instructor"]["seed"] == graded["first_arrival"].seed
    assert data["isolation"] == sandbox.detect_isolation().level
    assert data["score"] == sum(test["score"] for test in data["tests"])
    for test in data["tests"]:
        assert {"name", "score", "max_score", "status", "output", "visibility"} <= set(test)
        assert test["status"] in ("passed", "failed")
        assert test["visibility"] in ("visible", "hidden", "after_due_date", "after_published")
    hidden = [t for t in data["tests"] if "hidden" in t["tags"]]
    assert hidden and all(t["visibility"] == "after_due_date" for t in hidden)


def test_junit_xml_counts_failures(graded):
    root = ElementTree.fromstring(render(graded["first_arrival"], "junit").split("?>", 1)[1])
    suite = root.find("testsuite")
    failures = [case for case in suite.findall("testcase") if case.find("failure") is not None]
    assert int(suite.get("failures")) == len(failures) > 0
    assert int(suite.get("tests")) == len(ASSIGNMENT.tests)


def test_text_and_markdown_name_every_test(graded):
    for fmt in ("text", "markdown"):
        text = render(graded["first_arrival"], fmt)
        assert all(test.grade_id in text for test in ASSIGNMENT.tests)
        assert "seed" not in text  # instructor-only (the command line prints it to standard error)


def test_feedback_draws_the_graph_and_marks_the_wrong_gradient(graded):
    markdown = feedback_markdown(graded["first_arrival"], ASSIGNMENT)
    assert "──► [PowBackward] ──► y" in markdown
    assert " x (leaf, shape ())    ◄── x.grad differs\n" in markdown
    # The values are in the sentences above the drawing, so no line of a drawing grows with them.
    drawings = re.findall(r"```\n(.*?)```", markdown, flags=re.S)
    assert drawings and max(len(line) for block in drawings for line in block.splitlines()) < 100


def test_feedback_points_at_the_wrong_node(graded):
    """MulBackward with swapped operands: the graph marks the MulBackward, and the text names it."""
    outcome = next(o for t in graded["mul_swapped"].tests for o in t.scenarios if o.name == "scenario_mul_worked_example")
    assert outcome.culprit == 0 and outcome.diagnosis.startswith("MulBackward is probably where it goes wrong")
    markdown = feedback_markdown(graded["mul_swapped"], ASSIGNMENT)
    assert "├──► [MulBackward] ──► z    ◄── probably wrong here\n" in markdown
    assert "**Where to look:** MulBackward is probably where it goes wrong" in markdown
    # In the JSON and text outputs too, under the scenario's differences.
    assert "Where: MulBackward is probably where it goes wrong" in render(graded["mul_swapped"], "text")


def test_feedback_points_at_backward_when_every_node_is_right(graded):
    """A backward() that passes a gradient on too early: each node alone answers right, so the walk is at fault."""
    outcome = next(o for t in graded["first_arrival"].tests for o in t.scenarios
                   if o.name == "scenario_backward_shared_input")
    assert not outcome.passed and outcome.culprit is None
    assert "the difference comes from backward()" in outcome.diagnosis
    assert "probably wrong here" not in feedback_markdown(graded["first_arrival"], ASSIGNMENT)


def test_the_diagnosis_never_changes_a_score(notebooks, graded, monkeypatch):
    monkeypatch.setattr(grader_module, "MAX_DIAGNOSED_SCENARIOS", 0)
    again = grade_submission(notebooks["mul_swapped"], root=ROOT, student="mul_swapped", base_seed=7,
                             allow_unsandboxed=UNSANDBOXED)
    assert not any(o.diagnosis for t in again.tests for o in t.scenarios)
    assert [(t.name, t.score) for t in again.tests] == [(t.name, t.score) for t in graded["mul_swapped"].tests]
    assert (again.status, again.notes) == (graded["mul_swapped"].status, graded["mul_swapped"].notes)


def test_feedback_shows_explanations_as_written():
    """Code in an explanation (y**3 - (-y)) must not render as bold; backtick spans stay code."""
    summary = ("y = x ** 2 is used twice: d/dx (y**3 - (-y)) = (3 y**2 + 1) * 2x = 8\n"
               "at x = 1. Inside `with no_grad():` nothing is recorded.")
    html_text = feedback_html("\n".join(explanation(summary)), "t")
    assert "<strong>" not in html_text and "<em>" not in html_text
    assert "d/dx (y**3 - (-y)) = (3 y**2 + 1) * 2x = 8 at x = 1. Inside <code>with no_grad():</code> nothing" \
        in html_text


def test_feedback_never_contains_hidden_test_source(graded):
    markdown = feedback_markdown(graded["first_arrival"], ASSIGNMENT)
    hidden_lines = {line.strip() for test in ASSIGNMENT.tests if test.hidden for scenario in test.scenarios
                    for line in scenario.source.splitlines()[1:] if len(line.strip()) > 12
                    and not line.strip().startswith(('"""', "'''"))}
    docstrings = "\n".join(s.summary for t in ASSIGNMENT.tests for s in t.scenarios)
    leaked = [line for line in hidden_lines if line in markdown and line not in docstrings]
    assert leaked == []


def test_feedback_html_escapes_what_came_from_the_submission(graded):
    result = copy.deepcopy(graded["blank"])
    result.tests[0].scenarios[0].problems.append("<script>alert('x')</script>")
    html_text = feedback_html(feedback_markdown(result, ASSIGNMENT), "t")
    assert "<script>alert" not in html_text and "&lt;script&gt;" in html_text


def test_write_feedback_files(graded, tmp_path):
    markdown_path, html_path = write_feedback(graded["instructor"], ASSIGNMENT, tmp_path / "fb")
    assert "100 / 100" in markdown_path.read_text() and html_path.read_text().startswith("<!DOCTYPE html>")


def test_refuses_without_a_sandbox_unless_told(notebooks, monkeypatch):
    none = sandbox.Isolation("none", "no namespaces here", "apt-get install bubblewrap")
    monkeypatch.setattr(sandbox, "detect_isolation", lambda: none)
    with pytest.raises(SandboxUnavailable, match="--unsafe-no-sandbox"):
        grade_submission(notebooks["blank"], root=ROOT)
    assert grade_submission(notebooks["blank"], root=ROOT, allow_unsandboxed=True).isolation.startswith("none")


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return copy_course(ROOT, tmp_path_factory.mktemp("course"))


def test_recording_into_a_new_gradebook_never_rewrites_the_release(graded, tmp_path):
    """The gradebook learns the assignment from source/; release/ stays as `release` checked it."""
    from autograder.gradebook import assignment_in_gradebook

    course = copy_course(ROOT, tmp_path / "course")
    released = release_notebook(course)
    before = (released.read_bytes(), released.stat().st_mtime_ns)
    assert not assignment_in_gradebook(course)
    record(graded["instructor"], root=course)
    assert assignment_in_gradebook(course)
    assert (released.read_bytes(), released.stat().st_mtime_ns) == before
    assert sum(score for score, _ in scores_in_gradebook("instructor", root=course).values()) == 100


def test_gradebook_record_replaces_and_nbgrader_export_sees_it(graded, course):
    record(graded["first_arrival"], root=course)
    record(graded["instructor"], root=course)
    first = scores_in_gradebook("first_arrival", root=course)
    assert sum(score for score, _ in first.values()) == graded["first_arrival"].score
    assert not any(needs_manual for _, needs_manual in first.values())
    # Grading the same student again replaces the scores.
    replaced = GradeResult(**{**graded["blank"].__dict__, "student": "first_arrival"})
    record(replaced, root=course)
    assert sum(score for score, _ in scores_in_gradebook("first_arrival", root=course).values()) == 0
    nbgrader("export", root=course)
    rows = {row["student_id"]: row for row in csv.DictReader((course / "grades.csv").open())}
    assert set(rows) == {"first_arrival", "instructor"}
    assert float(rows["instructor"]["raw_score"]) == 100
    assert float(rows["first_arrival"]["raw_score"]) == 0


def test_grade_command_exit_code_and_json_file(notebooks, tmp_path):
    out = tmp_path / "results.json"
    command = [sys.executable, "-m", "autograder", "grade", str(notebooks["blank"]), "--format", "json",
               "--out", str(out), "--seed", "3", "--feedback", str(tmp_path / "fb")]
    if UNSANDBOXED:
        command.append("--unsafe-no-sandbox")
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(out.read_text())["score"] == 0
    assert "--seed 3" in run.stderr  # the instructor learns how to reproduce the grade
    assert (tmp_path / "fb" / "feedback.html").exists()


def test_report_command_reads_the_gradebook(graded, course, tmp_path, capsys):
    from autograder.cli import main

    record(graded["instructor"], root=course)
    out = tmp_path / "class.csv"
    assert main(["--root", str(course), "report", "--csv", str(out)]) == 0
    assert "instructor" in capsys.readouterr().out
    rows = {row["student_id"]: row for row in csv.DictReader(out.open())}
    assert float(rows["instructor"]["score"]) == 100 and rows["instructor"]["status"] == "graded"
    assert rows["instructor"]["seed"] == str(graded["instructor"].seed)


def test_report_and_grade_class_write_one_csv_with_nbgrader_exports_columns(graded, course, tmp_path):
    """The class CSV starts with nbgrader export's columns and values, then status, tests and seed."""
    from autograder.tables import NBGRADER_EXPORT_COLUMNS

    record(graded["first_arrival"], root=course)
    nbgrader("export", "--to", str(tmp_path / "export.csv"), root=course)
    exported = {row["student_id"]: row for row in csv.DictReader((tmp_path / "export.csv").open())}
    from autograder.cli import main

    assert main(["--root", str(course), "report", "--csv", str(tmp_path / "ours.csv")]) == 0
    with (tmp_path / "ours.csv").open() as handle:
        header = next(csv.reader(handle))
        handle.seek(0)
        ours = {row["student_id"]: row for row in csv.DictReader(handle)}
    assert tuple(header[:len(NBGRADER_EXPORT_COLUMNS)]) == NBGRADER_EXPORT_COLUMNS
    assert header[len(NBGRADER_EXPORT_COLUMNS)] == "status" and header[-1] == "seed"
    assert set(ours) == set(exported)
    for student, row in exported.items():
        for column in ("assignment", "student_id", "timestamp"):
            assert ours[student][column] == row[column], (student, column)
        for column in ("raw_score", "late_submission_penalty", "score", "max_score"):
            assert float(ours[student][column]) == float(row[column]), (student, column)
    assert ours["first_arrival"]["status"] == "graded"
    assert float(ours["first_arrival"]["hidden_backward_order"]) == 0


def test_grade_class_goes_on_when_the_grader_fails_on_one_submission(notebooks, tmp_path, monkeypatch):
    """A grader failure is tried once more (dave's first try fails), then recorded as grader_error (bob)."""
    from autograder import classroom
    from autograder.course import ASSIGNMENT as ASSIGNMENT_ID, NOTEBOOK

    course = copy_course(ROOT, tmp_path / "course")
    for student in ("alice", "bob", "carol", "dave"):
        folder = course / "submitted" / student / ASSIGNMENT_ID
        folder.mkdir(parents=True)
        shutil.copy(notebooks["instructor"], folder / NOTEBOOK)
    real = classroom.grade_submission
    tries = []

    def breaks_on_bob_and_once_on_dave(path, **kwargs):
        tries.append(kwargs["student"])
        if kwargs["student"] == "bob" or tries == ["alice", "bob", "bob", "carol", "dave"]:
            raise RecursionError("a grader bug")
        return real(path, **kwargs)

    monkeypatch.setattr(classroom, "grade_submission", breaks_on_bob_and_once_on_dave)
    run = classroom.grade_class(course, workers=1, base_seed=5, allow_unsandboxed=UNSANDBOXED, show_progress=False)
    statuses = {result.student: (result.status, result.score) for result in run.graded}
    assert statuses == {"alice": ("graded", 100), "bob": ("grader_error", 0), "carol": ("graded", 100),
                        "dave": ("graded", 100)}
    assert tries == ["alice", "bob", "bob", "carol", "dave", "dave"]
    assert sum(score for score, _ in scores_in_gradebook("bob", root=course).values()) == 0
