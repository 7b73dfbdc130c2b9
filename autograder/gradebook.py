"""Writing grades into nbgrader's gradebook, through nbgrader's own API.

So that ``nbgrader export``, formgrader and feedback see the trusted grader's
scores exactly as if ``nbgrader autograde`` had produced them.  Only the
autograded test cells are written: cells that need manual grading keep their
state, and grading the same student again replaces the scores.

The gradebook is wherever the course's nbgrader_config.py says
(``c.CourseDirectory.db_url``): SQLite in the course root by default, or any
SQLAlchemy URL nbgrader accepts, such as a PostgreSQL server that several
graders write to at once.  Every write holds the gradebook's writer lock
(``one_writer``), so two graders never race to create the same rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import hashlib
import json
import logging
import tempfile
import warnings
from pathlib import Path

import nbformat

from . import literal
from .course import ASSIGNMENT, DB_URL_VARIABLE, NOTEBOOK_NAME, copy_course, nbgrader, students_folder
from .formats import to_gradescope
from .identity import check_student_id
from .results import CellScore, ClassRow, GradeResult


def gradebook_url(root: Path) -> str:
    """The course's gradebook, as its nbgrader_config.py names it (nbgrader's tools read the same line)."""
    return str(course_config(root).CourseDirectory.db_url)


def _sqlite_file(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def _gradebook_exists(url: str) -> bool:
    """Whether the gradebook has its tables: nbgrader's Gradebook() creates them on first open, as a side
    effect, and shells out to alembic to do it (the nbgrader command ensure_assignment runs does that)."""
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None:
        return sqlite_file.exists()
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        return bool(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def assignment_in_gradebook(root: Path) -> bool:
    from nbgrader.api import Gradebook, MissingEntry

    url = gradebook_url(root)
    if not _gradebook_exists(url):
        return False
    with _quiet_nbgrader(), Gradebook(url) as gradebook:
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
    with one_writer(root):
        if assignment_in_gradebook(root):
            return
        with tempfile.TemporaryDirectory(prefix="gradebook-assignment-") as scratch:
            course = copy_course(root, Path(scratch), folders=("source",))
            # Through the environment, not the command line: a server's URL may hold a password.
            nbgrader("generate_assignment", ASSIGNMENT, "--force", "--create", root=course,
                     env={DB_URL_VARIABLE: gradebook_url(root)})


# PostgreSQL's advisory locks are named by a 64-bit number: this one is the course's gradebook writer.
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"tinytorch-05-autograd gradebook writer").digest()[:8], "big", signed=True)


@contextlib.contextmanager
def one_writer(root: Path):
    """Hold the gradebook's writer lock: one grader at a time creates or updates rows.

    nbgrader's update-or-create is a read then a write, and a new gradebook's
    tables are created on first open: two graders doing either at once (two
    CI shards on one PostgreSQL, two class runs on one machine) would both
    insert, and one would fail.  PostgreSQL: a session-level advisory lock on
    the server.  SQLite: an exclusive lock on a file beside the database.
    Other databases get no lock: use one grader at a time with them.
    """
    url = gradebook_url(root)
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        with open(sqlite_file.with_name(sqlite_file.name + ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        return
    if not url.startswith("postgresql"):
        yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
    finally:
        engine.dispose()


def record(result: GradeResult, *, root: Path, submitted_at: dt.datetime | None = None,
           fingerprint: dict[str, str] | None = None) -> None:
    """Store ``result``: its test scores as the student's autograded scores in the gradebook, the
    submission time (so that nbgrader's late-submission penalty, as the course configures it, is
    applied), and the whole result in the student's ``results.json`` (``record_path``).

    ``results.json`` is written last, whole, then renamed into place: it marks
    the grade as recorded, so a run killed at any moment leaves either the old
    record or the new one, and grading again completes it.  ``fingerprint``
    (hashes of the submission and of the assignment) lets a later run see
    that nothing changed.  Raises InvalidStudentId before touching anything if
    ``result.student`` is not a valid id: the last guard for a caller that
    forgot to check it.
    """
    check_student_id(result.student)
    record_scores(root, result.student, {test.name: test.score for test in result.tests}, submitted_at)
    data = to_gradescope(result)
    data["instructor"].update(student=result.student, message=literal.for_json(result.message),
                              notes=[literal.for_json(note) for note in result.notes],
                              submitted_at=submitted_at.isoformat() if submitted_at else None,
                              fingerprint=fingerprint or {})
    write_atomically(record_path(root, result.student), json.dumps(data, indent=2))


def record_scores(root: Path, student: str, scores: dict[str, float], submitted_at: dt.datetime | None) -> None:
    """One student's autograded scores (grade id -> points) and submission time, then nbgrader's late penalty."""
    from nbgrader.api import Gradebook

    check_student_id(student)
    ensure_assignment(root)
    with one_writer(root):
        with _quiet_nbgrader(), Gradebook(gradebook_url(root)) as gradebook:
            gradebook.update_or_create_student(student)
            gradebook.update_or_create_submission(ASSIGNMENT, student, timestamp=submitted_at)
            for name, score in scores.items():
                grade = gradebook.find_grade(name, NOTEBOOK_NAME, ASSIGNMENT, student)
                grade.auto_score = score
                grade.needs_manual_grade = False
            gradebook.db.commit()
        _assign_late_penalty(root, student)


def recorded_scores(data: dict) -> dict[str, float]:
    """grade id -> points, from a results.json that ``record`` wrote (its tests are named "<grade id>: title")."""
    return {test["name"].partition(": ")[0]: float(test["score"]) for test in data.get("tests", [])}


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def _assign_late_penalty(root: Path, student: str) -> None:
    """nbgrader's own AssignLatePenalties, with the course's configuration (its plugin and method)."""
    from nbgrader.preprocessors import AssignLatePenalties

    penalties = AssignLatePenalties(config=course_config(root))
    resources = {"nbgrader": {"notebook": NOTEBOOK_NAME, "assignment": ASSIGNMENT, "student": student,
                              "db_url": gradebook_url(root)}}
    with _quiet_nbgrader():
        penalties.preprocess(nbformat.v4.new_notebook(), resources)


def course_config(root: Path):
    """The course's nbgrader_config.py, loaded as nbgrader loads it (once per course and process)."""
    return _load_config(str(root))


@functools.lru_cache(maxsize=8)
def _load_config(root: str):
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=root).load_config()


@contextlib.contextmanager
def _quiet_nbgrader():
    """nbgrader's gradebook warns through SQLAlchemy on every session; those warnings are not the user's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("traitlets").setLevel(logging.ERROR)
        yield


RECORD_FILE = "results.json"


def record_path(root: Path, student: str) -> Path:
    """A student's recorded result (Gradescope's results.json shape; the seed under "instructor")."""
    return students_folder(root) / student / RECORD_FILE


def read_record(root: Path, student: str) -> dict:
    """A student's results.json; {} if there is none or it cannot be read."""
    try:
        data = json.loads(record_path(root, student).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def class_rows(root: Path) -> list[ClassRow]:
    """Every student of the gradebook, as ``nbgrader export`` lists them, with this grader's record.

    A student without a submission gets nbgrader's zeros and the status
    "missing" when this grader has no record of them either.
    """
    from nbgrader.api import Gradebook, MissingEntry

    tests = class_scores(root=root)
    rows = []
    with Gradebook(gradebook_url(root)) as gradebook:
        assignment = gradebook.find_assignment(ASSIGNMENT)
        for student in sorted(gradebook.students, key=lambda s: s.id):
            record = read_record(root, student.id)
            instructor = record.get("instructor") if isinstance(record.get("instructor"), dict) else {}
            try:
                submission = gradebook.find_submission(ASSIGNMENT, student.id)
            except MissingEntry:
                submitted = None
            else:
                submitted = (str(submission.timestamp or ""), submission.score, submission.late_submission_penalty)
            timestamp, raw, penalty = submitted or ("", 0.0, 0.0)
            rows.append(ClassRow(
                student_id=student.id, assignment=ASSIGNMENT, duedate=str(assignment.duedate or ""),
                timestamp=timestamp, last_name=student.last_name or "", first_name=student.first_name or "",
                email=student.email or "", raw_score=raw, late_submission_penalty=penalty,
                score=max(0.0, raw - penalty), max_score=assignment.max_score,
                status=str(record.get("status", "" if submitted else "missing")),
                message=str(instructor.get("message", "")), seed=_seed(instructor.get("seed")),
                tests={name: cell.score for name, cell in tests.get(student.id, {}).items()},
            ))
    return rows


def _seed(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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
