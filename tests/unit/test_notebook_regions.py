"""Reading nbgrader's marked regions, and making submissions from the release (pure logic, no notebook)."""

from __future__ import annotations

import nbformat
import pytest

from autograder.assignment import EngineCell
from autograder.checks import check_cell_metadata
from autograder.notebook_regions import (BEGIN_SOLUTION, END_SOLUTION, UnbalancedMarkers, fill_stubs,
                                         outside_regions, regions)
from autograder.submission import blank_solution

CELL = """def f(x):
    ### BEGIN SOLUTION
    y = x + 1
    return y
    ### END SOLUTION

def g():
    ### BEGIN SOLUTION
    return 2
    ### END SOLUTION
"""


def test_regions_are_read_in_order_dedented_with_their_indentation():
    found = regions(CELL, BEGIN_SOLUTION, END_SOLUTION)
    assert [(r.indent, r.body) for r in found] == [("    ", "y = x + 1\nreturn y"), ("    ", "return 2")]
    assert outside_regions(CELL) == ["def f(x):", "", "def g():"]


@pytest.mark.parametrize("source, says", [
    ("x = 1\n### BEGIN SOLUTION\ny = 2\n", "never closed"),
    ("x = 1\n### END SOLUTION\n", "without a ### BEGIN SOLUTION"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside another"),
])
def test_unbalanced_markers_are_refused_as_nbgrader_does(source, says):
    with pytest.raises(UnbalancedMarkers, match=says):
        regions(source, BEGIN_SOLUTION, END_SOLUTION)
    with pytest.raises(UnbalancedMarkers):
        outside_regions(source)


def test_the_release_check_reports_an_unterminated_region():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "### BEGIN SOLUTION\nx = 1\n", metadata={"nbgrader": {
            "grade_id": "exercise", "solution": True, "grade": False, "locked": False, "schema_version": 3}})])
    problems = check_cell_metadata(notebook).problems
    assert any("'exercise'" in p and "never closed" in p for p in problems), problems


def test_blank_solution_puts_the_release_stub_in_place_of_each_region():
    blank = blank_solution(EngineCell("exercise", CELL, is_solution=True))
    assert blank == "def f(x):\n    raise NotImplementedError()\n\ndef g():\n    raise NotImplementedError()"


def test_fill_stubs_puts_each_body_at_its_stub_and_counts_them():
    release = "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    assert fill_stubs(release, ["return x\n"]) == "def f(x):\n    return x"
    with pytest.raises(ValueError, match="1 stubs but 2 bodies"):
        fill_stubs(release, ["a", "b"])
