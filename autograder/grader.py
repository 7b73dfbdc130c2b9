"""Grading one submission: the student's engine runs in a sandbox, the score is decided here.

The pipeline:

    read the submission (submission.py) -> build the job: the instructor's given
    cells, the student's solution cells, every test's scenarios with fresh seeds
    -> run child_runner.py in the sandbox (sandbox.py) -> parse its report lines
    -> run the same scenarios on the reference engine here -> compare
    (scenarios.py) -> a GradeResult with one TestResult per test cell.

What crosses from the child is JSON lines that are parsed and checked here;
nothing the child does can change a score except computing the right
observations for inputs it could not know in advance.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import sandbox
from .assignment import Assignment, TestCell, load_assignment
from .child_report import ChildReport, parse_report
from .scenario_runtime import run_scenario
from .scenarios import compare_results, reference_namespace, scenario_seed
from .results import GradeResult, ScenarioOutcome, TestResult
from .submission import blank_solution, read_submission

HERE = Path(__file__).resolve().parent
CHILD_FILES = ("child_runner.py", "scenario_runtime.py")

# One budget for the whole submission, and smaller limits inside it: a loop
# that ignores the per-cell alarm costs the budget once, not once per cell.
DEFAULT_LIMITS = sandbox.Limits(wall_seconds=60.0, cpu_seconds=60, memory_bytes=2 * 1024**3,
                                max_processes=16, output_bytes=4 * 1024**2)
CELL_SECONDS = 10.0
SCENARIO_SECONDS = 10.0


class SandboxUnavailable(RuntimeError):
    """No isolation here, and the caller did not accept grading without it."""


def grade_submission(
    path: Path,
    *,
    root: Path,
    student: str | None = None,
    base_seed: int | None = None,
    allow_unsandboxed: bool = False,
    hidden_visibility: str = "after_due_date",
    limits: sandbox.Limits = DEFAULT_LIMITS,
) -> GradeResult:
    started = time.perf_counter()
    from .course import source_notebook

    assignment = load_assignment(source_notebook(root))
    isolation = sandbox.detect_isolation()
    if isolation.level == "none" and not allow_unsandboxed:
        raise SandboxUnavailable(
            "no sandbox is available on this machine, so student code cannot be isolated from the "
            f"grader ({isolation.detail}). {isolation.how_to_enable} "
            "To grade anyway, on a machine where students cannot harm anything, pass --unsafe-no-sandbox."
        )
    seed = secrets.randbelow(2**31) if base_seed is None else base_seed
    student = student or path.stem
    read = read_submission(path, assignment)
    context = dict(student=student, submission=path.name, seed=seed,
                   isolation=isolation.level,
                   isolation_detail=f"{isolation.level}: {isolation.detail}", started=started)
    if read.status != "ok":
        return _ungraded(assignment, read.status, read.message, hidden_visibility, **context)

    job = build_job(assignment, read.solutions, seed)
    run = run_child(job, limits=limits, isolation=isolation)
    report = parse_report(run.stdout, job)
    tests = judge(assignment, report, seed, hidden_visibility)
    status, message = _run_status(run, report, limits)
    notes = list(read.notes) + _cell_notes(report)
    return _result(assignment, tests, status, message, notes, **context)


def build_job(assignment: Assignment, solutions: dict[str, str], seed: int) -> dict:
    """The child's instructions: cells to run in order, and every test's scenarios with their seeds."""
    cells = []
    for cell in assignment.engine_cells:
        source = cell.source
        if cell.is_solution:
            source = solutions.get(cell.cell_id, blank_solution(cell))
        cells.append({"id": cell.cell_id, "source": source})
    tests = [
        {"id": test.grade_id,
         "scenarios": [{"name": s.name, "source": s.source, "seed": scenario_seed(s.name, seed)}
                       for s in test.scenarios]}
        for test in assignment.tests
    ]
    return {"cells": cells, "tests": tests, "cell_timeout": CELL_SECONDS, "scenario_timeout": SCENARIO_SECONDS}


def run_child(job: dict, *, limits: sandbox.Limits, isolation: sandbox.Isolation) -> sandbox.SandboxResult:
    """Run child_runner.py on ``job`` in a fresh scratch folder that is deleted afterwards."""
    scratch = Path(tempfile.mkdtemp(prefix="grade-"))
    try:
        for name in CHILD_FILES:
            shutil.copy(HERE / name, scratch / name)
        binds = sandbox.package_binds("numpy")
        inside = [inside_path for _, inside_path in binds] if isolation.level != "none" else []
        job = dict(job, sys_path=sorted({str(Path(p).parent) for p in inside}))
        (scratch / "job.json").write_text(json.dumps(job), encoding="utf-8")
        argv = [sys.executable, "-E", "-s", "child_runner.py", "job.json"]
        return sandbox.run_sandboxed(argv, scratch=scratch, read_only=binds if inside else (),
                                     limits=limits, isolation=isolation)
    finally:
        remove_tree(scratch)


def remove_tree(path: Path) -> None:
    """Delete a scratch folder whatever the submission left in it.

    ``rm -rf`` walks the tree without recursion; shutil.rmtree recurses and
    fails on a folder nested a few thousand levels deep.
    """
    try:
        subprocess.run(["rm", "-rf", "--", str(path)], check=False, capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        shutil.rmtree(path, ignore_errors=True)


def judge(assignment: Assignment, report: ChildReport, seed: int, hidden_visibility: str) -> list[TestResult]:
    """Compare every scenario's result with the reference engine's; all scenarios of a test must agree."""
    reference = reference_namespace()
    tests = []
    for test in assignment.tests:
        outcomes = []
        for scenario in test.scenarios:
            expected = run_scenario(scenario.function(), reference, scenario_seed(scenario.name, seed))
            if "error" in expected:
                raise RuntimeError(f"the reference engine fails {scenario.name}: {expected['error']}")
            actual = report.scenario_results.get((test.grade_id, scenario.name))
            if actual is None:
                problems = ["not run: grading stopped before this scenario (see the submission's status)"]
            else:
                problems = _compare_safely(expected, actual)
            outcomes.append(ScenarioOutcome(scenario.name, scenario.summary, not problems, problems))
        tests.append(_test_result(test, outcomes, hidden_visibility))
    return tests


def _compare_safely(expected: dict, actual: dict) -> list[str]:
    # The child's result was validated already; a failure here is a grader bug,
    # and it must cost this scenario only, never the whole batch.
    try:
        return compare_results(expected, actual)
    except Exception as error:  # noqa: BLE001
        return [f"the grader could not compare this result ({type(error).__name__}); tell your instructor"]


def _test_result(test: TestCell, outcomes: list[ScenarioOutcome], hidden_visibility: str) -> TestResult:
    passed = all(outcome.passed for outcome in outcomes)
    lines = []
    for outcome in outcomes:
        if not outcome.passed:
            lines.append(outcome.summary)
            lines += [f"  - {problem}" for problem in outcome.problems]
    output = "All checks passed." if passed else "\n".join(lines)
    return TestResult(
        name=test.grade_id, title=test.title, score=test.points if passed else 0.0, max_score=test.points,
        status="passed" if passed else "failed", output=output, hidden=test.hidden,
        visibility=hidden_visibility if test.hidden else "visible", scenarios=outcomes,
    )


def _run_status(run: sandbox.SandboxResult, report: ChildReport, limits: sandbox.Limits) -> tuple[str, str]:
    # Completeness is judged from the results themselves and the exit code,
    # not from anything the child says about itself (a "done" line is forgeable).
    if report.complete and run.returncode == 0:
        return "graded", ""
    if run.timed_out:
        return "timeout", (f"grading stopped after the submission's time budget of "
                           f"{limits.wall_seconds:g} s; tests that did not run score 0. "
                           "Look for an infinite loop or a backward() that follows every path separately.")
    reason = run.killed_reason or f"exit code {run.returncode}"
    return "crashed", (f"your code stopped the grading process early ({reason}); tests that did not run "
                       "score 0. Look for sys.exit(), os._exit(), unbounded memory or output.")


def _cell_notes(report: ChildReport) -> list[str]:
    return [f"cell {cell_id} raised {error}" for cell_id, error in report.cell_errors.items() if error]


def ungraded(assignment: Assignment, status: str, message: str, *, student: str, submission: str, seed: int,
             isolation: str, hidden_visibility: str = "after_due_date") -> GradeResult:
    """A result that gives every test 0 with ``message``: for what could not be graded at all."""
    return _ungraded(assignment, status, message, hidden_visibility, student=student, submission=submission,
                     seed=seed, isolation=isolation, started=time.perf_counter())


def _ungraded(assignment: Assignment, status: str, message: str, hidden_visibility: str, **context) -> GradeResult:
    outcome_text = f"not graded: {message}"
    tests = [
        TestResult(test.grade_id, test.title, 0.0, test.points, "failed", outcome_text, test.hidden,
                   hidden_visibility if test.hidden else "visible")
        for test in assignment.tests
    ]
    return _result(assignment, tests, status, message, [], **context)


def _result(assignment, tests, status, message, notes, *, student, submission, seed, isolation, started,
            isolation_detail=""):
    return GradeResult(
        student=student, submission=submission, status=status, message=message,
        score=sum(test.score for test in tests), max_score=assignment.max_score, seed=seed,
        isolation=isolation, execution_time=round(time.perf_counter() - started, 3), tests=tests, notes=notes,
        isolation_detail=isolation_detail,
    )
