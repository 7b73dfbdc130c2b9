"""nbgrader's own feedback (generate_feedback) never shows hidden test code (nbgrader_config.py)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat
import pytest

from autograder.assignment import load_assignment
from autograder.variants import instructor_bodies, submission_notebook
from autograder.course import ASSIGNMENT, NOTEBOOK, copy_course, nbgrader, release_notebook, source_notebook
from autograder.checks import secret_only_lines

pytestmark = [pytest.mark.nbgrader]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def feedback_pages(tmp_path_factory):
    """nbgrader's feedback for a correct and for a failing submission (the blank release)."""
    course = copy_course(ROOT, tmp_path_factory.mktemp("course"), folders=("source",))
    nbgrader("generate_assignment", ASSIGNMENT, "--force", "--create", root=course)
    source_nb = nbformat.read(source_notebook(ROOT), as_version=4)
    release_nb = nbformat.read(release_notebook(ROOT), as_version=4)
    submissions = {"correct": submission_notebook(release_nb, instructor_bodies(source_nb)), "failing": release_nb}
    for student, notebook in submissions.items():
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / NOTEBOOK)
    nbgrader("autograde", ASSIGNMENT, "--force", "--create", root=course)
    nbgrader("generate_feedback", ASSIGNMENT, "--force", root=course)
    pages = {}
    for student in submissions:
        page = (course / "feedback" / student / ASSIGNMENT / NOTEBOOK.replace(".ipynb", ".html")).read_text()
        # Code is rendered with syntax-highlighting spans and entities: compare the text a reader sees.
        pages[student] = html.unescape(re.sub(r"<[^>]+>", "", page))
    return pages


@pytest.mark.parametrize("student", ["correct", "failing"])
def test_generate_feedback_shows_no_hidden_test_code(feedback_pages, student):
    text = feedback_pages[student]
    source_nb = nbformat.read(source_notebook(ROOT), as_version=4)
    # Long lines only: short ones ("}", "loss.backward()") also occur in the page's CSS and given code.
    hidden = {line for line in secret_only_lines(source_nb, hidden_only=True) if len(line) > 20}
    assert hidden, "the source notebook should have hidden tests"
    assert "check_against_reference" not in text
    assert "autograder/scenarios.py" not in text  # the grader's own path, quoted by tracebacks
    # A failed check's message quotes its scenario's explanation, which is meant to be read.
    explanations = "\n".join(scenario.summary for test in load_assignment(source_notebook(ROOT)).tests
                             for scenario in test.scenarios)
    assert [line for line in hidden if line in text and line not in explanations] == []
    assert "def backward(self, gradient=None):" in text  # the page does show the notebook's code


def test_failing_hidden_checks_still_say_what_failed(feedback_pages):
    # The traceback's quoted code is gone; the error and its explanation stay.
    text = feedback_pages["failing"]
    assert "NotImplementedError" in text
