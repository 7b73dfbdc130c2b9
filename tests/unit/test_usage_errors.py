"""A mistake of the person running the command is a usage error (exit 2), and nothing is graded or recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.cli import main
from autograder.course import copy_course

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def course(tmp_path):
    return copy_course(ROOT, tmp_path / "course", folders=("source",))


def _nothing_recorded(course: Path) -> bool:
    return not (course / "gradebook.db").exists() and not (course / "reports").exists()


@pytest.mark.parametrize("make, says", [
    (lambda d: d / "05_autograd.ipnb", "does not exist"),  # a typo in the extension
    (lambda d: d, "is a folder"),
    (lambda d: (d / "solution.py").write_text("x = 1") and d / "solution.py", "is not a notebook"),
])
def test_grade_refuses_a_path_that_is_not_a_notebook(course, tmp_path, capsys, make, says):
    path = make(tmp_path)
    assert main(["--root", str(course), "grade", str(path), "--student", "alice", "--record"]) == 2
    err = capsys.readouterr().err
    assert says in err and "nothing was graded or recorded" in err
    assert _nothing_recorded(course)


def test_grade_class_refuses_a_source_that_does_not_exist(course, tmp_path, capsys):
    assert main(["--root", str(course), "grade-class", str(tmp_path / "submissons")]) == 2
    assert "neither a folder nor a zip" in capsys.readouterr().err
    assert _nothing_recorded(course)


def test_an_empty_intake_says_where_it_looked_and_what_it_reads(course, capsys):
    (course / "submitted").mkdir()
    assert main(["--root", str(course), "grade-class"]) == 2
    err = capsys.readouterr().err
    assert f"no submissions found in {course / 'submitted'}" in err
    assert "submitted/<student>/05_autograd/*.ipynb" in err and "Canvas, Moodle or nbgrader zip_collect" in err
    assert _nothing_recorded(course)


def test_grade_class_for_a_student_who_did_not_submit(course, capsys):
    (course / "submitted" / "alice" / "05_autograd").mkdir(parents=True)
    assert main(["--root", str(course), "grade-class", "--student", "bob"]) == 2
    assert "no submission of 'bob'" in capsys.readouterr().err
    assert _nothing_recorded(course)


def test_a_notebook_with_text_no_file_can_hold_is_a_damaged_upload(tmp_path):
    """JSON can spell lone surrogates (\\ud800); such a notebook is invalid_notebook, never a crash later."""
    import json

    from autograder.assignment import load_assignment
    from autograder.course import source_notebook
    from autograder.submission import read_submission

    notebook = json.loads((ROOT / "release" / "05_autograd" / "05_autograd.ipynb").read_text())
    notebook["cells"].insert(8, {"cell_type": "code", "metadata": {}, "source": "# \ud800 hi\n", "outputs": [],
                                 "execution_count": None})
    path = tmp_path / "mallory.ipynb"
    path.write_text(json.dumps(notebook))  # ensure_ascii writes the surrogate as an escape
    read = read_submission(path, load_assignment(source_notebook(ROOT)))
    assert read.status == "invalid_notebook" and "not valid Unicode text" in read.message
