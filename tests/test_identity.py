"""Student ids: the rule, `grade --record` without or with a bad `--student`, and bad folder names in a class.

The command line is called in-process with the grader replaced by a stub
wherever the test is about identity rather than grading, so these are fast;
one test runs the real command to see its exit status.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import classroom
from autograder import grader as grader_module
from autograder.assignment import load_assignment
from autograder.cli import main
from autograder.course import ASSIGNMENT, NOTEBOOK, copy_course, source_notebook
from autograder.gradebook import record, scores_in_gradebook
from autograder.identity import MAX_LENGTH, InvalidStudentId, check_student_id, student_id_problem
from autograder.results import GradeResult, Status

pytestmark = [pytest.mark.sandbox]

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT_SPEC = load_assignment(source_notebook(ROOT))

VALID = ["alice", "a", "s1234567", "jane.doe", "jane_doe-2", "jane.doe+cs101@example.edu", "X" * MAX_LENGTH]
INVALID = ["", ".", "..", "a..b", "../victim", "victim/..", "a/b", "a\\b", "-rf", ".hidden", "_x", "@x",
           "jane doe", "tab\there", "new\nline", "nul\x00", "esc\x1b[31m", "caf\u00e9", "\u0430lice",
           "semi;colon", "star*", "X" * (MAX_LENGTH + 1), "\udcff"]


@pytest.mark.parametrize("student", VALID)
def test_valid_ids(student):
    assert student_id_problem(student) is None
    assert check_student_id(student) == student


@pytest.mark.parametrize("student", INVALID, ids=ascii)
def test_invalid_ids(student):
    assert student_id_problem(student)
    with pytest.raises(InvalidStudentId):
        check_student_id(student)


def test_non_text_is_not_an_id():
    assert student_id_problem(None) and student_id_problem(42)


def _fake_result(student: str, score_each: bool) -> GradeResult:
    result = grader_module.ungraded(ASSIGNMENT_SPEC, Status.GRADED, "", student=student, submission=f"{student}.ipynb",
                                    seed=11, isolation="bubblewrap")
    for test in result.tests:
        if score_each:
            test.score, test.status = test.max_score, "passed"
    result.score = sum(test.score for test in result.tests)
    return result


@pytest.fixture
def no_grading(monkeypatch):
    """The grader replaced by something that fails the test if it is called."""
    def must_not_grade(*args, **kwargs):
        raise AssertionError("grading must not start")

    monkeypatch.setattr(grader_module, "grade_submission", must_not_grade)


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def test_record_without_student_is_a_usage_error_and_records_nothing(tmp_path, no_grading, capsys):
    course = copy_course(ROOT, tmp_path / "course")
    (course / "gradebook.db").write_bytes(b"the instructor's gradebook")
    before = _digest(course / "gradebook.db")
    with pytest.raises(SystemExit) as exit_:
        main(["--root", str(course), "grade", str(tmp_path / "victim.ipynb"), "--record"])
    assert exit_.value.code == 2
    assert "--student" in capsys.readouterr().err
    assert _digest(course / "gradebook.db") == before


def test_record_without_student_creates_no_gradebook(tmp_path, no_grading):
    course = copy_course(ROOT, tmp_path / "course")
    with pytest.raises(SystemExit) as exit_:
        main(["--root", str(course), "grade", str(tmp_path / "victim.ipynb"), "--record", "--format", "json"])
    assert exit_.value.code == 2
    assert not (course / "gradebook.db").exists()


@pytest.mark.parametrize("student", ["", "../victim", "a/b", "victim\n", "-x", "a..b", "x" * 200], ids=ascii)
def test_invalid_student_option_is_a_usage_error(student, tmp_path, no_grading, capsys):
    course = copy_course(ROOT, tmp_path / "course")
    with pytest.raises(SystemExit) as exit_:
        main(["--root", str(course), "grade", str(tmp_path / "x.ipynb"), "--record", f"--student={student}"])
    assert exit_.value.code == 2
    assert "not a valid student id" in capsys.readouterr().err
    assert not (course / "gradebook.db").exists()


def test_the_real_command_exits_2(tmp_path):
    run = subprocess.run([sys.executable, "-m", "autograder", "--root", str(tmp_path), "grade",
                          str(tmp_path / "victim.ipynb"), "--record"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2
    assert "--record needs --student" in run.stderr
    assert not (tmp_path / "gradebook.db").exists()


def test_record_refuses_an_invalid_id(tmp_path):
    course = copy_course(ROOT, tmp_path / "course")
    with pytest.raises(InvalidStudentId):
        record(_fake_result("../victim", score_each=False), root=course)
    assert not (course / "gradebook.db").exists()


def test_class_run_skips_invalid_folder_names_and_grades_the_rest(tmp_path, monkeypatch, capsys):
    course = copy_course(ROOT, tmp_path / "course")
    good = ["alice", "bob"]
    bad = ["bad name", "-rf", ".hidden", "a..b", "esc\x1b[31mred", "caf\u00e9"]
    for student in good + bad:
        (course / "submitted" / student / ASSIGNMENT).mkdir(parents=True)
        (course / "submitted" / student / ASSIGNMENT / NOTEBOOK).write_text("{}", encoding="utf-8")
    graded = []

    def fake_grade(path, *, root, student, **kwargs):
        graded.append(student)
        return _fake_result(student, score_each=True)

    monkeypatch.setattr(classroom, "grade_submission", fake_grade)
    out = tmp_path / "class.csv"
    # One worker grades in this process, where the fake grader is in place.
    assert main(["--root", str(course), "grade-class", "--workers", "1", "--csv", str(out)]) == 0
    captured = capsys.readouterr()

    assert graded == good
    students = course / "reports" / ASSIGNMENT / "students"
    for student in good:
        assert sum(score for score, _ in scores_in_gradebook(student, root=course).values()) == 100
        assert (students / student / "feedback.html").exists()
    assert sorted(p.name for p in students.iterdir()) == good
    assert sorted(p.name for p in (course / "autograded").iterdir()) == good
    table = captured.out.split("Not graded:", 1)
    assert len(table) == 2, captured.out
    for name in bad:
        assert ascii(name) in table[1]
        assert name not in out.read_text(encoding="utf-8")
    assert "\x1b" not in captured.out and "\x1b" not in captured.err
    assert "not valid student ids" in captured.err
