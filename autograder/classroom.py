"""Grading a whole class: every submission of an intake, in parallel, resumable, into the gradebook.

The pipeline:

    read the intake (intake.py: nbgrader's submitted/, a folder, an LMS zip)
    -> decide what to grade: a submission already recorded with the same
       notebook bytes, the same submission time and the same assignment (the
       instructor notebook and the reference engine) is kept, unless ``force``,
       or ``student`` names it
    -> grade in worker processes, each submission as ``grade_submission``
       grades one; at most two per worker are in flight, so memory stays
       bounded whatever the class size
    -> record, in this process only (the gradebook's one writer): scores,
       submission time and late penalty, the autograded notebook, feedback,
       and results.json last
    -> the class outputs: grades.csv, junit.xml and the class report.

Crash safety: a student's results.json is written last, whole, then renamed
into place, and a grade is only "done" once it is there.  Kill the run at any
moment and run it again: what was recorded is kept, what was not is graded,
and re-recording a student replaces their grades (nbgrader's update-or-create),
so nothing is lost or counted twice.

A bad submission never stops the batch: it is recorded with its status and
a zero for what could not be graded.  When the grader itself fails on one
submission, it tries once more, then records ``grader_error`` and goes on.
A folder or file whose name is not a valid student id is not graded (see
``identity``) and is listed at the end.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from .assignment import Assignment, load_assignment
from .autograded import write_autograded
from .class_outputs import write_class_outputs
from .course import assignment_fingerprint, source_notebook, students_folder
from .feedback import write_feedback
from .gradebook import ensure_assignment, read_record, record
from .grader import SandboxUnavailable, grade_submission, ungraded
from .intake import Intake, Shard, Skipped, Submission, read_intake
from .progress import Progress
from .results import GradeResult, Status
from .shards import write_manifest
from .scenarios import fresh_base_seed
from .submission import read_submission

# A worker process is replaced after this many submissions, so that whatever a
# grading leaves behind in it (memory, module state) cannot build up over a class.
TASKS_PER_WORKER = 50


@dataclass
class ClassRun:
    intake: Intake
    graded: list[GradeResult] = field(default_factory=list)  # graded and recorded in this run
    kept: list[str] = field(default_factory=list)  # unchanged since they were recorded: not graded again
    other_shards: int = 0  # submissions left to the other shards of a --shard run
    seconds: float = 0.0

    @property
    def skipped(self) -> list[Skipped]:
        return self.intake.skipped


class UnknownStudent(ValueError):
    """``student`` was given but the intake has no such submission (a usage error)."""


def grade_class(root: Path, *, source: Path | None = None, workers: int | None = None, force: bool = False,
                student: str | None = None, base_seed: int | None = None, allow_unsandboxed: bool = False,
                show_progress: bool = True, shard: Shard | None = None) -> ClassRun:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="class-intake-") as scratch:
        intake = read_intake(source or root / "submitted", scratch=Path(scratch))
        run = ClassRun(intake)
        everyone = [s.student for s in intake.submissions]
        if shard is not None:
            inside = [s for s in intake.submissions if shard.holds(s.student)]
            run.other_shards = len(intake.submissions) - len(inside)
            intake.submissions = inside
        submissions = intake.submissions
        if student is not None:
            submissions = [s for s in submissions if s.student == student]
            if not submissions:
                raise UnknownStudent(f"no submission of {student!r} in {intake.looked}")
        if not submissions:
            if shard is not None and everyone:
                write_manifest(root, shard, everyone, [])  # an empty slice is still a finished one
            return run
        # Recording needs the assignment in the gradebook (nbgrader takes seconds to put it there the
        # first time): that happens in a thread while the first submissions are graded.
        setup = ThreadPoolExecutor(max_workers=1)
        gradebook_ready = setup.submit(ensure_assignment, root)
        # One fresh secret per run (see scenarios.fresh_base_seed): every submission of the run is
        # graded on the same hidden inputs, so each worker computes the reference's answers once.
        base_seed = fresh_base_seed() if base_seed is None else base_seed
        assignment = load_assignment(source_notebook(root))
        assignment_hash = assignment_fingerprint(root)
        todo = []
        for submission in submissions:
            fingerprint = {"submission": submission_fingerprint(submission), "assignment": assignment_hash}
            if force or student is not None or not _recorded(root, submission.student, fingerprint):
                todo.append((submission, fingerprint))
            else:
                run.kept.append(submission.student)
        progress = Progress(len(todo), "grading") if show_progress else None
        jobs = dict(base_seed=base_seed, allow_unsandboxed=allow_unsandboxed)
        try:
            for submission, fingerprint, result in _results(root, assignment, todo, workers, jobs):
                gradebook_ready.result()
                result.notes = submission.notes + result.notes
                result = _record_safely(root, assignment, result, submission, fingerprint)
                run.graded.append(result)
                if progress:
                    progress.advance()
        finally:
            if progress:
                progress.close()
            setup.shutdown()
        gradebook_ready.result()  # also when nothing needed grading: the outputs read the gradebook
    write_class_outputs(root)
    if shard is not None and student is None:
        # Last: a shard whose run was killed leaves no manifest, and a merge refuses it.
        write_manifest(root, shard, everyone, [s.student for s in intake.submissions])
    run.seconds = time.perf_counter() - started
    return run


def _results(root: Path, assignment: Assignment, todo, workers: int | None, jobs: dict):
    """(submission, fingerprint, result) for every submission of ``todo``, as each finishes."""
    missing = [(s, f) for s, f in todo if s.path is None]
    present = [(s, f) for s, f in todo if s.path is not None]
    for submission, fingerprint in missing:
        yield submission, fingerprint, ungraded(
            assignment, Status.MISSING, "no notebook was found in your submission: submit the .ipynb file",
            student=submission.student, submission="", seed=0, isolation="not reached")
    workers = min(workers or os.cpu_count() or 1, max(len(present), 1))
    if workers == 1:
        for submission, fingerprint in present:
            yield submission, fingerprint, _grade_with_retry(assignment, root, submission, jobs)
        return
    # Spawned, not forked: the parent holds threads and open files a fork would copy half-way.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                             initializer=_die_with_parent, max_tasks_per_child=TASKS_PER_WORKER) as pool:
        waiting = list(reversed(present))
        running = {}
        while waiting or running:
            while waiting and len(running) < 2 * workers:
                submission, fingerprint = waiting.pop()
                future = pool.submit(_grade_with_retry, assignment, root, submission, jobs)
                running[future] = (submission, fingerprint)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                submission, fingerprint = running.pop(future)
                yield submission, fingerprint, future.result()


def _grade_with_retry(assignment: Assignment, root: Path, submission: Submission, jobs: dict) -> GradeResult:
    """Grade one submission; a failure of the grader is tried once more, then recorded as grader_error."""
    error = None
    for _ in range(2):
        try:
            return grade_submission(submission.path, root=root, student=submission.student, **jobs)
        except SandboxUnavailable:
            raise  # no student can be graded: the run stops and says how to get a sandbox
        except Exception as failure:  # noqa: BLE001 - one submission must not stop the class
            error = failure
    return ungraded(assignment, Status.GRADER_ERROR,
                    f"the grader failed on this submission twice ({type(error).__name__}); it scores 0 until an "
                    "instructor grades it again", student=submission.student, submission=submission.path.name,
                    seed=jobs.get("base_seed") or 0, isolation="not reached")


def _die_with_parent() -> None:
    """A worker ends when the run does, even if the run is killed with SIGKILL (Linux's PR_SET_PDEATHSIG)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: a killed run's workers end when their next read of the task queue fails


def _record_safely(root: Path, assignment: Assignment, result: GradeResult, submission: Submission,
                   fingerprint: dict) -> GradeResult:
    """Record one student; if that fails, record grader_error for them instead, and go on with the class."""
    try:
        _record(root, assignment, result, submission, fingerprint)
        return result
    except Exception as error:  # noqa: BLE001 - one student's record must not stop the class
        failed = ungraded(assignment, Status.GRADER_ERROR,
                          f"the grader could not record this grade ({type(error).__name__}); it scores 0 until an "
                          "instructor grades it again", student=result.student, submission=result.submission,
                          seed=result.seed, isolation=result.isolation)
        # No fingerprint: the next run grades this student again.
        record(failed, root=root, submitted_at=submission.timestamp)
        return failed


def _record(root: Path, assignment: Assignment, result: GradeResult, submission: Submission,
            fingerprint: dict) -> None:
    """Everything about one student, results.json last (it marks the grade as recorded)."""
    read = read_submission(submission.path, assignment) if submission.path else None
    write_autograded(root, result, read if read and read.status is None else None, submission.timestamp,
                     submission.secret)
    write_feedback(result, assignment, students_folder(root) / result.student)
    record(result, root=root, submitted_at=submission.timestamp, fingerprint=fingerprint)


def _recorded(root: Path, student: str, fingerprint: dict) -> bool:
    instructor = read_record(root, student).get("instructor")
    return isinstance(instructor, dict) and instructor.get("fingerprint") == fingerprint


def submission_fingerprint(submission: Submission) -> str:
    digest = hashlib.sha256()
    if submission.path is None:
        digest.update(b"(no notebook)")
    else:
        with submission.path.open("rb") as handle:  # read in blocks: an upload may be large
            digest = hashlib.file_digest(handle, "sha256")
    digest.update(str(submission.timestamp).encode())
    return digest.hexdigest()


def summary(run: ClassRun) -> str:
    """The lines printed at the end of a class run."""
    lines = []
    counts: dict[str, int] = {}
    for result in run.graded:
        counts[str(result.status)] = counts.get(str(result.status), 0) + 1
    per_status = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    lines.append(f"graded {len(run.graded)} submission(s) in {run.seconds:.1f} s"
                 + (f" ({per_status})" if per_status else "")
                 + (f"; {len(run.kept)} unchanged since their last grading, kept" if run.kept else ""))
    scores = [result.score for result in run.graded]
    if scores:
        # The grader's scores: the late penalty is nbgrader's, and shows in the table and grades.csv.
        lines.append(f"score before late penalties: mean {statistics.mean(scores):.1f}, "
                     f"median {statistics.median(scores):g} of {run.graded[0].max_score:g}")
        slowest = sorted(run.graded, key=lambda r: r.execution_time, reverse=True)[:3]
        lines.append("slowest: " + ", ".join(f"{r.student} {r.execution_time:.1f} s" for r in slowest))
    return "\n".join(lines)
