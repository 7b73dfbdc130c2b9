"""Grading notebooks with real ``nbgrader autograde``, in a scratch copy of the course.

The release checks and the validity corpus grade under nbgrader too, to show
that the notebook's own tests (run inside the student's kernel) and the
trusted grader agree.  The course's own gradebook is never touched.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import nbformat

from .course import ASSIGNMENT, NOTEBOOK, copy_course, nbgrader, submission_notebook_path
from .gradebook import class_scores
from .results import CellScore


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
