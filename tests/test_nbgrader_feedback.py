"""nbgrader's own feedback (generate_feedback) never shows hidden test code (nbgrader_config.py)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat

from autograder.corpus import instructor_bodies, submission_notebook
from autograder.course import ASSIGNMENT, NOTEBOOK, copy_course, nbgrader, release_notebook, source_notebook
from autograder.checks import secret_only_lines

ROOT = Path(__file__).resolve().parents[1]


def test_generate_feedback_strips_hidden_tests(tmp_path):
    course = copy_course(ROOT, tmp_path / "course", folders=("source",))
    nbgrader("generate_assignment", ASSIGNMENT, "--force", "--create", root=course)
    source_nb = nbformat.read(source_notebook(ROOT), as_version=4)
    release_nb = nbformat.read(release_notebook(ROOT), as_version=4)
    folder = course / "submitted" / "student" / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(submission_notebook(release_nb, instructor_bodies(source_nb)), folder / NOTEBOOK)
    nbgrader("autograde", ASSIGNMENT, "--force", "--create", root=course)
    nbgrader("generate_feedback", ASSIGNMENT, "--force", root=course)

    page = (course / "feedback" / "student" / ASSIGNMENT / NOTEBOOK.replace(".ipynb", ".html")).read_text()
    # Code is rendered with syntax-highlighting spans and entities: compare the text a reader sees.
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    # Long lines only: short ones ("}", "loss.backward()") also occur in the page's CSS and given code.
    hidden = {line for line in secret_only_lines(source_nb, hidden_only=True) if len(line) > 20}
    assert hidden, "the source notebook should have hidden tests"
    assert "check_against_reference" not in text
    assert [line for line in hidden if line in text] == []
    assert "def backward(self, gradient=None):" in text  # the page does show the notebook's code
