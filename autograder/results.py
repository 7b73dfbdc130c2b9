"""What grading produces: one result per submission, one per test, one per scenario.

Plain dataclasses with no behaviour, so that everything that prints, records or
explains a grade (formats, feedback, gradebook, class reports) can import them
without pulling in the sandbox or numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    """How grading a submission ended. A str, so JSON, CSV and comparisons see the plain word."""

    GRADED = "graded"  # every test ran (failing tests included)
    TIMEOUT = "timeout"  # the time budget ran out: tests that did not run score 0
    CRASHED = "crashed"  # the engine's process kept dying: tests that did not run score 0
    MISSING = "missing"  # no notebook where one was expected
    INVALID_NOTEBOOK = "invalid_notebook"  # not a readable Jupyter notebook
    WRONG_ASSIGNMENT = "wrong_assignment"  # a notebook, but with none of this assignment's exercise cells
    GRADER_ERROR = "grader_error"  # the grader itself failed on this submission


@dataclass(frozen=True)
class CellScore:
    """One test cell's points as the gradebook holds them."""

    score: float | None  # None: nbgrader left it ungraded (needs manual grading)
    max_score: float


@dataclass(frozen=True)
class Diagnosis:
    """Where a failing scenario probably goes wrong (found by scenario_graph.py; feedback only)."""

    position: int | None  # the operation probably at fault, or None: the nodes agree, look at backward()
    text: str


@dataclass
class ScenarioOutcome:
    name: str
    summary: str
    passed: bool
    problems: list[str]
    # Where the feedback points (scenario_graph.py): the operation probably at fault, as its position
    # among the graph's operations counted leaves first, or None; and the sentence saying what was found.
    culprit: int | None = None
    diagnosis: str = ""


@dataclass
class TestResult:
    name: str
    title: str
    score: float
    max_score: float
    status: str  # "passed" or "failed"
    output: str
    hidden: bool
    visibility: str
    scenarios: list[ScenarioOutcome] = field(default_factory=list)


@dataclass
class GradeResult:
    student: str
    submission: str
    status: Status
    message: str
    score: float
    max_score: float
    seed: int  # instructor-only: with it, hidden inputs can be recomputed
    isolation: str  # the isolation level alone ("bubblewrap", "unshare", "none"): safe to show students
    execution_time: float
    tests: list[TestResult]
    notes: list[str] = field(default_factory=list)
    # Instructor-only: what the sandbox isolated, with host paths; never shown to students.
    isolation_detail: str = ""


@dataclass
class ClassRow:
    """One student's line of a class table or CSV: nbgrader export's columns, then this grader's record."""

    student_id: str
    assignment: str
    duedate: str
    timestamp: str
    last_name: str
    first_name: str
    email: str
    raw_score: float
    late_submission_penalty: float
    score: float
    max_score: float
    # From this grader's record of the student's last grading ("" and None if it has none: a grade
    # nbgrader autograde made, or a student in the gradebook who never submitted).
    status: str = ""
    message: str = ""
    seed: int | None = None  # instructor-only
    tests: dict[str, float | None] = field(default_factory=dict)  # grade_id -> points (None: manual)
