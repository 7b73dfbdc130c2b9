"""Submissions made from the notebooks by code: the corpus files' variants.

A validity corpus entry (``corpus/validity.py``) is a ``Variant``: the
instructor's solution with some solution regions replaced by other code (a
realistic mistake, or a correct implementation in another style), maybe with
cells the student added, plus the tests it is expected to lose.  A variant is
turned into a submission the way a student would make one: the release
notebook with its stubs filled in.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .checks import nbgrader_meta
from .course import release_notebook, source_notebook
from .notebook_regions import BEGIN_SOLUTION, END_SOLUTION, fill_stubs, regions


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


def instructor_notebook(*, root: Path):
    """The release notebook with the instructor's solutions in it: a submission that earns every point."""
    release_nb = nbformat.read(release_notebook(root), as_version=4)
    return submission_notebook(release_nb, instructor_bodies(nbformat.read(source_notebook(root), as_version=4)))


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


def base_notebook(base: str, *, root: Path):
    """The honest code a tamper-corpus attack sits on (see corpus/tamper.py): "blank", "backward_only",
    or "aliasing" (an engine that shares .grad arrays)."""
    release_nb = nbformat.read(release_notebook(root), as_version=4)
    if base == "blank":
        return release_nb
    if base == "aliasing":
        variants = {variant.name: variant for variant in load_variants(root / "corpus" / "validity.py")}
        return variant_notebook(variants["backward_shares_grad_array"], root=root)
    bodies = instructor_bodies(nbformat.read(source_notebook(root), as_version=4))
    return submission_notebook(release_nb, {"exercise_backward": bodies["exercise_backward"]})


def attack_notebook(attack, *, root: Path, tokens: dict[str, str]):
    """A tamper-corpus attack as a submission: its code (with ``tokens`` replaced) appended to the
    exercise_mul cell of its base notebook, the last cell the grader runs, then its edit applied."""
    notebook = base_notebook(attack.base, root=root)
    if attack.code:
        code = attack.code
        for token, value in tokens.items():
            code = code.replace(token, value)
        for cell in notebook.cells:
            if nbgrader_meta(cell).get("grade_id") == "exercise_mul":
                cell.source += "\n\n" + code
    if attack.edit:
        attack.edit(notebook)
    return notebook
