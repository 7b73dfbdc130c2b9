"""Grading a whole class: every submission in nbgrader's submitted/ folder, one after another.

A bad submission never stops the batch: it is graded with its status and a
zero for what could not be graded, and the loop goes on.

A folder under submitted/ whose name is not a valid student id (see
``identity``) is neither graded nor recorded, and gets no feedback folder:
grading it under a cleaned-up name could put its scores on another
student's row, and its own name could point outside feedback/.  It is listed
with the reason at the end of the class table (and counted in a warning on
standard error by the command line), so that the instructor can rename the
folder and grade again; the rest of the class is graded as usual.  It is left
out of the class table and CSV, whose rows are the gradebook's students.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .assignment import load_assignment
from .course import ASSIGNMENT, source_notebook, submission_notebook_path, submitted_folder
from .feedback import write_feedback
from .gradebook import ensure_assignment, record
from .grader import SandboxUnavailable, grade_submission, ungraded
from .identity import student_id_problem
from .results import GradeResult, Status


@dataclass
class SkippedFolder:
    shown_name: str  # the folder's name as ascii() writes it: quoted, every odd character escaped
    reason: str


@dataclass
class ClassReport:
    results: list[GradeResult]  # this run's, in the order graded
    skipped: list[SkippedFolder] = field(default_factory=list)

    def skipped_text(self) -> str:
        """The folders that were not graded, and why: printed after the class table."""
        if not self.skipped:
            return ""
        lines = ["Not graded: folders under submitted/ whose names are not valid student ids "
                 "(rename them and grade again):"]
        lines += [f"  {folder.shown_name}: {folder.reason}" for folder in self.skipped]
        return "\n".join(lines)


@dataclass
class ClassFolders:
    submissions: list[tuple[str, Path]]  # (student id, notebook path), sorted by id
    skipped: list[SkippedFolder]


def class_folders(root: Path) -> ClassFolders:
    """Every student folder under submitted/: the valid ids with their notebook path, and the rest."""
    folder = submitted_folder(root)
    found = ClassFolders([], [])
    if not folder.is_dir():
        return found
    for student in sorted(folder.iterdir()):
        if not student.is_dir():
            continue
        problem = student_id_problem(student.name)
        if problem is None:
            found.submissions.append((student.name, submission_notebook_path(root, student.name)))
        else:
            found.skipped.append(SkippedFolder(ascii(student.name)[:200], problem))
    return found


def grade_class(root: Path, *, base_seed: int | None = None, allow_unsandboxed: bool = False,
                progress=print) -> ClassReport:
    ensure_assignment(root)
    assignment = load_assignment(source_notebook(root))
    folders = class_folders(root)
    for skipped in folders.skipped:
        progress(f"{skipped.shown_name}: not graded: {skipped.reason}")
    results = []
    for student, path in folders.submissions:
        # A missing notebook is graded too: the student gets the status "missing", not silence.
        try:
            result = grade_submission(path, root=root, student=student, base_seed=base_seed,
                                      allow_unsandboxed=allow_unsandboxed)
        except SandboxUnavailable:
            raise  # no student can be graded: stop and say how to get a sandbox
        except Exception as error:  # noqa: BLE001 - one submission must not stop the class
            result = ungraded(assignment, Status.GRADER_ERROR,
                              f"the grader failed on this submission ({type(error).__name__}); it scores 0 "
                              "until an instructor regrades it", student=student, submission=path.name,
                              seed=base_seed or 0, isolation="not reached")
        record(result, root=root)
        write_feedback(result, assignment, root / "feedback" / student / ASSIGNMENT)
        progress(f"{student}: {result.score:g}/{result.max_score:g} ({result.status})")
        results.append(result)
    return ClassReport(results, folders.skipped)
