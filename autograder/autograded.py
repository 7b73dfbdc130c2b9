"""The autograded notebook nbgrader expects, written from the trusted result.

``nbgrader autograde`` leaves ``autograded/<student>/<assignment>/`` holding
the executed submission: formgrader shows it, and ``nbgrader
generate_feedback`` turns it into the student's feedback.  The trusted grader
never runs the student's notebook in a kernel, so it writes that notebook
itself, as nbgrader's OverwriteCells would have it: the instructor's cells
from ``source/``, the student's exercise cells (the release's stub where one
is missing, never the instructor's solution) and the cells the student
added, where they stood.  Each test cell's output is the trusted result for
that test; what the student's code printed is not shown.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import nbformat

from . import literal
from .assignment import EngineCell
from .checks import nbgrader_meta
from .course import ASSIGNMENT, NOTEBOOK, source_notebook
from .intake import SUBMISSION_SECRET
from .results import GradeResult
from .submission import AddedCell, ReadSubmission, blank_solution


def autograded_folder(root: Path, student: str) -> Path:
    return root / "autograded" / student / ASSIGNMENT


def write_autograded(root: Path, result: GradeResult, read: ReadSubmission | None,
                     submitted_at: dt.datetime | None, secret: Path | None = None) -> Path:
    """Write the student's autograded notebook (and nbgrader's timestamp.txt and the exchange's
    ``secret``, see ``_keep_submission_secret``); returns its path."""
    source = nbformat.read(source_notebook(root), as_version=4)
    tests = {test.name: test for test in result.tests}
    solutions = read.solutions if read else {}
    added: dict[str | None, list[AddedCell]] = {}
    for cell in read.added if read else []:
        added.setdefault(cell.after, []).append(cell)

    cells = [nbformat.v4.new_code_cell(cell.source) for cell in added.get(None, [])]
    for cell in source.cells:
        meta = nbgrader_meta(cell)
        grade_id = meta.get("grade_id")
        if meta.get("solution"):
            cell.source = solutions.get(grade_id) or blank_solution(EngineCell(grade_id, cell.source, True))
        if cell.cell_type == "code":
            cell.outputs = _outputs(tests.get(grade_id))
            cell.execution_count = None
        cells.append(cell)
        cells += [nbformat.v4.new_code_cell(extra.source) for extra in added.get(grade_id, [])]
    source.cells = cells

    folder = autograded_folder(root, result.student)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / NOTEBOOK
    partial = folder / (NOTEBOOK + ".partial")
    nbformat.write(source, partial)
    partial.replace(path)
    if submitted_at is not None:
        # nbgrader's own format (parse_utc reads it back).
        (folder / "timestamp.txt").write_text(submitted_at.strftime("%Y-%m-%d %H:%M:%S.%f %Z"), encoding="utf-8")
    _keep_submission_secret(secret, folder)
    return path


def _keep_submission_secret(secret: Path | None, folder: Path) -> None:
    """Carry the exchange's submission secret to autograded/, as ``nbgrader autograde`` does.

    generate_feedback copies it on to feedback/, where ``nbgrader release_feedback`` needs it: the
    page is published under a hash of it, which only the student's own ``fetch_feedback`` can
    recompute, and without it release_feedback stops with FileNotFoundError at this student.
    Submissions that did not come through the exchange have none, and a stale one is removed.
    """
    kept = folder / SUBMISSION_SECRET
    if secret is not None:
        shutil.copyfile(secret, kept)
    else:
        kept.unlink(missing_ok=True)


def _outputs(test) -> list:
    """A test cell's output: the trusted verdict and its explanation, as text."""
    if test is None:
        return []
    if test.status == "passed":
        text = f"passed: {test.score:g} of {test.max_score:g} points (graded by the trusted grader)\n"
        return [nbformat.v4.new_output("stream", name="stdout", text=text)]
    text = (f"failed: {test.score:g} of {test.max_score:g} points (graded by the trusted grader)\n"
            + literal.for_text(test.output, indent="  ") + "\n")
    return [nbformat.v4.new_output("stream", name="stderr", text=text)]
