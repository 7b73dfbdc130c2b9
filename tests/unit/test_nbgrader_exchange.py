"""The collect plugin reads each inbound entry once, through descriptors: what the student changes after
the entry was opened, or puts in it besides plain files and folders, never reaches submitted/."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest

from autograder.nbgrader_exchange import (MAX_DEPTH, MAX_ITEMS, Budget, Entry, EntryRefused, newest_per_student,
                                          open_entry, stage_entry)

NAME = "alice+05_autograd+2026-12-01 10:00:00.000000 UTC+abcd"


@pytest.fixture
def inbound(tmp_path):
    folder = tmp_path / "inbound"
    (folder / NAME / "sub").mkdir(parents=True)
    (folder / NAME / "05_autograd.ipynb").write_text("alice's notebook")
    (folder / NAME / "sub" / "notes.txt").write_text("notes")
    return folder


def _staged(inbound: Path, tmp_path: Path, *, change=None, budget: int = 10**6, check_owner=False,
            name: str = NAME) -> Path:
    descriptor = os.open(inbound, os.O_RDONLY | os.O_DIRECTORY)
    try:
        entry = open_entry(descriptor, name, check_owner=check_owner)
        if change:
            change(inbound / name)
        staging = tmp_path / "staging"
        staging.mkdir(parents=True, exist_ok=True)
        return stage_entry(descriptor, entry, staging, budget=Budget(budget))
    finally:
        os.close(descriptor)


def test_an_entry_is_copied_whole_with_the_kernels_time_in_its_timestamp(inbound, tmp_path):
    (inbound / NAME / "timestamp.txt").write_text("2001-01-01 00:00:00.000000 UTC")  # backdated by its author
    staged = _staged(inbound, tmp_path)
    assert (staged / "05_autograd.ipynb").read_text() == "alice's notebook"
    assert (staged / "sub" / "notes.txt").read_text() == "notes"
    latest = max(path.stat().st_ctime for path in [inbound / NAME, *(inbound / NAME).rglob("*")])
    ctime = dt.datetime.fromtimestamp(latest, tz=dt.timezone.utc)
    assert (staged / "timestamp.txt").read_text() == ctime.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def test_a_link_swapped_in_after_the_entry_was_opened_is_refused(inbound, tmp_path):
    target = tmp_path / "instructor.ipynb"
    target.write_text("the instructor's solution")

    def swap(entry: Path) -> None:
        (entry / "05_autograd.ipynb").unlink()
        (entry / "05_autograd.ipynb").symlink_to(target)

    with pytest.raises(EntryRefused, match="symbolic link"):
        _staged(inbound, tmp_path, change=swap)


def test_an_entry_renamed_away_and_replaced_after_it_was_checked_is_refused(inbound, tmp_path):
    def replace(entry: Path) -> None:
        entry.rename(entry.with_name("elsewhere"))
        entry.mkdir()
        (entry / "05_autograd.ipynb").write_text("someone else's notebook")

    with pytest.raises(EntryRefused, match="replaced"):
        _staged(inbound, tmp_path, change=replace)


def test_a_file_rewritten_in_place_makes_the_submission_as_late_as_the_rewrite(inbound, tmp_path):
    """Rewriting a file does not change its folder's ctime: the time is the latest ctime of everything."""
    folder_time = (inbound / NAME).stat().st_ctime
    time.sleep(0.05)

    def rewrite(entry: Path) -> None:
        with open(entry / "sub" / "notes.txt", "w") as handle:  # in place: the folder is not touched
            handle.write("written after the deadline")

    staged = _staged(inbound, tmp_path, change=rewrite)
    assert (inbound / NAME).stat().st_ctime == folder_time
    rewritten = dt.datetime.fromtimestamp((inbound / NAME / "sub" / "notes.txt").stat().st_ctime, dt.timezone.utc)
    assert (staged / "timestamp.txt").read_text() == rewritten.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def test_folders_nested_too_deep_and_too_many_files_are_refused(inbound, tmp_path):
    deep = inbound / NAME
    for _ in range(MAX_DEPTH + 2):
        deep = deep / "d"
    deep.mkdir(parents=True)
    with pytest.raises(EntryRefused, match="nested deeper"):
        _staged(inbound, tmp_path)
    many = tmp_path / "many"
    (many / NAME).mkdir(parents=True)
    for number in range(MAX_ITEMS + 1):
        (many / NAME / f"f{number}").touch()
    with pytest.raises(EntryRefused, match="more than"):
        _staged(many, tmp_path / "other")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to give a file to another account")
def test_a_file_another_account_put_in_a_students_entry_refuses_the_entry(inbound, tmp_path):
    import pwd

    nobody = pwd.getpwnam("nobody")
    own = "root+05_autograd+2026-12-01 10:00:00.000000 UTC+abcd"  # this test's account is root: its own entry
    (inbound / NAME).rename(inbound / own)
    assert (_staged(inbound, tmp_path / "before", check_owner=True, name=own) / "05_autograd.ipynb").is_file()
    (inbound / own / "sub" / "planted.txt").write_text("from someone else")
    os.chown(inbound / own / "sub" / "planted.txt", nobody.pw_uid, nobody.pw_gid)
    with pytest.raises(EntryRefused, match="belongs to the account 'nobody'"):
        _staged(inbound, tmp_path / "after", check_owner=True, name=own)


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(inbound, tmp_path):
    os.mkfifo(inbound / NAME / "sub" / "pipe")
    with pytest.raises(EntryRefused, match="special file"):
        _staged(inbound, tmp_path)


def test_a_sparse_file_larger_than_the_budget_is_refused_without_copying_it(inbound, tmp_path):
    with open(inbound / NAME / "big.bin", "wb") as handle:
        handle.truncate(2**40)  # 1 TiB of nothing, a few KiB on disk
    with pytest.raises(EntryRefused, match="max_dir_size"):
        _staged(inbound, tmp_path, budget=10 * 2**20)


def test_an_entry_that_is_a_link_or_a_file_or_names_no_student_is_refused(tmp_path):
    inbound = tmp_path / "inbound"
    inbound.mkdir()
    (inbound / "linked+05_autograd+t+1").symlink_to(tmp_path)
    (inbound / "file+05_autograd+t+1").write_text("not a folder")
    (inbound / "..+05_autograd+t+1").mkdir()  # nbgrader would write it outside submitted/
    descriptor = os.open(inbound, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in ("linked+05_autograd+t+1", "file+05_autograd+t+1"):
            with pytest.raises(EntryRefused, match="not a folder of its own"):
                open_entry(descriptor, name, check_owner=False)
        with pytest.raises(EntryRefused, match="no valid student id"):
            open_entry(descriptor, "..+05_autograd+t+1", check_owner=False)
    finally:
        os.close(descriptor)


def test_the_newest_entry_wins_and_with_a_due_date_the_newest_on_time():
    def entry(student: str, hour: int) -> Entry:
        return Entry(f"{student}+{hour}", student, dt.datetime(2026, 12, 1, hour), (0, 0), None)

    entries = [entry("ann", 9), entry("ann", 11), entry("bob", 13), entry("bob", 8)]
    assert sorted(e.name for e in newest_per_student(entries, None)) == ["ann+11", "bob+13"]
    due = dt.datetime(2026, 12, 1, 10)
    assert sorted(e.name for e in newest_per_student(entries, due)) == ["ann+9", "bob+8"]
    assert [e.name for e in newest_per_student([entry("cat", 12)], due)] == ["cat+12"]  # late, but all there is


def test_a_copy_nbgrader_cannot_make_costs_only_its_student(tmp_path, monkeypatch, caplog):
    """nbgrader's own loop stops for everyone after a failed copy (a path too long where it lands, a size it
    measures differently): the plugin's do_copy contains it."""
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.exchange.default.collect import ExchangeCollect

    from autograder.nbgrader_exchange import CheckedCollect

    def fails(self, src, dest, log=None):
        Path(dest).mkdir(parents=True)
        (Path(dest) / "half.ipynb").write_text("half a copy")
        raise OSError(36, "File name too long")

    monkeypatch.setattr(ExchangeCollect, "do_copy", fails)
    collect = CheckedCollect(coursedir=CourseDirectory(), authenticator=Authenticator())
    dest = tmp_path / "submitted" / "alice" / "05_autograd"
    with caplog.at_level("ERROR"):
        collect.do_copy(str(tmp_path / NAME), str(dest))  # returns: the loop goes on with the next student
    assert not dest.exists()
    assert "File name too long" in caplog.text and "not collected" in caplog.text
