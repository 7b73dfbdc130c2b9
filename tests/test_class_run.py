"""Grading a class end to end: outputs, late penalties through nbgrader, nbgrader's feedback, the report,
keeping what is unchanged, and resuming after the run is killed with SIGKILL."""

from __future__ import annotations

import csv
import datetime as dt
import html
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from autograder import sandbox
from autograder.assignment import load_assignment
from autograder.checks import secret_only_lines
from autograder.classroom import grade_class
from autograder.course import ASSIGNMENT, copy_course, nbgrader, source_notebook
from autograder.gradebook import ensure_assignment, gradebook_url, scores_in_gradebook
from autograder.variants import instructor_notebook, load_variants, variant_notebook

pytestmark = [pytest.mark.sandbox, pytest.mark.nbgrader]

ROOT = Path(__file__).resolve().parents[1]
UNSANDBOXED = sandbox.detect_isolation().level == "none"
DUE = dt.datetime(2026, 12, 1, 12, 0, 0)


def _instructor_notebook():
    return instructor_notebook(root=ROOT)


def _submit(course: Path, student: str, notebook, *, name: str = "05_autograd.ipynb",
            submitted_at: dt.datetime | None = None) -> None:
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    if notebook is not None:
        nbformat.write(notebook, folder / name)
    if submitted_at is not None:
        (folder / "timestamp.txt").write_text(submitted_at.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A class of five, graded once: on time, late (the course zeroes late work), wrong, missing, damaged."""
    from nbgrader.api import Gradebook

    course = copy_course(ROOT, tmp_path_factory.mktemp("class") / "course")
    with (course / "nbgrader_config.py").open("a") as config:
        config.write('\nc.LateSubmissionPlugin.penalty_method = "zero"\n')
    ensure_assignment(course)
    with Gradebook(gradebook_url(course)) as gradebook:
        gradebook.update_or_create_assignment(ASSIGNMENT, duedate=DUE)
    variants = {v.name: v for v in load_variants(ROOT / "corpus" / "validity.py")}
    _submit(course, "alice", _instructor_notebook(), name="05_autograd-Copy1.ipynb",
            submitted_at=DUE - dt.timedelta(hours=1))
    _submit(course, "larry", _instructor_notebook(), submitted_at=DUE + dt.timedelta(hours=2))
    _submit(course, "wrong", variant_notebook(variants["backward_propagates_first_arrival"], root=ROOT))
    _submit(course, "carol", None)
    (course / "submitted" / "damaged" / ASSIGNMENT).mkdir(parents=True)
    (course / "submitted" / "damaged" / ASSIGNMENT / "05_autograd.ipynb").write_text('{"cells": [')
    run = grade_class(course, workers=2, base_seed=5, allow_unsandboxed=UNSANDBOXED, show_progress=False)
    return course, run


def _outputs(course: Path) -> Path:
    return course / "reports" / ASSIGNMENT


def test_every_student_is_recorded_with_a_status_and_every_output_is_written(course):
    course, run = course
    statuses = {r.student: (str(r.status), r.score) for r in run.graded}
    assert statuses == {"alice": ("graded", 100), "larry": ("graded", 100), "wrong": ("graded", 68),
                        "carol": ("missing", 0), "damaged": ("invalid_notebook", 0)}
    out = _outputs(course)
    for name in ("grades.csv", "junit.xml", "report.html", "report.md", "score_histogram.png", "pass_rates.png"):
        assert (out / name).is_file(), name
    for student in statuses:
        record = json.loads((out / "students" / student / "results.json").read_text())
        assert record["status"] == statuses[student][0] and record["score"] == statuses[student][1]
        assert (out / "students" / student / "feedback.html").is_file()
    rows = {row["student_id"]: row for row in csv.DictReader((out / "grades.csv").open())}
    assert rows["carol"]["status"] == "missing" and rows["damaged"]["status"] == "invalid_notebook"


def test_submission_times_and_the_late_penalty_reach_nbgrader_export(course):
    course, _ = course
    nbgrader("export", "--to", str(course / "export.csv"), root=course)
    rows = {row["student_id"]: row for row in csv.DictReader((course / "export.csv").open())}
    assert rows["alice"]["timestamp"].startswith("2026-12-01 11:00:00")
    assert rows["larry"]["timestamp"].startswith("2026-12-01 14:00:00")
    assert (float(rows["alice"]["score"]), float(rows["alice"]["late_submission_penalty"])) == (100, 0)
    # penalty_method "zero": the late submission keeps its raw score and loses all of it.
    assert (float(rows["larry"]["raw_score"]), float(rows["larry"]["score"])) == (100, 0)
    ours = {row["student_id"]: row for row in csv.DictReader((_outputs(course) / "grades.csv").open())}
    assert float(ours["larry"]["score"]) == 0 and float(ours["larry"]["late_submission_penalty"]) == 100


def test_nbgrader_generate_feedback_works_on_the_autograded_notebooks_and_shows_no_hidden_code(course):
    course, _ = course
    for student in ("alice", "wrong"):
        assert (course / "autograded" / student / ASSIGNMENT / "05_autograd.ipynb").is_file()
    nbgrader("generate_feedback", ASSIGNMENT, "--force", root=course)
    hidden = secret_only_lines(nbformat.read(source_notebook(course), as_version=4), hidden_only=True)
    # A failing scenario's explanation (its docstring) is meant for the student; its code is not.
    explanations = "\n".join(s.summary for t in load_assignment(source_notebook(course)).tests for s in t.scenarios)
    for student in ("alice", "wrong"):
        page = html.unescape((course / "feedback" / student / ASSIGNMENT / "05_autograd.html").read_text())
        assert "trusted grader" in page
        leaked = [line for line in hidden if len(line) > 12 and line in page and line not in explanations]
        assert leaked == [], f"{student}: {leaked[:3]}"
    # The instructor's solutions never reach a student's autograded notebook.
    solutions = secret_only_lines(nbformat.read(source_notebook(course), as_version=4)) - hidden
    wrong = nbformat.read(course / "autograded" / "wrong" / ASSIGNMENT / "05_autograd.ipynb", as_version=4)
    code = "\n".join(cell.source for cell in wrong.cells)
    variant = {v.name: v for v in load_variants(ROOT / "corpus" / "validity.py")}["backward_propagates_first_arrival"]
    own = [line.strip() for line in variant.bodies["exercise_backward"][0].splitlines() if len(line.strip()) > 25]
    assert own and all(line in code for line in own)  # the student's own backward is there
    # A student who submitted nothing gets the release's stubs there, never the instructor's solutions.
    empty = nbformat.read(course / "autograded" / "carol" / ASSIGNMENT / "05_autograd.ipynb", as_version=4)
    lines = {line.strip() for cell in empty.cells for line in cell.source.splitlines()}
    assert "raise NotImplementedError()" in lines
    assert sorted(solutions & lines) == []


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium is not installed (apt-get install chromium; CI installs it)")
def test_the_class_report_renders_with_its_charts_in_a_real_browser(course, tmp_path):
    course, _ = course
    page = (_outputs(course) / "report.html").read_text()
    # A copy with a probe: once loaded, the title counts the images the browser decoded.
    probe = ("<script>window.addEventListener('load', () => { const images = [...document.images]; "
             "document.title = 'decoded ' + images.filter(i => i.complete && i.naturalWidth > 0).length "
             "+ ' of ' + images.length; });</script></body>")
    (tmp_path / "report.html").write_text(page.replace("</body>", probe))
    shown = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
         (tmp_path / "report.html").as_uri()], capture_output=True, text=True, timeout=120)
    assert "<title>decoded 2 of 2</title>" in shown.stdout, shown.stderr[-2000:]
    assert "Each test's pass rate" in shown.stdout and "<td>wrong</td>" in shown.stdout
    markdown = (_outputs(course) / "report.md").read_text()
    assert "![Score histogram](score_histogram.png)" in markdown and "| `hidden_backward_order` |" in markdown


def test_a_second_run_keeps_what_is_unchanged_and_regrades_what_it_is_asked_to(course):
    course, _ = course
    again = grade_class(course, workers=2, base_seed=6, allow_unsandboxed=UNSANDBOXED, show_progress=False)
    assert again.graded == [] and sorted(again.kept) == ["alice", "carol", "damaged", "larry", "wrong"]
    one = grade_class(course, workers=1, student="wrong", base_seed=6, allow_unsandboxed=UNSANDBOXED,
                      show_progress=False)
    assert [r.student for r in one.graded] == ["wrong"]
    _submit(course, "alice", _instructor_notebook(), name="05_autograd-Copy1.ipynb",
            submitted_at=DUE - dt.timedelta(minutes=30))  # resubmitted: a new time
    changed = grade_class(course, workers=2, base_seed=6, allow_unsandboxed=UNSANDBOXED, show_progress=False)
    assert [r.student for r in changed.graded] == ["alice"]


def test_a_grade_that_cannot_be_recorded_costs_only_its_student(tmp_path, monkeypatch):
    """If writing one student's outputs fails, that student is recorded as grader_error; the class goes on."""
    from autograder import classroom

    course = copy_course(ROOT, tmp_path / "course")
    for student in ("alice", "bob", "carol"):
        _submit(course, student, _instructor_notebook())
    real = classroom.write_autograded

    def fails_for_bob(root, result, *args):
        if result.student == "bob":
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return real(root, result, *args)

    monkeypatch.setattr(classroom, "write_autograded", fails_for_bob)
    run = grade_class(course, workers=1, base_seed=5, allow_unsandboxed=UNSANDBOXED, show_progress=False)
    assert {r.student: str(r.status) for r in run.graded} == {"alice": "graded", "bob": "grader_error",
                                                                "carol": "graded"}
    assert (course / "reports" / ASSIGNMENT / "report.html").is_file()
    monkeypatch.setattr(classroom, "write_autograded", real)
    again = grade_class(course, workers=1, base_seed=5, allow_unsandboxed=UNSANDBOXED, show_progress=False)
    assert [(r.student, str(r.status)) for r in again.graded] == [("bob", "graded")]  # bob is graded again


def _running(pids: set[int]) -> list[int]:
    """The processes of ``pids`` still running: a zombie (dead, waiting to be reaped by init) does not count."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            running.append(pid)
    return running


def _children(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            for child in task.read_text().split():
                found.add(int(child))
                todo.append(int(child))
    return found


def test_a_run_killed_with_sigkill_resumes_with_nothing_lost_or_counted_twice(tmp_path):
    from nbgrader.api import Gradebook

    course = copy_course(ROOT, tmp_path / "course")
    students = [f"s{i:02d}" for i in range(10)]
    for student in students:
        _submit(course, student, _instructor_notebook())
    command = [sys.executable, "-m", "autograder", "--root", str(course), "grade-class", "--workers", "2",
               "--seed", "3"] + (["--unsafe-no-sandbox"] if UNSANDBOXED else [])
    first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = course / "reports" / ASSIGNMENT / "students"
    deadline = time.monotonic() + 120
    while len(list(records.glob("*/results.json"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    helpers = _children(first.pid)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    recorded_before = {path.parent.name: path.stat().st_mtime_ns for path in records.glob("*/results.json")}
    assert 3 <= len(recorded_before) < len(students), "kill the run while it is half-way"
    deadline = time.monotonic() + 15
    while _running(helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _running(helpers) == [], "processes left behind"

    second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"{len(recorded_before)} unchanged since their last grading, kept" in second.stdout
    for student, mtime in recorded_before.items():
        assert (records / student / "results.json").stat().st_mtime_ns == mtime  # kept, not graded again
    with Gradebook(gradebook_url(course)) as gradebook:
        submissions = [(s.student.id, s.assignment.name) for s in gradebook.assignment_submissions(ASSIGNMENT)]
    assert sorted(submissions) == [(student, ASSIGNMENT) for student in students]
    for student in students:
        assert json.loads((records / student / "results.json").read_text())["score"] == 100
        assert sum(score for score, _ in scores_in_gradebook(student, root=course).values()) == 100
