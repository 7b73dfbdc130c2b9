"""``python -m autograder release``: generate the student notebook and check the assignment."""

from __future__ import annotations

from pathlib import Path

import nbformat

from .checks import CheckResult, static_checks
from .nbgrader_autograde import autograde_with_nbgrader, ran_to_end
from .progress import step
from .validity import lost_tests
from .variants import instructor_bodies, submission_notebook
from .course import ASSIGNMENT, nbgrader, release_notebook, source_notebook


def generate_release(root: Path) -> Path:
    """Run nbgrader's generate_assignment: writes release/ and (re)creates the assignment in gradebook.db."""
    nbgrader("generate_assignment", ASSIGNMENT, "--force", "--create", root=root)
    return release_notebook(root)


def check_validate(root: Path) -> CheckResult:
    """``nbgrader validate`` passes on the instructor notebook (it executes every test)."""
    result = CheckResult("nbgrader validate passes on the instructor notebook")
    run = nbgrader("validate", str(source_notebook(root)), root=root, check=False)
    output = run.stdout + run.stderr
    if run.returncode != 0 or "Success!" not in output:
        result.problems.append("nbgrader validate failed:\n" + output[-3000:])
    return result


def check_blank_and_solution(root: Path) -> list[CheckResult]:
    """Under ``nbgrader autograde``: the blank release runs to the end and scores 0 on every
    test; the instructor's solution scores full points on every test."""
    source_nb = nbformat.read(source_notebook(root), as_version=4)
    release_nb = nbformat.read(release_notebook(root), as_version=4)
    notebooks = {
        "blank": release_nb,
        "instructor": submission_notebook(release_nb, instructor_bodies(source_nb)),
    }
    scores, autograded = autograde_with_nbgrader(notebooks, root=root)
    blank = CheckResult("the blank release runs to the end and scores 0 on every test")
    if not ran_to_end(autograded["blank"]):
        blank.problems.append("the blank release did not run to its last cell")
    if not scores["blank"]:
        blank.problems.append("the blank release was not graded")
    for grade_id, cell in scores["blank"].items():
        if cell.score != 0:
            blank.problems.append(f"{grade_id} gives {cell.score} points to the blank release")
    full = CheckResult("the instructor's solution scores 100%")
    if not scores["instructor"]:
        full.problems.append("the instructor's solution was not graded")
    for grade_id in sorted(lost_tests(scores["instructor"])):
        cell = scores["instructor"][grade_id]
        full.problems.append(f"{grade_id}: {cell.score} of {cell.max_score} points")
    return [blank, full]


def release(root: Path, *, execute: bool = True) -> list[CheckResult]:
    """Generate the release, then run the assignment checks (the executing ones unless told not to)."""
    step("generating release/ from source/ with nbgrader generate_assignment ...")
    generate_release(root)
    results = static_checks(source_notebook(root), release_notebook(root))
    if execute:
        step("running nbgrader validate on the instructor notebook (it executes every test) ...")
        results.append(check_validate(root))
        step("grading the blank release and the instructor's solution with nbgrader autograde ...")
        results.extend(check_blank_and_solution(root))
    return results
