"""The assignment is well formed: metadata, release, and the hand-worked values of the visible tests."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import numpy as np
import pytest

from autograder.checks import check_cell_metadata, check_clean, check_no_leaks, static_checks
from autograder.course import ASSIGNMENT, copy_course, nbgrader, release_notebook, source_notebook
from autograder.notebook_regions import outside_regions
from autograder.scenarios import reference_namespace

pytestmark = [pytest.mark.nbgrader]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def source_nb():
    return nbformat.read(source_notebook(ROOT), as_version=4)


@pytest.fixture(scope="module")
def release_nb():
    return nbformat.read(release_notebook(ROOT), as_version=4)


def test_static_checks_pass_on_the_committed_notebooks():
    results = static_checks(source_notebook(ROOT), release_notebook(ROOT))
    assert [r.problems for r in results] == [[] for _ in results], [r.name for r in results if r.problems]


def test_committed_release_equals_a_fresh_generation(tmp_path):
    copy_course(ROOT, tmp_path, folders=("source",))
    nbgrader("generate_assignment", ASSIGNMENT, "--force", "--create", root=tmp_path)
    fresh = release_notebook(tmp_path).read_bytes()
    assert fresh == release_notebook(ROOT).read_bytes(), (
        "release/ differs from what source/ generates: run `python -m autograder release` and commit release/"
    )


def test_points_add_up_to_one_hundred(source_nb):
    points = [c.metadata["nbgrader"]["points"] for c in source_nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert sum(points) == 100
    assert len(points) >= 15, "points should be split by behaviour so that partial credit means something"


def test_exercises_are_exactly_backward_add_and_mul(source_nb):
    solution_ids = [c.metadata["nbgrader"]["grade_id"] for c in source_nb.cells
                    if c.metadata.get("nbgrader", {}).get("solution")]
    assert solution_ids == ["exercise_backward", "exercise_add", "exercise_mul"]


def test_student_docstrings_survive_stripping(release_nb):
    for cell in release_nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            for word in ("TODO", "APPROACH", "EXAMPLE", "HINTS"):
                assert word in cell.source, f"{cell.metadata['nbgrader']['grade_id']} lost its {word}"
            assert "raise NotImplementedError()" in cell.source


def test_visible_tests_do_not_need_tinytorch(release_nb):
    for cell in release_nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            assert "tinytorch" not in cell.source and "autograder" not in cell.source


def _visible_checks(source_nb):
    """(scenario, expected) pairs of every visible test cell, by running the cell with a recorder."""
    pairs = []
    for cell in source_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        visible = "\n".join(outside_regions(cell.source))
        if meta.get("grade") and "check_scenario(" in visible:
            namespace = {"np": np, "check_scenario": lambda scenario, expected: pairs.append((scenario, expected))}
            exec(compile(visible, meta["grade_id"], "exec"), namespace)
    return pairs


def test_hand_worked_values_of_visible_tests_agree_with_the_reference(source_nb):
    pairs = _visible_checks(source_nb)
    assert len(pairs) >= 8
    tt = reference_namespace()
    for scenario, expected in pairs:
        observed = scenario(tt, np.random.default_rng(0))
        for key, want in expected.items():
            got = observed[key]
            if want is None or isinstance(want, (bool, str)):
                assert got == want, f"{scenario.__name__}: {key}"
            else:
                np.testing.assert_allclose(got, want, err_msg=f"{scenario.__name__}: {key}")


def test_every_test_cell_defines_scenarios_and_checks_them(source_nb):
    for cell in source_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            tree = ast.parse(cell.source)
            names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
            assert names and all(name.startswith("scenario_") for name in names), meta["grade_id"]


# --- the checks themselves can fail --------------------------------------------------------

def _cell(kind, source, **nbgrader_meta):
    cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
    if nbgrader_meta:
        cell.metadata["nbgrader"] = {"schema_version": 3, "grade": False, "solution": False, "locked": False,
                                     "task": False, **nbgrader_meta}
    return cell


def test_metadata_check_reports_missing_region_and_duplicate_ids():
    nb = nbformat.v4.new_notebook(cells=[
        _cell("code", "x = 1", grade_id="answer", solution=True),
        _cell("code", "assert x == 1", grade_id="answer", grade=True, locked=True, points=1),
    ])
    problems = " ".join(check_cell_metadata(nb).problems)
    assert "has no ### BEGIN SOLUTION region" in problems
    assert "used by 2 cells" in problems


def test_leak_check_finds_a_solution_line_and_ignores_given_lines():
    source = nbformat.v4.new_notebook(cells=[
        _cell("code", "def f():\n    ### BEGIN SOLUTION\n    secret = 42\n    return secret\n    ### END SOLUTION",
              grade_id="f", solution=True),
        _cell("code", "def g():\n    return secret", grade_id="g", locked=True),
    ])
    leaky = nbformat.v4.new_notebook(cells=[_cell("code", "def f():\n    secret = 42\n    raise NotImplementedError()")])
    clean = nbformat.v4.new_notebook(cells=[_cell("code", "def f():\n    raise NotImplementedError()\n    return secret")])
    assert check_no_leaks(source, leaky).problems == ["the release contains the hidden line 'secret = 42'"]
    assert check_no_leaks(source, clean).problems == []


def test_clean_check_reports_outputs():
    cell = _cell("code", "1 + 1")
    cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=1)]
    cell.execution_count = 1
    assert check_clean(nbformat.v4.new_notebook(cells=[cell]), "nb").problems


def test_nbgrader_validate_passes_on_the_instructor_notebook():
    from autograder.release import check_validate

    assert check_validate(ROOT).problems == []


def _release_engine(release_nb, backward_body: str | None = None) -> dict:
    """The release's given and exercise cells run in one namespace, as a student's kernel would."""
    namespace: dict = {"__name__": "__main__"}
    for cell in release_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("grade") or not meta.get("grade_id", "").startswith(
                ("imports", "engine_core", "tensor_class", "check_helper", "exercise_")):
            continue
        source = cell.source
        if backward_body is not None and meta["grade_id"] == "exercise_backward":
            source = source.replace("raise NotImplementedError()", backward_body, 1)
        exec(compile(source, meta["grade_id"], "exec"), namespace)
    return namespace


def _visible_failure(namespace, source_nb) -> AssertionError:
    scenario, expected = _visible_checks(source_nb)[0]  # scenario_backward_worked_example
    with pytest.raises(AssertionError) as failure:
        namespace["check_scenario"](scenario, expected)
    return failure.value


def test_an_exercise_not_written_yet_says_so_in_one_message(release_nb, source_nb):
    error = _visible_failure(_release_engine(release_nb), source_nb)
    assert str(error).startswith("scenario_backward_worked_example: not written yet")
    assert error.__suppress_context__ and error.__cause__ is None  # no second, chained traceback
    assert "did not reach the leaves" not in str(error)  # the hint for a written backward would mislead


def test_a_recursive_backward_is_pointed_to_step_2(release_nb, source_nb):
    # What a backward that recurses once per node meets on a deep graph.
    recursive = "raise RecursionError('maximum recursion depth exceeded')"
    error = _visible_failure(_release_engine(release_nb, recursive), source_nb)
    assert "RecursionError" in str(error) and "Step 2: walk the graph with a loop and a stack" in str(error)
