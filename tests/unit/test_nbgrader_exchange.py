"""The collect plugin reads each inbound entry once, through descriptors: what the student changes after
the entry was opened, or puts in it besides plain files and folders, never reaches submitted/."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from autograder.nbgrader_exchange import Budget, EntryRefused, Entry, newest_per_student, open_entry, stage_entry

NAME = "alice+05_autograd+2026-12-01 10:00:00.000000 UTC+abcd"


@pytest.fixture
def inbound(tmp_path):
    folder = tmp_path / "inbound"
    (folder / NAME / "sub").mkdir(parents=True)
    (folder / NAME / "05_autograd.ipynb").write_text("alice's notebook")
    (folder / NAME / "sub" / "notes.txt").write_text("notes")
    return folder


def _staged(inbound: Path, tmp_path: Path, *, change=None, budget: int = 10**6) -> Path:
    descriptor = os.open(inbound, os.O_RDONLY | os.O_DIRECTORY)
    entry = open_entry(descriptor, NAME, check_owner=False)
    try:
        if change:
            change(inbound / NAME)
        staging = tmp_path / "staging"
        staging.mkdir(exist_ok=True)
        return stage_entry(entry, staging, budget=Budget(budget))
    finally:
        os.close(entry.descriptor)
        os.close(descriptor)


def test_an_entry_is_copied_whole_with_the_kernels_time_in_its_timestamp(inbound, tmp_path):
    (inbound / NAME / "timestamp.txt").write_text("2001-01-01 00:00:00.000000 UTC")  # backdated by its author
    staged = _staged(inbound, tmp_path)
    assert (staged / "05_autograd.ipynb").read_text() == "alice's notebook"
    assert (staged / "sub" / "notes.txt").read_text() == "notes"
    ctime = dt.datetime.fromtimestamp((inbound / NAME).stat().st_ctime, tz=dt.timezone.utc).replace(tzinfo=None)
    assert (staged / "timestamp.txt").read_text() == ctime.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def test_a_link_swapped_in_after_the_entry_was_opened_is_refused(inbound, tmp_path):
    target = tmp_path / "instructor.ipynb"
    target.write_text("the instructor's solution")

    def swap(entry: Path) -> None:
        (entry / "05_autograd.ipynb").unlink()
        (entry / "05_autograd.ipynb").symlink_to(target)

    with pytest.raises(EntryRefused, match="symbolic link"):
        _staged(inbound, tmp_path, change=swap)


def test_an_entry_renamed_away_and_replaced_after_it_was_opened_is_copied_as_opened(inbound, tmp_path):
    def replace(entry: Path) -> None:
        entry.rename(entry.with_name("elsewhere"))
        entry.mkdir()
        (entry / "05_autograd.ipynb").write_text("someone else's notebook")

    staged = _staged(inbound, tmp_path, change=replace)
    assert (staged / "05_autograd.ipynb").read_text() == "alice's notebook"


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(inbound, tmp_path):
    os.mkfifo(inbound / NAME / "sub" / "pipe")
    with pytest.raises(EntryRefused, match="special file"):
        _staged(inbound, tmp_path)


def test_a_sparse_file_larger_than_the_budget_is_refused_without_copying_it(inbound, tmp_path):
    with open(inbound / NAME / "big.bin", "wb") as handle:
        handle.truncate(2**40)  # 1 TiB of nothing, a few KiB on disk
    with pytest.raises(EntryRefused, match="max_dir_size"):
        _staged(inbound, tmp_path, budget=10 * 2**20)


def test_an_entry_that_is_a_link_or_a_file_is_refused(tmp_path):
    inbound = tmp_path / "inbound"
    inbound.mkdir()
    (inbound / "linked+05_autograd+t+1").symlink_to(tmp_path)
    (inbound / "file+05_autograd+t+1").write_text("not a folder")
    descriptor = os.open(inbound, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in ("linked+05_autograd+t+1", "file+05_autograd+t+1"):
            with pytest.raises(EntryRefused, match="not a folder of its own"):
                open_entry(descriptor, name, check_owner=False)
    finally:
        os.close(descriptor)


def test_the_newest_entry_wins_and_with_a_due_date_the_newest_on_time():
    def entry(student: str, hour: int) -> Entry:
        return Entry(f"{student}+{hour}", student, dt.datetime(2026, 12, 1, hour), -1)

    entries = [entry("ann", 9), entry("ann", 11), entry("bob", 13), entry("bob", 8)]
    assert sorted(e.name for e in newest_per_student(entries, None)) == ["ann+11", "bob+13"]
    due = dt.datetime(2026, 12, 1, 10)
    assert sorted(e.name for e in newest_per_student(entries, due)) == ["ann+9", "bob+8"]
    assert [e.name for e in newest_per_student([entry("cat", 12)], due)] == ["cat+12"]  # late, but all there is
