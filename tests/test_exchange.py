"""A round trip through nbgrader's exchange on one machine, with a local exchange folder.

The instructor releases, three students fetch, work and submit, the instructor collects, grades the
class with the class command, generates and releases feedback, and each student fetches theirs:

    instructor (scratch course)              exchange/<course id>/        student (own home and config)
    nbgrader release_assignment   ------->   outbound/05_autograd/  --->  nbgrader fetch_assignment
                                                                          (edits the fetched notebook)
    nbgrader collect              <-------   inbound/<id>+...       <---  nbgrader submit
    python -m autograder grade-class
    nbgrader generate_feedback
    nbgrader release_feedback     ------->   feedback/<hash>.html   --->  nbgrader fetch_feedback

The students' commands run in their own folders with their own HOME, never in the course: nbgrader
keeps each student's submissions in a cache under HOME, and fetch_feedback finds feedback only
through that cache.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbgrader.utils import parse_utc

from autograder.assignment import load_assignment
from autograder.checks import nbgrader_meta, secret_only_lines
from autograder.course import ASSIGNMENT, NOTEBOOK, copy_course, nbgrader, release_notebook, source_notebook
from autograder.variants import instructor_notebook, load_variants, variant_notebook

pytestmark = [pytest.mark.nbgrader, pytest.mark.sandbox]

ROOT = Path(__file__).resolve().parents[1]
COURSE_ID = "tinytorch-05-autograd"  # nbgrader_config.py's CourseDirectory.course_id
WRONG = "mul_swapped_operands"  # loses a fixed set of tests (no may_lose), so bob's score is known exactly
STUDENTS = ("alice", "bob", "carol")  # the instructor's solution, a wrong engine, the blank release


@dataclass
class Trip:
    course: Path
    exchange: Path
    homes: dict[str, Path]
    expected: dict[str, float]


def _student_env(home: Path) -> dict[str, str]:
    # Jupyter finds its data (nbgrader's submission cache) and config through these; inherited
    # values would make the three students share one cache.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("JUPYTER", "XDG_"))}
    env["HOME"] = str(home)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def _as_students(homes: dict[str, Path], *args: str, named: bool = False) -> None:
    """One nbgrader command for every student, all at once (as a class does), each in their home.

    nbgrader names a submitter by the account running it (``pwd``; only the account "jovyan", as in
    JupyterHub's Docker images, is renamed to $JUPYTERHUB_USER); $USER and $LOGNAME are not read.
    Here every student is the same account, so ``named`` passes --student, which stands in for it.
    """
    running = {}
    for student, home in homes.items():
        command = [sys.executable, "-m", "nbgrader", *args] + ([f"--student={student}"] if named else [])
        running[student] = subprocess.Popen(command, cwd=home, env=_student_env(home), text=True,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    failed = []
    for student, process in running.items():
        _, stderr = process.communicate(timeout=180)
        if process.returncode != 0:
            failed.append(f"{student}: nbgrader {' '.join(args)} exited {process.returncode}\n{stderr[-3000:]}")
    assert not failed, "\n".join(failed)


def _solve(fetched: Path, solved) -> None:
    """Write the solution cells of ``solved`` into the fetched notebook, as a student types them in Jupyter."""
    notebook = nbformat.read(fetched, as_version=4)
    answers = {nbgrader_meta(cell)["grade_id"]: cell.source for cell in solved.cells
               if nbgrader_meta(cell).get("solution")}
    for cell in notebook.cells:
        if nbgrader_meta(cell).get("solution"):
            cell.source = answers[nbgrader_meta(cell)["grade_id"]]
    nbformat.write(notebook, fetched)


def _leaked_hidden_lines(page: str, course: Path) -> list[str]:
    """Lines of the hidden test regions that appear in a feedback page (the rule of test_class_run).

    Short lines (``x.backward()``) stand in public cells too, and a failing scenario's docstring is
    shown to the student on purpose, so neither counts.
    """
    hidden = secret_only_lines(nbformat.read(source_notebook(course), as_version=4), hidden_only=True)
    assert hidden, "the source notebook has no hidden test lines: the check would prove nothing"
    explanations = "\n".join(s.summary for t in load_assignment(source_notebook(course)).tests for s in t.scenarios)
    text = html.unescape(page)
    return [line for line in hidden if len(line) > 12 and line in text and line not in explanations]


def _total_score(page: str) -> str:
    """The first "Score: X / Y" of an nbgrader feedback page: the notebook's total."""
    return page.split("Score: ", 1)[1].split(")", 1)[0]


@pytest.fixture(scope="module")
def trip(isolation, tmp_path_factory):
    # A gradebook server named in the environment would receive this scratch class's grades.
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("AUTOGRADER_DB_URL", raising=False)
        yield _round_trip(tmp_path_factory.mktemp("exchange"))


def _round_trip(base: Path) -> Trip:
    course = copy_course(ROOT, base / "course")
    # The exchange must exist before anyone uses it, writable and enterable by every user of the
    # machine: each nbgrader command checks that it can write there. An administrator creates it
    # once; release_assignment would otherwise force it to 0777 itself (or fail, not owning it).
    exchange = base / "exchange"
    exchange.mkdir()
    exchange.chmod(0o777)
    on_exchange = f"--Exchange.root={exchange}"

    nbgrader("release_assignment", ASSIGNMENT, on_exchange, root=course)

    homes = {student: base / "home" / student for student in STUDENTS}
    for home in homes.values():
        home.mkdir(parents=True)
        # A student's own nbgrader configuration: which course, and where its exchange is.
        (home / "nbgrader_config.py").write_text(
            "c = get_config()\n"
            f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
            f"c.Exchange.root = {str(exchange)!r}\n")
    _as_students(homes, "fetch_assignment", ASSIGNMENT)

    release = nbformat.read(release_notebook(course), as_version=4)
    instructor = instructor_notebook(root=course)
    wrong = {v.name: v for v in load_variants(ROOT / "corpus" / "validity.py")}[WRONG]
    assert not wrong.added_cells, "_solve copies solution cells only"
    _solve(homes["alice"] / ASSIGNMENT / NOTEBOOK, instructor)
    _solve(homes["bob"] / ASSIGNMENT / NOTEBOOK, variant_notebook(wrong, root=course))
    for student in ("alice", "bob"):  # an edit keeps nbgrader's cells: same ids and metadata, new solutions
        edited = nbformat.read(homes[student] / ASSIGNMENT / NOTEBOOK, as_version=4)
        assert [(c.id, c.metadata) for c in edited.cells] == [(c.id, c.metadata) for c in release.cells]
        assert [c.source for c in edited.cells] != [c.source for c in release.cells]
    _as_students(homes, "submit", ASSIGNMENT, named=True)

    # Every "student" here is this one account, so the owner of an entry says nothing about who made it.
    nbgrader("collect", ASSIGNMENT, on_exchange, "--ExchangeCollect.check_owner=False", root=course)
    # The class command as an instructor runs it; --root because its course is the checkout unless told.
    graded = subprocess.run([sys.executable, "-m", "autograder", "--root", str(course), "grade-class",
                             "--workers", "1", "--seed", "11"], cwd=course, capture_output=True, text=True,
                            timeout=300)
    assert graded.returncode == 0, graded.stdout[-2000:] + graded.stderr[-3000:]
    nbgrader("generate_feedback", ASSIGNMENT, root=course)
    nbgrader("release_feedback", ASSIGNMENT, on_exchange, root=course)
    _as_students(homes, "fetch_feedback", ASSIGNMENT, named=True)

    points = {test.grade_id: test.points for test in load_assignment(source_notebook(course)).tests}
    expected = {"alice": 100.0, "bob": 100.0 - sum(points[g] for g in wrong.loses), "carol": 0.0}
    return Trip(course, exchange, homes, expected)


def test_collect_puts_each_submission_and_its_time_in_submitted(trip):
    for student, home in trip.homes.items():
        folder = trip.course / "submitted" / student / ASSIGNMENT
        assert (folder / NOTEBOOK).read_bytes() == (home / ASSIGNMENT / NOTEBOOK).read_bytes(), student
        stamp = (folder / "timestamp.txt").read_text()
        assert stamp.endswith(" UTC") and dt.datetime.fromisoformat(stamp.removesuffix(" UTC")), stamp
    assert sorted(p.name for p in (trip.course / "submitted").iterdir()) == sorted(STUDENTS)


def test_the_class_command_records_each_student_in_nbgrader_export(trip):
    assert 0 < trip.expected["bob"] < 100
    nbgrader("export", "--to", str(trip.course / "export.csv"), root=trip.course)
    rows = {row["student_id"]: row for row in csv.DictReader((trip.course / "export.csv").open())}
    assert {student: float(rows[student]["score"]) for student in rows} == trip.expected
    for student in STUDENTS:  # the submission time is the one the exchange gave, read from collect's timestamp.txt
        stamp = (trip.course / "submitted" / student / ASSIGNMENT / "timestamp.txt").read_text()
        recorded = dt.datetime.fromisoformat(rows[student]["timestamp"])
        assert recorded == dt.datetime.fromisoformat(stamp.removesuffix(" UTC")), student


def test_generate_feedback_writes_each_students_page_without_hidden_test_code(trip):
    for student, score in trip.expected.items():
        page = (trip.course / "feedback" / student / ASSIGNMENT / "05_autograd.html").read_text()
        assert "trusted grader" in page and _total_score(page) == f"{score:.1f} / 100.0", student
        assert _leaked_hidden_lines(page, trip.course) == [], student


def test_each_student_fetches_their_own_feedback_and_no_one_elses(trip):
    pages = {s: (trip.course / "feedback" / s / ASSIGNMENT / "05_autograd.html").read_bytes() for s in STUDENTS}
    assert len(set(pages.values())) == len(STUDENTS), "identical pages could not tell the students apart"
    assert len(list((trip.exchange / COURSE_ID / "feedback").glob("*.html"))) == len(STUDENTS)
    for student, home in trip.homes.items():
        fetched = sorted((home / ASSIGNMENT / "feedback").rglob("*.html"))
        assert [p.name for p in fetched] == ["05_autograd.html"], (student, fetched)
        # Filed under the submission's time as the student's own nbgrader noted it; the collected time is the
        # entry's ctime (autograder/nbgrader_exchange.py), taken as the entry was written: the same moment.
        stamp = (trip.course / "submitted" / student / ASSIGNMENT / "timestamp.txt").read_text()
        gap = parse_utc(stamp) - parse_utc(fetched[0].parent.name)
        assert dt.timedelta(0) <= gap < dt.timedelta(seconds=5), (student, stamp, fetched[0].parent.name)
        assert fetched[0].read_bytes() == pages[student], student
        assert _leaked_hidden_lines(fetched[0].read_text(), trip.course) == [], student


def test_the_exchange_has_the_modes_nbgrader_gives_it(trip):
    """What the README says a shared exchange looks like (group-shared courses add group write and setgid)."""
    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    course = trip.exchange / COURSE_ID
    assert mode(trip.exchange) == 0o777  # everyone writes and enters; no one else's files are listed below
    assert (mode(course), mode(course / "outbound")) == (0o755, 0o755)
    assert mode(course / "inbound") == 0o2733  # students drop submissions in, but cannot list them
    assert mode(course / "feedback") == 0o711  # pages are found by a hash of the student's secret only


def _inbound_entry(inbound: Path, student: str, submitted_at: str, notebook: Path, owner: str) -> Path:
    """An entry as nbgrader submit leaves it: <student>+<assignment>+<time>+<random>/, owned by ``owner``."""
    import pwd
    import shutil

    entry = inbound / f"{student}+{ASSIGNMENT}+{submitted_at} UTC+{os.urandom(4).hex()}"
    entry.mkdir()
    shutil.copy(notebook, entry / NOTEBOOK)
    (entry / "timestamp.txt").write_text(f"{submitted_at} UTC")
    account = pwd.getpwnam(owner)
    for path in (entry, *entry.iterdir()):
        os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)
    return entry


def test_collect_refuses_what_is_not_a_students_own_entry_and_goes_on_with_the_rest(tmp_path):
    """Two real accounts, daemon and nobody. nobody writes a newer entry in daemon's name, one of their own
    holding a link to the instructor's notebook, one that is a file and one whose name holds no time.
    collect takes daemon's own entry, with the time the kernel gave it, and nothing of nobody's."""
    import pwd

    if os.geteuid() != 0:
        pytest.skip("needs root, to give inbound entries to other accounts")
    try:
        pwd.getpwnam("daemon"), pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("needs the accounts daemon and nobody, which Debian and Ubuntu have")
    course = copy_course(ROOT, tmp_path / "course", folders=("source", "release"))
    inbound = tmp_path / "exchange" / COURSE_ID / "inbound"
    inbound.mkdir(parents=True)
    honest = tmp_path / "honest.ipynb"
    nbformat.write(instructor_notebook(root=ROOT), honest)
    # Backdated: the name and timestamp.txt say 2020, before any due date.
    own = _inbound_entry(inbound, "daemon", "2020-01-01 10:00:00.000000", honest, owner="daemon")
    _inbound_entry(inbound, "daemon", "2026-12-01 11:00:00.000000", release_notebook(ROOT), owner="nobody")
    linked = _inbound_entry(inbound, "nobody", "2026-12-01 10:30:00.000000", honest, owner="nobody")
    (linked / NOTEBOOK).unlink()
    (linked / NOTEBOOK).symlink_to(source_notebook(course))
    os.chown(linked / NOTEBOOK, pwd.getpwnam("nobody").pw_uid, -1, follow_symlinks=False)  # nobody's own link
    (inbound / f"nobody+{ASSIGNMENT}+2026-12-01 10:40:00.000000 UTC+ffff").write_text("a file, not a folder")
    (inbound / f"nobody+{ASSIGNMENT}+notatime").mkdir()

    collected = nbgrader("collect", ASSIGNMENT, f"--Exchange.root={tmp_path / 'exchange'}", root=course)
    daemon = course / "submitted" / "daemon" / ASSIGNMENT
    assert (daemon / NOTEBOOK).read_bytes() == honest.read_bytes()
    latest = max(path.stat().st_ctime for path in [own, *own.rglob("*")])  # the entry's last change
    kernel_time = dt.datetime.fromtimestamp(latest, tz=dt.timezone.utc).replace(tzinfo=None)
    assert parse_utc((daemon / "timestamp.txt").read_text()) == kernel_time
    assert not (course / "submitted" / "nobody").exists()
    for why in ("belongs to the account 'nobody'", "is a symbolic link or a special file", "not a folder of its own"):
        assert why in collected.stderr, why
