"""Finding a class's submissions in each layout (autograder/intake.py), on small stand-in notebooks."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from autograder.intake import UnreadableIntake, read_intake


def _notebook(path: Path, exercises: int = 3) -> Path:
    """A stand-in notebook holding ``exercises`` nbgrader solution cells."""
    cells = [{"cell_type": "code", "source": "", "metadata": {"nbgrader": {"solution": True, "grade_id": f"e{i}"}},
              "outputs": [], "execution_count": None} for i in range(exercises)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}))
    return path


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, text in members.items():
            bundle.writestr(name, text)
    return path


def _by_student(intake) -> dict:
    return {s.student: s for s in intake.submissions}


def test_nbgrader_layout_with_any_notebook_name_timestamps_and_odd_folders(tmp_path):
    submitted = tmp_path / "course" / "submitted"
    _notebook(submitted / "alice" / "05_autograd" / "05_autograd-Copy1.ipynb")
    (submitted / "alice" / "05_autograd" / "timestamp.txt").write_text("2026-12-01 10:30:00.000000 UTC")
    _notebook(submitted / "jill" / "05_autograd.ipynb")  # put directly in the student's folder
    _notebook(submitted / "bob" / "05_autograd" / "05_autograd.ipynb", exercises=3)
    _notebook(submitted / "bob" / "05_autograd" / "scratch.ipynb", exercises=0)
    (submitted / "carol" / "05_autograd").mkdir(parents=True)  # an empty upload
    (submitted / "bob" / "05_autograd" / ".ipynb_checkpoints").mkdir()
    _notebook(submitted / "bad name" / "05_autograd" / "05_autograd.ipynb")

    intake = read_intake(tmp_path / "course", scratch=tmp_path / "scratch")  # the course root works too
    found = _by_student(intake)
    assert intake.layout == "nbgrader" and sorted(found) == ["alice", "bob", "carol", "jill"]
    assert found["alice"].path.name == "05_autograd-Copy1.ipynb"
    assert found["alice"].timestamp == dt.datetime(2026, 12, 1, 10, 30)
    assert found["bob"].path.name == "05_autograd.ipynb"
    assert "'scratch.ipynb'" in found["bob"].notes[0]
    assert found["carol"].path is None
    assert [s.shown_name for s in intake.skipped] == ["'bad name'"]


def test_a_folder_of_student_notebooks(tmp_path):
    _notebook(tmp_path / "in" / "alice.ipynb")
    _notebook(tmp_path / "in" / "bob.ipynb")
    _notebook(tmp_path / "in" / "-rf.ipynb")
    intake = read_intake(tmp_path / "in", scratch=tmp_path / "scratch")
    assert intake.layout == "folder" and sorted(_by_student(intake)) == ["alice", "bob"]
    assert [s.shown_name for s in intake.skipped] == ["'-rf.ipynb'"]


def test_a_canvas_zip(tmp_path):
    text = _notebook(tmp_path / "nb.ipynb").read_text()
    archive = _zip(tmp_path / "submissions.zip", {
        "doejane_1234_5678_05_autograd.ipynb": text,
        "smithjohn_LATE_1235_5679_05_autograd-1.ipynb": text,
    })
    intake = read_intake(archive, scratch=tmp_path / "scratch")
    found = _by_student(intake)
    assert intake.layout == "canvas" and sorted(found) == ["1234", "1235"]  # Canvas user ids
    assert intake.looked == archive
    assert found["1235"].notes == ["Canvas marked this submission late"]


def test_a_moodle_zip_inside_one_top_level_folder(tmp_path):
    text = _notebook(tmp_path / "nb.ipynb").read_text()
    archive = _zip(tmp_path / "moodle.zip", {
        "Autograd-Assignment/Jane Doe_12345_assignsubmission_file_/05_autograd.ipynb": text,
        "Autograd-Assignment/John Smith_12346_assignsubmission_file_/my work.ipynb": text,
    })
    intake = read_intake(archive, scratch=tmp_path / "scratch")
    assert intake.layout == "moodle" and sorted(_by_student(intake)) == ["12345", "12346"]


def test_nbgrader_zip_collect_naming_gives_the_attempt_time(tmp_path):
    text = _notebook(tmp_path / "nb.ipynb").read_text()
    archive = _zip(tmp_path / "blackboard.zip", {
        "05_autograd_alice_attempt_2026-12-01-09-15-00_05_autograd.ipynb": text,
        "05_autograd_alice_attempt_2026-12-02-08-00-00_05_autograd.ipynb": text,
    })
    intake = read_intake(archive, scratch=tmp_path / "scratch")
    (alice,) = intake.submissions
    assert intake.layout == "zip_collect" and alice.student == "alice"
    assert alice.timestamp == dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.timezone.utc)


def test_a_file_name_chosen_to_look_like_another_students_entry_stays_its_senders(tmp_path):
    """The student picks only the uploaded file's name: it must not move the id onto someone else."""
    text = _notebook(tmp_path / "nb.ipynb").read_text()
    archive = _zip(tmp_path / "lms.zip", {
        "05_autograd_alice_attempt_2026-12-01-09-15-00_x_bob_attempt_2026-12-09-00-00-00_f.ipynb": text,
    })
    assert [s.student for s in read_intake(archive, scratch=tmp_path / "a").submissions] == ["alice"]
    archive = _zip(tmp_path / "canvas.zip", {"doejane_1234_5678_smithjohn_1235_5679_f.ipynb": text})
    assert [s.student for s in read_intake(archive, scratch=tmp_path / "b").submissions] == ["1234"]
    archive = _zip(tmp_path / "moodle.zip", {"X_999_assignsubmission_file_12345_assignsubmission_file_/f.ipynb": text})
    assert [s.student for s in read_intake(archive, scratch=tmp_path / "c").submissions] == ["12345"]


def test_a_zip_cannot_write_outside_its_folder(tmp_path):
    text = _notebook(tmp_path / "nb.ipynb").read_text()
    archive = _zip(tmp_path / "evil.zip", {"../../escaped.ipynb": text, "alice.ipynb": text})
    intake = read_intake(archive, scratch=tmp_path / "scratch")
    assert sorted(_by_student(intake)) == ["alice"]
    assert not (tmp_path / "escaped.ipynb").exists() and not list(tmp_path.rglob("escaped.ipynb"))


def test_a_zip_member_cannot_climb_back_onto_another_students_file(tmp_path):
    text = _notebook(tmp_path / "nb.ipynb").read_text()
    archive = _zip(tmp_path / "canvas.zip", {
        "smithjohn_333_444_05_autograd.ipynb": text,
        "doejane_111_222_05_autograd.ipynb": text,
        "doejane_111_223_x/../smithjohn_333_444_05_autograd.ipynb": "garbage",
    })
    intake = read_intake(archive, scratch=tmp_path / "scratch")
    found = _by_student(intake)
    assert intake.layout == "canvas" and found["333"].path.read_text() == text


def test_empty_and_unreadable_sources(tmp_path):
    (tmp_path / "empty").mkdir()
    assert read_intake(tmp_path / "empty", scratch=tmp_path / "s").submissions == []
    with pytest.raises(UnreadableIntake, match="neither a folder nor a zip"):
        read_intake(tmp_path / "missing", scratch=tmp_path / "s")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(UnreadableIntake):
        read_intake(tmp_path / "broken.zip", scratch=tmp_path / "s")


def test_one_odd_file_name_cannot_change_how_everyone_else_is_read(tmp_path):
    """A file named ".ipynb" (or with a newline) in a Canvas zip is skipped; the others keep their ids."""
    text = _notebook(tmp_path / "nb.ipynb").read_text()
    archive = _zip(tmp_path / "canvas.zip", {
        "smithjohn_1001_5001_05_autograd.ipynb": text,
        "doejane_1003_5003_05_autograd.ipynb": text,
        "mallory_1002_5002_.ipynb": text,  # an upload named ".ipynb": still Canvas's naming
        "stray.ipynb": text,
    })
    intake = read_intake(archive, scratch=tmp_path / "scratch")
    assert intake.layout == "canvas" and sorted(_by_student(intake)) == ["1001", "1002", "1003"]
    assert [s.shown_name for s in intake.skipped] == ["'stray.ipynb'"]


def test_two_students_with_one_name_stay_two_and_copies_of_a_cell_do_not_win(tmp_path):
    victim = _notebook(tmp_path / "victim.ipynb", exercises=3).read_text()
    cells = json.loads(victim)
    cells["cells"] += [cells["cells"][0]] * 5  # five copies of one exercise cell
    archive = _zip(tmp_path / "canvas.zip", {
        "smithjohn_1001_5001_05_autograd.ipynb": victim,
        "smithjohn_1002_5002_05_autograd.ipynb": json.dumps(cells),
    })
    found = _by_student(read_intake(archive, scratch=tmp_path / "a"))
    assert sorted(found) == ["1001", "1002"] and found["1001"].notes == []
    # Within one student, copies count once: the notebook with more distinct exercises wins.
    _notebook(tmp_path / "in" / "bob" / "05_autograd" / "a.ipynb", exercises=3)
    (tmp_path / "in" / "bob" / "05_autograd" / "b.ipynb").write_text(
        json.dumps({**cells, "cells": [cells["cells"][0]] * 8}))
    (bob,) = read_intake(tmp_path / "in", scratch=tmp_path / "b").submissions
    assert bob.path.name == "a.ipynb"


def test_symbolic_links_are_not_followed(tmp_path):
    secret = _notebook(tmp_path / "instructor.ipynb")
    folder = tmp_path / "course" / "submitted" / "mallory" / "05_autograd"
    folder.mkdir(parents=True)
    (folder / "05_autograd.ipynb").symlink_to(secret)
    (tmp_path / "course" / "submitted" / "eve").symlink_to(tmp_path / "course" / "submitted" / "mallory")
    _notebook(tmp_path / "course" / "submitted" / "alice" / "05_autograd" / "05_autograd.ipynb")
    intake = read_intake(tmp_path / "course" / "submitted", scratch=tmp_path / "s")
    found = _by_student(intake)
    assert sorted(found) == ["alice", "mallory"] and found["mallory"].path is None
    assert "is a symbolic link: it was not followed" in found["mallory"].notes[0]
    assert [s.shown_name for s in intake.skipped] == ["'eve'"]


@pytest.mark.parametrize("text", ["2024-01-01 00:00:00 ../UTC", "1." * 300_000, "\x00\xff", "tomorrow"])
def test_a_timestamp_file_that_is_not_nbgraders_costs_only_a_note(tmp_path, text):
    folder = tmp_path / "submitted" / "mallory" / "05_autograd"
    _notebook(folder / "05_autograd.ipynb")
    (folder / "timestamp.txt").write_text(text, errors="surrogateescape")
    (mallory,) = read_intake(tmp_path / "submitted", scratch=tmp_path / "s").submissions
    assert mallory.timestamp is None and "no submission time was recorded" in mallory.notes[0]


def test_shards_split_a_class_disjointly_and_adding_a_student_moves_nobody():
    from autograder.intake import Shard

    students = [f"student{i:03d}" for i in range(300)]
    for count in (1, 2, 3):
        slices = [{s for s in students if Shard(index, count).holds(s)} for index in range(1, count + 1)]
        assert set().union(*slices) == set(students) and sum(map(len, slices)) == len(students)
        assert all(len(piece) > 0.2 * len(students) / count for piece in slices)  # none nearly empty
    # A student's shard depends on their id alone, not on who else is in the class.
    def shard_of(student: str) -> int:
        return next(index for index in (1, 2, 3) if Shard(index, 3).holds(student))

    before = {s: shard_of(s) for s in students}
    after = {s: shard_of(s) for s in ["newcomer", *students]}
    assert all(after[s] == before[s] for s in students)
    with pytest.raises(ValueError, match="is not a shard"):
        Shard.parse("0/3")
    assert Shard.parse(" 2/3 ") == Shard(2, 3)


def test_the_exchange_secret_is_kept_only_if_it_is_a_plain_small_file_of_hex_digits(tmp_path):
    submitted = tmp_path / "submitted"
    for student in ("alice", "bob", "carl", "dora"):
        _notebook(submitted / student / "05_autograd" / "05_autograd.ipynb")
    (submitted / "alice" / "05_autograd" / "submission_secret.txt").write_text("ab" * 64)
    (submitted / "emma" / "05_autograd").mkdir(parents=True)
    _notebook(submitted / "emma" / "05_autograd" / "05_autograd.ipynb")
    (submitted / "emma" / "05_autograd" / "submission_secret.txt").write_text("")  # stops release_feedback
    (submitted / "bob" / "05_autograd" / "submission_secret.txt").symlink_to(submitted / "alice" / "05_autograd"
                                                                             / "submission_secret.txt")
    (submitted / "carl" / "05_autograd" / "submission_secret.txt").write_text("x" * 5000)
    found = _by_student(read_intake(submitted, scratch=tmp_path / "scratch"))
    assert found["alice"].secret.read_text() == "ab" * 64
    assert not found["alice"].secret.is_relative_to(submitted)  # the grader's own copy
    assert [found[s].secret for s in ("bob", "carl", "dora", "emma")] == [None, None, None, None]


def test_a_folder_of_cloned_github_classroom_repositories(tmp_path):
    """`gh classroom clone student-repos` makes one folder per repository, named <assignment>-<login>."""
    clones = tmp_path / "05-autograd-submissions"
    for login in ("alice", "bob-smith"):
        repository = clones / f"05-autograd-{login}"
        _notebook(repository / "05_autograd.ipynb")
        (repository / ".git").mkdir()
        (repository / ".github" / "classroom").mkdir(parents=True)
        (repository / "README.md").write_text("starter code")
    intake = read_intake(clones, scratch=tmp_path / "scratch")
    found = _by_student(intake)
    assert intake.layout == "nbgrader" and intake.skipped == []
    assert sorted(found) == ["05-autograd-alice", "05-autograd-bob-smith"]
    assert found["05-autograd-alice"].path.name == "05_autograd.ipynb"


def test_a_linked_assignment_folder_is_never_entered(tmp_path):
    """A repository can hold a link named 05_autograd: to the instructor's source/, or to a classmate's folder."""
    instructor = _notebook(tmp_path / "course" / "source" / "05_autograd" / "05_autograd.ipynb")
    (instructor.parent / "timestamp.txt").write_text("2020-01-01 00:00:00.000000 UTC")
    clones = tmp_path / "clones"
    _notebook(clones / "alice" / "05_autograd.ipynb")
    (clones / "mallory").mkdir(parents=True)
    (clones / "mallory" / "05_autograd").symlink_to(instructor.parent)
    (clones / "trudy").mkdir()
    (clones / "trudy" / "05_autograd").symlink_to(Path("..") / "alice")
    found = _by_student(read_intake(clones, scratch=tmp_path / "scratch"))
    assert sorted(found) == ["alice", "mallory", "trudy"]
    for student in ("mallory", "trudy"):
        assert found[student].path is None and found[student].timestamp is None
        assert any("'05_autograd' is a symbolic link: it was not followed" in note for note in found[student].notes)
    assert found["alice"].path.read_bytes() == (clones / "alice" / "05_autograd.ipynb").read_bytes()


def test_a_notebook_reached_through_a_linked_folder_is_not_graded_whatever_the_layout(tmp_path):
    from autograder.intake import Intake, Submission, take_private_copies

    elsewhere = _notebook(tmp_path / "elsewhere" / "05_autograd.ipynb")
    clones = tmp_path / "clones"
    (clones / "mallory").mkdir(parents=True)
    (clones / "mallory" / "inner").symlink_to(elsewhere.parent)
    own = _notebook(clones / "alice" / "05_autograd.ipynb")
    intake = Intake("folder", [Submission("mallory", clones / "mallory" / "inner" / "05_autograd.ipynb"),
                               Submission("alice", own)], [], clones)
    take_private_copies(intake, tmp_path / "copies")
    assert intake.submissions[0].path is None and "symbolic link" in intake.submissions[0].notes[0]
    assert intake.submissions[1].path.read_bytes() == own.read_bytes()


def test_what_a_student_changes_after_the_intake_is_never_graded(tmp_path):
    """In a folder students can still write to, a notebook swapped for a link to the instructor's after the
    intake read it changes nothing: grading reads the grader's copy."""
    drop = tmp_path / "drop"
    mine = _notebook(drop / "mallory.ipynb", exercises=1)
    instructor = _notebook(tmp_path / "instructor.ipynb", exercises=3)
    found = _by_student(read_intake(drop, scratch=tmp_path / "scratch"))
    mine.unlink()
    mine.symlink_to(instructor)
    assert found["mallory"].path.read_bytes() != instructor.read_bytes()
    assert json.loads(found["mallory"].path.read_text())["cells"][0]["metadata"]["nbgrader"]["grade_id"] == "e0"
    assert len(json.loads(found["mallory"].path.read_text())["cells"]) == 1


def test_a_folder_that_cannot_be_listed_costs_only_its_student(tmp_path, monkeypatch):
    submitted = tmp_path / "submitted"
    _notebook(submitted / "alice" / "05_autograd" / "05_autograd.ipynb")
    _notebook(submitted / "eve" / "05_autograd" / "05_autograd.ipynb")
    real = Path.iterdir

    def iterdir(self):
        if self.name == "eve" or self.parent.name == "eve":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    found = _by_student(read_intake(submitted, scratch=tmp_path / "scratch"))
    assert found["alice"].path is not None and found["eve"].path is None


def test_a_repository_whose_only_notebook_is_a_link_is_recorded_with_a_note_not_left_out(tmp_path):
    clones = tmp_path / "clones"
    _notebook(clones / "alice" / "05_autograd.ipynb")
    (clones / "mallory").mkdir()
    (clones / "mallory" / "05_autograd.ipynb").symlink_to(clones / "alice" / "05_autograd.ipynb")
    found = _by_student(read_intake(clones, scratch=tmp_path / "scratch"))
    assert found["mallory"].path is None
    assert any("'05_autograd.ipynb' is a symbolic link" in note for note in found["mallory"].notes)


def test_a_notebook_beside_the_student_folders_cannot_turn_the_class_into_a_folder_of_notebooks(tmp_path):
    submitted = tmp_path / "submitted"
    for student in ("alice", "bob", "carol"):
        _notebook(submitted / student / "05_autograd" / "05_autograd.ipynb")
    _notebook(submitted / "alice.ipynb", exercises=0)  # dropped by someone who can write there
    intake = read_intake(submitted, scratch=tmp_path / "scratch")
    found = _by_student(intake)
    assert intake.layout == "nbgrader" and sorted(found) == ["alice", "bob", "carol"]
    assert found["alice"].path.name == "05_autograd.ipynb"
    assert [s.shown_name for s in intake.skipped] == ["'alice.ipynb'"]


@contextlib.contextmanager
def _within(seconds: int):
    """Fail, instead of hanging the suite, if the block takes longer than ``seconds``."""
    def too_slow(*_):
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_fifos_where_a_student_file_should_be_never_block_the_intake(tmp_path):
    submitted = tmp_path / "submitted"
    _notebook(submitted / "alice" / "05_autograd" / "05_autograd.ipynb")
    folder = submitted / "mallory" / "05_autograd"
    _notebook(folder / "05_autograd.ipynb")
    for name in ("timestamp.txt", "submission_secret.txt", "other.ipynb"):
        os.mkfifo(folder / name)
    with _within(10):
        found = _by_student(read_intake(submitted, scratch=tmp_path / "scratch"))
    assert found["mallory"].path.name == "05_autograd.ipynb" and found["mallory"].timestamp is None
    assert found["mallory"].secret is None and found["alice"].path is not None


def test_a_write_lease_on_a_students_notebook_does_not_stall_the_intake(tmp_path):
    """Opening a leased file waits for the lease holder (45 s by default) unless the open does not block."""
    submitted = tmp_path / "submitted"
    _notebook(submitted / "alice" / "05_autograd" / "05_autograd.ipynb")
    leased = _notebook(submitted / "mallory" / "05_autograd" / "a.ipynb")
    _notebook(submitted / "mallory" / "05_autograd" / "b.ipynb")
    holder = subprocess.Popen([sys.executable, "-c", LEASE_HOLDER, str(leased)], stdout=subprocess.PIPE, text=True)
    try:
        if holder.stdout.readline().strip() != "leased":
            pytest.skip("this filesystem or kernel gives no write leases")
        started = time.monotonic()
        with _within(30):
            found = _by_student(read_intake(submitted, scratch=tmp_path / "scratch"))
        assert time.monotonic() - started < 10
        assert found["alice"].path is not None
    finally:
        holder.kill()
        holder.wait()


LEASE_HOLDER = """
import fcntl, os, signal, sys, time
signal.signal(signal.SIGIO, signal.SIG_IGN)
descriptor = os.open(sys.argv[1], os.O_RDONLY)
try:
    fcntl.fcntl(descriptor, getattr(fcntl, "F_SETLEASE", 1024), fcntl.F_WRLCK)
except OSError:
    print("no lease", flush=True)
    sys.exit(0)
print("leased", flush=True)
time.sleep(120)
"""


def test_reading_a_student_file_opens_it_once_and_refuses_a_fifo_without_waiting(tmp_path):
    """No check-then-open: a fifo swapped in at any moment is met by the one open, which does not block."""
    from autograder.intake import read_student_file

    os.mkfifo(tmp_path / "timestamp.txt")
    (tmp_path / "real.txt").write_text("2026-12-01 10:00:00.000000 UTC")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    with _within(5):
        assert read_student_file(tmp_path / "timestamp.txt", 200) is None
    assert read_student_file(tmp_path / "link.txt", 200) is None
    assert read_student_file(tmp_path / "real.txt", 4) == b"2026-"  # limit + 1 bytes: "too long" stays visible
