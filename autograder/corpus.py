"""Submissions made from the notebooks by code, and grading them with nbgrader.

A validity corpus entry is a ``Variant``: the instructor's solution with some
solution regions replaced by other code (a realistic mistake, or a correct
implementation in another style), plus the tests it is expected to lose.  A
variant is turned into a submission the way a student would make one: the
release notebook with its stubs filled in.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .checks import nbgrader_meta
from .course import (ASSIGNMENT, NOTEBOOK, copy_course, nbgrader, release_notebook, source_notebook,
                     submission_notebook_path)
from .gradebook import class_scores
from .notebook_regions import BEGIN_SOLUTION, END_SOLUTION, fill_stubs, regions
from .results import CellScore


@dataclass(frozen=True)
class Variant:
    name: str  # also the student id it is graded under: letters, digits and _
    description: str
    bodies: dict[str, list[str]] = field(default_factory=dict)  # solution grade_id -> region bodies
    loses: frozenset[str] = frozenset()  # grade_ids of the tests it must fail
    # Tests it fails on some draws of a random graph only (the mistake shows in most graphs, not all).
    may_lose: frozenset[str] = frozenset()
    # Code cells the student added, as (grade_id of the notebook cell it follows, source), in order.
    added_cells: tuple[tuple[str, str], ...] = ()


def instructor_bodies(source_nb) -> dict[str, list[str]]:
    """The solution regions of every solution cell, keyed by grade_id."""
    return {
        nbgrader_meta(cell)["grade_id"]: [r.body for r in regions(cell.source, BEGIN_SOLUTION, END_SOLUTION)]
        for cell in source_nb.cells
        if nbgrader_meta(cell).get("solution")
    }


def submission_notebook(release_nb, bodies: dict[str, list[str]]):
    """The release notebook with each solution cell's stubs replaced by ``bodies``."""
    submission = nbformat.from_dict(release_nb)
    for cell in submission.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if nbgrader_meta(cell).get("solution") and grade_id in bodies:
            cell.source = fill_stubs(cell.source, bodies[grade_id])
    return submission


def variant_notebook(variant: Variant, *, root: Path):
    source_nb = nbformat.read(source_notebook(root), as_version=4)
    release_nb = nbformat.read(release_notebook(root), as_version=4)
    bodies = instructor_bodies(source_nb)
    for grade_id, replacement in variant.bodies.items():
        if grade_id not in bodies or len(replacement) != len(bodies[grade_id]):
            raise ValueError(f"variant {variant.name}: cell {grade_id!r} needs {len(bodies.get(grade_id, []))} bodies")
        bodies[grade_id] = [new if new is not None else old for new, old in zip(replacement, bodies[grade_id])]
    submission = submission_notebook(release_nb, bodies)
    for after, source in variant.added_cells:
        add_cell(submission, after=after, source=source)
    return submission


def add_cell(notebook, *, after: str, source: str) -> None:
    """Insert a code cell as a student adds one in Jupyter: no nbgrader metadata, below cell ``after``
    (and below any cells already added there)."""
    ids = [nbgrader_meta(cell).get("grade_id") for cell in notebook.cells]
    if after not in ids:
        raise ValueError(f"no cell {after!r} to add a cell after")
    position = ids.index(after) + 1
    while position < len(notebook.cells) and not nbgrader_meta(notebook.cells[position]) \
            and notebook.cells[position].cell_type == "code":
        position += 1
    notebook.cells.insert(position, nbformat.v4.new_code_cell(source))


def load_corpus_file(path: Path):
    """A corpus file (plain Python kept beside the course, not a package) as a module."""
    spec = importlib.util.spec_from_file_location(f"corpus_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses defined in the file look their module up there
    spec.loader.exec_module(module)
    return module


def load_variants(path: Path) -> list[Variant]:
    """The ``VARIANTS`` list of a validity corpus file."""
    return list(load_corpus_file(path).VARIANTS)


def autograde_with_nbgrader(notebooks: dict[str, object], *, root: Path):
    """Grade each notebook with ``nbgrader autograde`` in a scratch copy of the course.

    Returns ``(scores, autograded)``: per submission name, its CellScore per
    grade_id, and the executed notebook nbgrader wrote.  The course's own
    gradebook is never touched.
    """
    workdir = Path(tempfile.mkdtemp(prefix="corpus-course-"))
    try:
        copy_course(root, workdir, folders=("source",))
        nbgrader("generate_assignment", ASSIGNMENT, "--force", "--create", root=workdir)
        for name, notebook in notebooks.items():
            path = submission_notebook_path(workdir, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, path)
        # Exit code 1 means some submission could not be fully graded; the
        # scores say which, so it is not an error here.
        nbgrader("autograde", ASSIGNMENT, "--force", "--create", root=workdir, check=False)
        scores = read_scores(workdir, list(notebooks))
        autograded = {}
        for name in notebooks:
            path = workdir / "autograded" / name / ASSIGNMENT / NOTEBOOK
            autograded[name] = nbformat.read(path, as_version=4) if path.exists() else None
        return scores, autograded
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def read_scores(course: Path, students: list[str]) -> dict[str, dict[str, CellScore]]:
    """Each of ``students``' scores in ``course``'s gradebook; {} for one nbgrader did not grade."""
    scores = class_scores(root=course)
    return {student: scores.get(student, {}) for student in students}


def ran_to_end(autograded_nb) -> bool:
    """Whether the kernel reached the last code cell (nbgrader numbers every executed cell)."""
    if autograded_nb is None:
        return False
    code_cells = [cell for cell in autograded_nb.cells if cell.cell_type == "code"]
    return bool(code_cells) and code_cells[-1].execution_count is not None


def lost_tests(cell_scores: dict[str, CellScore]) -> frozenset[str]:
    """The tests that did not get full points (ungraded counts as lost)."""
    return frozenset(
        grade_id for grade_id, cell in cell_scores.items() if cell.score is None or cell.score < cell.max_score
    )


def format_matrix(scores: dict[str, dict[str, CellScore]]) -> str:
    """Submissions as rows, tests as numbered columns, points in each cell."""
    tests = sorted({grade_id for row in scores.values() for grade_id in row}, key=_test_order(scores))
    name_width = max(len(name) for name in scores) if scores else 10
    header = " " * name_width + " | " + " ".join(f"{i:>3}" for i in range(1, len(tests) + 1)) + " | total"
    lines = [header, "-" * len(header)]
    for name, row in scores.items():
        cells, total, maximum = [], 0.0, 0.0
        for test in tests:
            cell = row.get(test)
            if cell is None:
                cells.append("  ?")
                continue
            maximum += cell.max_score
            if cell.score is None:
                cells.append("  -")
            else:
                total += cell.score
                cells.append(f"{cell.score:>3g}")
        lines.append(f"{name:<{name_width}} | " + " ".join(cells) + f" | {total:g}/{maximum:g}")
    lines.append("")
    lines += [f"{i:>3}: {test}" for i, test in enumerate(tests, 1)]
    return "\n".join(lines)


def _test_order(scores):
    # Keep the notebook's order: the first row that has a test fixes its place.
    order = {}
    for row in scores.values():
        for grade_id in row:
            order.setdefault(grade_id, len(order))
    return lambda grade_id: order[grade_id]
