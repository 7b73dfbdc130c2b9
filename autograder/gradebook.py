"""Writing grades into nbgrader's gradebook, through nbgrader's own API.

So that ``nbgrader export``, formgrader and feedback see the trusted grader's
scores exactly as if ``nbgrader autograde`` had produced them.  Only the
autograded test cells are written: cells that need manual grading keep their
state, and grading the same student again replaces the scores.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .course import ASSIGNMENT, NOTEBOOK_NAME, copy_course, nbgrader
from .identity import check_student_id
from .results import CellScore, GradeResult


def gradebook_url(root: Path) -> str:
    return "sqlite:///" + str(root / "gradebook.db")


def assignment_in_gradebook(root: Path) -> bool:
    from nbgrader.api import Gradebook, MissingEntry

    if not (root / "gradebook.db").exists():
        return False
    with Gradebook(gradebook_url(root)) as gradebook:
        try:
            gradebook.find_notebook(NOTEBOOK_NAME, ASSIGNMENT)
        except MissingEntry:
            return False
    return True


def ensure_assignment(root: Path) -> None:
    """Create the assignment and its cells in the gradebook from source/, if they are not there yet.

    nbgrader records an assignment's cells while it generates the student
    version, so it runs in a scratch copy of the course that writes into this
    course's gradebook: release/ is never touched here (only ``python -m
    autograder release`` writes it, and checks what it wrote).
    """
    if assignment_in_gradebook(root):
        return
    with tempfile.TemporaryDirectory(prefix="gradebook-assignment-") as scratch:
        course = copy_course(root, Path(scratch), folders=("source",))
        nbgrader("generate_assignment", ASSIGNMENT, "--force", "--create",
                 f"--CourseDirectory.db_url={gradebook_url(root)}", root=course)


def record(result: GradeResult, *, root: Path) -> None:
    """Store ``result``'s test scores as the student's autograded scores for the assignment.

    Raises InvalidStudentId before touching the gradebook if ``result.student``
    is not a valid id: the last guard for a caller that forgot to check it.
    """
    from nbgrader.api import Gradebook

    check_student_id(result.student)
    ensure_assignment(root)
    with Gradebook(gradebook_url(root)) as gradebook:
        gradebook.update_or_create_student(result.student)
        gradebook.update_or_create_submission(ASSIGNMENT, result.student)
        for test in result.tests:
            grade = gradebook.find_grade(test.name, NOTEBOOK_NAME, ASSIGNMENT, result.student)
            grade.auto_score = test.score
            grade.needs_manual_grade = False
        gradebook.db.commit()


def scores_in_gradebook(student: str, *, root: Path) -> dict[str, tuple[float | None, bool]]:
    """grade_id -> (score, needs_manual_grade) for one student, as nbgrader reports it."""
    from nbgrader.api import Gradebook

    with Gradebook(gradebook_url(root)) as gradebook:
        submitted = gradebook.find_submission_notebook(NOTEBOOK_NAME, ASSIGNMENT, student)
        return {grade.name: (grade.score, grade.needs_manual_grade) for grade in submitted.grades}


def class_scores(*, root: Path):
    """Every student's autograded scores for the assignment: student -> grade_id -> CellScore."""
    from nbgrader.api import Gradebook, MissingEntry

    scores = {}
    with Gradebook(gradebook_url(root)) as gradebook:
        for student in sorted(s.id for s in gradebook.students):
            try:
                submitted = gradebook.find_submission_notebook(NOTEBOOK_NAME, ASSIGNMENT, student)
            except MissingEntry:
                continue
            scores[student] = {
                grade.name: CellScore(None if grade.needs_manual_grade else grade.score, grade.max_score)
                for grade in submitted.grades
            }
    return scores
