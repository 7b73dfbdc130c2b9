"""Grading one submission: the pipeline, stage by stage, each in its own module.

    read the submission            submission.py
    build the job                  job.py: the cells that build the student's engine
                                   (given cells from source/, the student's solution
                                   cells and added cells) and the scenarios' order
    run in the sandbox             engine_runner.py, engine_host.py (inside), remote_engine.py:
                                   every scenario runs here, against a proxy of the engine
    judge                          judge.py: against the reference engine's observations
                                   (scenarios.py), computed meanwhile in a thread; where a
                                   failing scenario probably goes wrong (scenario_graph.py)
    record, report                 gradebook.py; formats.py, feedback.py

Nothing secret or authoritative enters the student's process: it receives
cells and operations with their operand values, never scenario code, names,
seeds or expected values, and answers with values the grader decodes
strictly (protocol.py).  Every clock is the grader's.
"""

from __future__ import annotations

import functools
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from . import sandbox
from .assignment import Assignment, Scenario, load_assignment
from .engine_runner import EngineRunner, RunnerState, Timing
from .results import Diagnosis, GradeResult, Status, TestResult
from .judge import judge
from .scenario_graph import locate_culprit
from .scenario_runtime import run_scenario
from .scenarios import fresh_base_seed, reference_namespace, scenario_seed
from .job import job_cells, scenario_order
from .submission import read_submission

# One budget for the whole submission, and a deadline for every request inside
# it: a cell or a backward() that never returns costs one request's time, then
# a fresh engine process takes the remaining scenarios.
DEFAULT_LIMITS = sandbox.Limits(wall_seconds=60.0, cpu_seconds=60, memory_bytes=2 * 1024**3,
                                max_processes=16, output_bytes=4 * 1024**2)
REQUEST_SECONDS = 10.0
# Failing scenarios whose graph is probed for the node at fault (feedback only; each costs a few round trips).
MAX_DIAGNOSED_SCENARIOS = 4


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
    seed = fresh_base_seed() if base_seed is None else base_seed
    student = student or path.stem
    read = read_submission(path, assignment)
    context = dict(student=student, submission=path.name, seed=seed,
                   isolation=isolation.level,
                   isolation_detail=f"{isolation.level}: {isolation.detail}", started=started)
    if read.status is not None:
        return _ungraded(assignment, read.status, read.message, hidden_visibility, **context)

    cells, skipped = job_cells(assignment, read)
    timing = Timing(request_seconds=REQUEST_SECONDS, budget_seconds=limits.wall_seconds)
    # The reference engine's results are computed meanwhile, in a thread: the
    # grading thread spends most of its time waiting for the sandboxed process.
    with ThreadPoolExecutor(max_workers=1) as pool:
        expected = pool.submit(reference_results, assignment, seed)
        with EngineRunner(cells, isolation=isolation, limits=limits, timing=timing) as runner:
            actual = {
                (test.grade_id, scenario.name): runner.run(scenario.function(), scenario_seed(scenario.name, seed))
                for test, scenario in scenario_order(assignment, seed)
            }
            tests = judge(assignment, expected.result(), actual, hidden_visibility, _diagnoser(runner, seed))
    status, message = _run_status(runner.state, limits)
    notes = list(read.notes) + skipped + runner.state.notes
    return _result(assignment, tests, status, message, notes, **context)


def reference_results(assignment: Assignment, seed: int) -> dict[tuple[str, str], dict]:
    """What every scenario observes on the reference engine with this run's inputs.

    Computed once per assignment and seed in a process (a class run grades all
    its submissions with the run's seed); callers only read what it returns.
    """
    return _reference_results(assignment, seed)


@functools.lru_cache(maxsize=2)
def _reference_results(assignment: Assignment, seed: int) -> dict[tuple[str, str], dict]:
    reference = reference_namespace()
    results = {}
    for test in assignment.tests:
        for scenario in test.scenarios:
            result = run_scenario(scenario.function(), reference, scenario_seed(scenario.name, seed))
            if "error" in result:
                raise RuntimeError(f"the reference engine fails {scenario.name}: {result['error']}")
            results[(test.grade_id, scenario.name)] = result
    return results


def _diagnoser(runner: EngineRunner, seed: int) -> Callable[[Scenario], Diagnosis | None]:
    """Where a failing scenario probably goes wrong, probed on the student's engine, for a few scenarios."""
    remaining = [MAX_DIAGNOSED_SCENARIOS]

    def diagnose(scenario: Scenario) -> Diagnosis | None:
        if remaining[0] <= 0:
            return None
        remaining[0] -= 1
        try:
            return locate_culprit(scenario, scenario_seed(scenario.name, seed), runner.probe)
        except Exception:  # noqa: BLE001 - a diagnosis is a hint: failing to make one costs nothing
            return None

    return diagnose


def _run_status(state: RunnerState, limits: sandbox.Limits) -> tuple[Status, str]:
    if state.status == Status.GRADED:
        return Status.GRADED, ""
    if state.status == Status.TIMEOUT:
        return Status.TIMEOUT, (f"grading stopped after the submission's time budget of {limits.wall_seconds:g} s; "
                           "tests that did not run score 0. Look for an infinite loop or a backward() that "
                           "follows every path separately.")
    return Status.CRASHED, (f"{state.gave_up}; tests that did not run score 0. Look for sys.exit(), os._exit(), "
                       "unbounded memory or output.")


def ungraded(assignment: Assignment, status: Status, message: str, *, student: str, submission: str, seed: int,
             isolation: str, hidden_visibility: str = "after_due_date") -> GradeResult:
    """A result that gives every test 0 with ``message``: for what could not be graded at all."""
    return _ungraded(assignment, status, message, hidden_visibility, student=student, submission=submission,
                     seed=seed, isolation=isolation, started=time.perf_counter())


def _ungraded(assignment: Assignment, status: Status, message: str, hidden_visibility: str, **context) -> GradeResult:
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
