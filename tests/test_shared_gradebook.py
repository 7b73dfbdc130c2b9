"""Several graders writing to one PostgreSQL gradebook at once lose and duplicate nothing.

Needs a real server: AUTOGRADER_TEST_POSTGRES_URL names one, as a role that may
create databases (.ci/run starts Debian's PostgreSQL and sets it).  Each test
works in a database of its own, dropped at the end.
"""

from __future__ import annotations

import csv
import os
import secrets
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import sandbox
from autograder.course import ASSIGNMENT, DB_URL_VARIABLE, copy_course, nbgrader, students_folder
from autograder.variants import instructor_notebook, load_variants, variant_notebook

pytestmark = [pytest.mark.nbgrader, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[1]
SERVER = os.environ.get("AUTOGRADER_TEST_POSTGRES_URL")
if not SERVER:
    pytest.skip("no PostgreSQL server: set AUTOGRADER_TEST_POSTGRES_URL to a role that may create databases "
                "(.ci/run starts one)", allow_module_level=True)


@pytest.fixture
def database():
    """The URL of a fresh, empty database on the server; dropped afterwards."""
    import sqlalchemy

    name = "autograder_test_" + secrets.token_hex(6)
    server = sqlalchemy.create_engine(SERVER, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)
    with server.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sqlalchemy.engine.make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        server.dispose()


def _in_parallel(commands: list[list[str]], env: dict[str, str]) -> list[subprocess.CompletedProcess]:
    """Start every command at once, then wait for all of them."""
    started = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for command in commands]
    finished = []
    for process, command in zip(started, commands, strict=True):
        out, err = process.communicate(timeout=600)
        finished.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    return finished


RECORD_MANY = """
import sys
from pathlib import Path
from autograder.gradebook import record_scores
root, students = Path(sys.argv[1]), sys.argv[2:]
for student in students:
    record_scores(root, student, {"test_backward_visible": 3.0}, None)
"""


def test_two_writers_recording_the_same_students_at_once_create_each_row_once(database, tmp_path):
    """nbgrader's update-or-create is a read then a write: without the writer lock, both insert and one fails."""
    from nbgrader.api import Gradebook

    courses = [copy_course(ROOT, tmp_path / name, folders=("source",)) for name in ("a", "b")]
    students = [f"s{number:02d}" for number in range(12)]
    env = dict(os.environ, **{DB_URL_VARIABLE: database})
    runs = _in_parallel([[sys.executable, "-c", RECORD_MANY, str(course), *students] for course in courses], env)
    assert [run.returncode for run in runs] == [0, 0], [run.stderr[-2000:] for run in runs]
    with Gradebook(database) as gradebook:
        assert sorted(student.id for student in gradebook.students) == students
        assignment = gradebook.find_assignment(ASSIGNMENT)
        assert sorted(submission.student.id for submission in assignment.submissions) == students
        assert len(assignment.notebooks) == 1


def _submit(submitted: Path, student: str, notebook) -> None:
    folder = submitted / student / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(notebook, folder / "05_autograd.ipynb")


def test_two_shards_grading_into_one_postgresql_gradebook_at_once_lose_and_duplicate_nothing(database, tmp_path):
    variants = {variant.name: variant for variant in load_variants(ROOT / "corpus" / "validity.py")}
    submitted = tmp_path / "submitted"
    expected = {}
    for number in range(8):
        student = f"student{number}"
        if number % 2:
            _submit(submitted, student, instructor_notebook(root=ROOT))
            expected[student] = 100.0
        else:
            _submit(submitted, student, variant_notebook(variants["backward_propagates_first_arrival"], root=ROOT))
            expected[student] = 68.0
    # Two graders, as two CI jobs would be: each its own checkout, one gradebook server between them.
    courses = [copy_course(ROOT, tmp_path / f"grader-{index}") for index in (1, 2)]
    env = dict(os.environ, **{DB_URL_VARIABLE: database})
    unsafe = ["--unsafe-no-sandbox"] if sandbox.detect_isolation().level == "none" else []
    runs = _in_parallel([[sys.executable, "-m", "autograder", "--root", str(course), "grade-class", str(submitted),
                          "--shard", f"{index}/2", "--workers", "1", "--seed", "3", *unsafe]
                         for index, course in enumerate(courses, start=1)], env)
    assert [run.returncode for run in runs] == [0, 0], [run.stderr[-2000:] for run in runs]

    nbgrader("export", "--to", str(tmp_path / "export.csv"), root=courses[0], env={DB_URL_VARIABLE: database})
    rows = list(csv.DictReader((tmp_path / "export.csv").open()))
    assert sorted(row["student_id"] for row in rows) == sorted(expected)  # each student once
    assert {row["student_id"]: float(row["score"]) for row in rows} == expected
    graded_by = [sorted(path.parent.name for path in students_folder(course).glob("*/results.json"))
                 for course in courses]
    assert graded_by[0] and graded_by[1] and sorted(graded_by[0] + graded_by[1]) == sorted(expected)
