"""The validity corpus (corpus/validity.py) graded by real ``nbgrader autograde``.

Every test cell of the notebook must grade right: the blank release scores 0,
the instructor's solution 100%, each wrong variant loses exactly the tests
that name its mistake, each correct variant (another style) loses nothing, and
every test cell is lost by at least one wrong variant.

SLOW, on purpose: the module-scoped fixture ``report`` grades the whole
corpus once, with real nbgrader in a scratch copy of the course (a kernel per
submission, plus 15 s for the one variant that runs into the per-cell
timeout): about 3 to 4 minutes on a 2-core machine.  Only what really needs
nbgrader uses the fixture; ``test_every_corpus_notebook_builds_and_compiles``
and the corpus-shape checks run in about a second without it
(``pytest tests/test_validity_corpus.py -k "not graded"``).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from autograder.checks import nbgrader_meta
from autograder.tables import score_matrix
from autograder.validity import lost_tests
from autograder.variants import instructor_bodies, load_variants
from autograder.course import source_notebook
from autograder.validity import corpus_notebooks, grade_corpus

pytestmark = [pytest.mark.nbgrader, pytest.mark.corpus]

ROOT = Path(__file__).resolve().parents[1]
CORPUS_FILE = ROOT / "corpus" / "validity.py"
VARIANTS = load_variants(CORPUS_FILE)
WRONG = [variant for variant in VARIANTS if variant.loses]
CORRECT = [variant for variant in VARIANTS if not variant.loses]


def _test_cells() -> list[str]:
    source = nbformat.read(source_notebook(ROOT), as_version=4)
    return [nbgrader_meta(cell)["grade_id"] for cell in source.cells if nbgrader_meta(cell).get("grade")]


TEST_CELLS = _test_cells()


def _row_text(report, name: str) -> str:
    """The matrix line of one submission (with the column legend), for failure messages."""
    return score_matrix({name: report.scores.get(name, {})})


# ----------------------------------------------------------------------
# Fast checks: the corpus file itself, no nbgrader
# ----------------------------------------------------------------------

def test_corpus_has_enough_wrong_and_correct_variants():
    assert len(WRONG) >= 12, f"only {len(WRONG)} wrong variants: {[v.name for v in WRONG]}"
    assert len(CORRECT) >= 4, f"only {len(CORRECT)} correct variants: {[v.name for v in CORRECT]}"


def test_variant_names_are_unique_student_ids():
    names = [variant.name for variant in VARIANTS]
    assert len(names) == len(set(names)), "duplicate variant names"
    assert not {"blank", "instructor"} & set(names), "blank and instructor are the corpus's own rows"
    bad = [name for name in names if not re.fullmatch(r"[a-z0-9_]+", name)]
    assert not bad, f"names must be lowercase letters, digits and _ (they are nbgrader student ids): {bad}"


def test_every_variant_is_described_and_classified():
    for variant in VARIANTS:
        assert variant.description.strip(), f"{variant.name} has no description"
        # A correct variant says so in its name; a wrong one lists the tests it loses.
        assert variant.name.startswith("correct_") == (not variant.loses), (
            f"{variant.name}: names starting with correct_ are exactly the variants that lose nothing"
        )


def test_expected_losses_name_real_test_cells():
    for variant in VARIANTS:
        unknown = set(variant.loses) - set(TEST_CELLS)
        assert not unknown, f"{variant.name} expects to lose tests that do not exist: {sorted(unknown)}"


def test_every_corpus_notebook_builds_and_compiles():
    """Every submission is made from the release notebook, with each variant's bodies in place, and compiles."""
    notebooks, expected = corpus_notebooks(ROOT, VARIANTS)
    assert list(notebooks) == ["blank", "instructor", *(variant.name for variant in VARIANTS)]
    assert expected["blank"] == frozenset(TEST_CELLS)
    for name, notebook in notebooks.items():
        nbformat.validate(notebook)
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type == "code":
                compile(cell.source, f"<{name}: cell {index} {nbgrader_meta(cell).get('grade_id')}>", "exec")
    # Each variant's replacement bodies really landed in its submission.
    originals = instructor_bodies(nbformat.read(source_notebook(ROOT), as_version=4))
    for variant in VARIANTS:
        cells = {nbgrader_meta(cell).get("grade_id"): cell.source for cell in notebooks[variant.name].cells}
        for grade_id, bodies in variant.bodies.items():
            for body in bodies:
                if body is None:
                    continue
                first_line = next(line.strip() for line in body.splitlines() if line.strip())
                assert first_line in cells[grade_id], f"{variant.name}: its {grade_id} body is not in the submission"
            assert bodies != originals[grade_id], f"{variant.name}: the {grade_id} bodies are the instructor's"



def test_correct_variants_include_cells_the_student_added():
    """A helper cell, an import cell and a scratch cell that raises: each must still score 100%."""
    with_added = [variant for variant in CORRECT if variant.added_cells]
    sources = "\n".join(source for variant in with_added for _, source in variant.added_cells)
    assert len(with_added) >= 3, [variant.name for variant in with_added]
    assert "def " in sources and "import " in sources
    # The one that raises is graded in tests/test_grader_results.py.
    assert "correct_scratch_cell_that_raises" in [variant.name for variant in with_added]


def test_added_cells_land_below_their_cell_without_nbgrader_metadata():
    notebooks, _ = corpus_notebooks(ROOT, VARIANTS)
    for variant in VARIANTS:
        cells = notebooks[variant.name].cells
        ids = [nbgrader_meta(cell).get("grade_id") for cell in cells]
        for after, source in variant.added_cells:
            position = next(i for i, cell in enumerate(cells) if cell.source == source)
            assert not nbgrader_meta(cells[position]) and cells[position].cell_type == "code"
            # Only other added cells sit between it and the cell it follows.
            above = position - 1
            while ids[above] is None and cells[above].cell_type == "code":
                above -= 1
            assert ids[above] == after, f"{variant.name}: a cell meant below {after} is below {ids[above]}"

# ----------------------------------------------------------------------
# Graded: the whole corpus under nbgrader autograde, once for the module
# ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def report():
    return grade_corpus(ROOT, CORPUS_FILE)


def test_graded_blank_release_scores_zero_on_every_test(report):
    row = report.scores["blank"]
    assert set(row) == set(TEST_CELLS), _row_text(report, "blank")
    scored = {grade_id: cell.score for grade_id, cell in row.items() if cell.score != 0}
    assert not scored, f"the blank release scores points:\n{_row_text(report, 'blank')}"


def test_graded_blank_release_runs_to_the_end(report):
    # Every graded cell fails on the blank release by raising, not by stopping the kernel.
    assert report.ran_to_end["blank"]


def test_graded_instructor_solution_scores_full_points(report):
    row = report.scores["instructor"]
    assert set(row) == set(TEST_CELLS), _row_text(report, "instructor")
    assert sum(cell.max_score for cell in row.values()) == 100
    assert not lost_tests(row), f"the instructor solution loses points:\n{_row_text(report, 'instructor')}"


@pytest.mark.parametrize("name", [variant.name for variant in VARIANTS])
def test_graded_variant_loses_exactly_its_expected_tests(report, name):
    row = report.scores.get(name) or {}
    assert set(row) == set(TEST_CELLS), f"{name} was not fully graded:\n{_row_text(report, name)}"
    expected = report.expected_lost[name]
    lost = lost_tests(row) - (report.may_lose.get(name, frozenset()) - expected)
    assert lost == expected, (
        f"{name}\n"
        f"  lost unexpectedly: {sorted(lost - expected)}\n"
        f"  kept unexpectedly: {sorted(expected - lost)}\n"
        f"{_row_text(report, name)}"
    )


def test_graded_every_test_cell_is_lost_by_some_wrong_variant(report):
    lost_by = {grade_id: [v.name for v in WRONG if grade_id in lost_tests(report.scores.get(v.name, {}))]
               for grade_id in TEST_CELLS}
    dead = [grade_id for grade_id, names in lost_by.items() if not names]
    assert not dead, f"no wrong variant fails these tests (dead weight, or a gap in the corpus): {dead}"


def test_graded_every_wrong_variant_loses_points(report):
    """A wrong variant that keeps full points would mean its mistake goes unnoticed by every test."""
    unnoticed = [v.name for v in WRONG if not lost_tests(report.scores.get(v.name, {}))]
    assert not unnoticed, "wrong variants with full points:\n" + score_matrix(
        {name: report.scores.get(name, {}) for name in unnoticed})
