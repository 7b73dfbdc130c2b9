"""Grading a whole class: every submission in nbgrader's submitted/ folder, one after another.

A bad submission never stops the batch: it is graded with its status and a
zero for what could not be graded, and the loop goes on.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from .assignment import load_assignment
from .course import ASSIGNMENT, NOTEBOOK, source_notebook
from .feedback import write_feedback
from .gradebook import ensure_assignment, record
from .grader import GradeResult, SandboxUnavailable, grade_submission, ungraded


@dataclass
class ClassReport:
    results: list[GradeResult]

    def table(self) -> str:
        width = max((len(r.student) for r in self.results), default=7)
        lines = [f"{'student':<{width}}  {'score':>9}  status", "-" * (width + 30)]
        for r in self.results:
            lines.append(f"{r.student:<{width}}  {r.score:>4g}/{r.max_score:<4g}  {r.status}"
                         + (f" ({r.message[:60]})" if r.message else ""))
        return "\n".join(lines)

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        tests = [t.name for t in self.results[0].tests] if self.results else []
        writer.writerow(["student", "status", "score", "max_score", "seed", *tests])
        for r in self.results:
            writer.writerow([r.student, r.status, r.score, r.max_score, r.seed, *[t.score for t in r.tests]])
        return buffer.getvalue()


def submissions(root: Path) -> list[tuple[str, Path]]:
    """(student id, notebook path) for every student folder under submitted/, sorted by id."""
    folder = root / "submitted"
    if not folder.is_dir():
        return []
    return [(student.name, student / ASSIGNMENT / NOTEBOOK) for student in sorted(folder.iterdir())
            if student.is_dir()]


def grade_class(root: Path, *, base_seed: int | None = None, allow_unsandboxed: bool = False,
                progress=print) -> ClassReport:
    ensure_assignment(root)
    assignment = load_assignment(source_notebook(root))
    results = []
    for student, path in submissions(root):
        # A missing notebook is graded too: the student gets the status "missing", not silence.
        try:
            result = grade_submission(path, root=root, student=student, base_seed=base_seed,
                                      allow_unsandboxed=allow_unsandboxed)
        except SandboxUnavailable:
            raise  # no student can be graded: stop and say how to get a sandbox
        except Exception as error:  # noqa: BLE001 - one submission must not stop the class
            result = ungraded(assignment, "grader_error",
                              f"the grader failed on this submission ({type(error).__name__}); it scores 0 "
                              "until an instructor regrades it", student=student, submission=path.name,
                              seed=base_seed or 0, isolation="not reached")
        record(result, root=root)
        write_feedback(result, assignment, root / "feedback" / student / ASSIGNMENT)
        progress(f"{student}: {result.score:g}/{result.max_score:g} ({result.status})")
        results.append(result)
    return ClassReport(results)
