"""nbgrader's collect, made safe against the students whose entries it reads.

nbgrader's default exchange lets every account write into ``inbound/`` and
names an entry's student and time by the entry's folder name, which its
author chooses.  nbgrader's own collect then only warns when the name is not
the owner's, trusts the time in the name (and the entry's timestamp.txt), stops
for the whole class at one entry it cannot parse or copy, and copies the entry
with the instructor's rights, following every symbolic link in it; and since
the entry stays the student's, it can change between any check and the copy.

``CheckedCollect`` (the course's nbgrader_config.py makes it nbgrader's
collect) therefore reads each entry once, through descriptors opened without
following links, into a private staging folder, and nbgrader's copy then works
from that copy:

- the owner is checked on the folder actually opened, and on everything in
  it: nbgrader makes entry folders writable by all, so another student could
  add to one; renaming or swapping entries after the check changes nothing
  (the folder copied must be the one checked);
- an entry that is not a plain folder, whose name is not a valid student id,
  or that holds a link, a special file, more than ``max_dir_size`` bytes,
  more than ``MAX_ITEMS`` files and folders or folders deeper than
  ``MAX_DEPTH``, is refused;
- the submission time is the latest change time (ctime) of the entry and of
  everything in it, read as it is copied: the kernel sets it and nobody can
  move it back, so neither the name, nor the entry's timestamp.txt, nor a
  file rewritten in place later can backdate a submission; it replaces the
  entry's timestamp.txt;
- an entry that cannot be read costs only itself: it is logged as an error and
  left in ``inbound/``.

nbgrader's ``inbound/`` has no sticky bit: a student who learns another's entry
name (nbgrader adds 12 random characters to it) could rename it away, or make
it look later.  ``chmod +t`` on ``inbound/`` stops that; nbgrader works with it.

Where every student runs as one account (JupyterHub's Docker images: all are
``jovyan``), ownership says nothing about who submitted: there, set
``c.ExchangeCollect.check_owner = False`` (nbgrader's own option).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import pwd
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nbgrader.exchange.default.collect import ExchangeCollect

from .identity import student_id_problem

# nbgrader's own format for timestamp.txt (nbgrader.utils.parse_utc reads it back).
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f UTC"
CHUNK = 1 << 20
# A submission is a notebook and a few files: these bound what one entry may cost collect.
MAX_DEPTH = 16
MAX_ITEMS = 10_000
TIMESTAMP_ROOM = 64  # bytes: the timestamp.txt staging writes


class EntryRefused(Exception):
    """This inbound entry is not collected (the message says why)."""


@dataclass
class Entry:
    name: str  # the folder's name in inbound/: <student>+<assignment>+<time>+<random>
    student: str
    submitted_at: dt.datetime  # naive UTC, as nbgrader keeps times: a ctime (see the module's docstring)
    inode: tuple[int, int]  # (device, inode) of the folder checked: the one copied must be the same
    owner: int | None  # the uid everything in it must belong to; None: check_owner is off


class CheckedCollect(ExchangeCollect):
    def start(self):
        with tempfile.TemporaryDirectory(prefix="nbgrader-collect-") as staging:
            self._staging = Path(staging)
            return super().start()

    def init_src(self):
        if not self.coursedir.course_id:
            self.fail("no course id: set c.CourseDirectory.course_id, or pass --course")
        self.course_path = os.path.join(self.root, self.coursedir.course_id)
        inbound = os.path.join(self.course_path, "inbound")
        try:
            inbound_fd = os.open(inbound, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as error:
            self.fail(f"cannot read the course's inbound folder {inbound}: {error.strerror}")
        try:
            entries = self._open_entries(inbound_fd)
            chosen = newest_per_student(entries, self._duedate() if self.before_duedate else None)
            self.src_records = []
            for entry in chosen:
                try:
                    # nbgrader measures the staged copy again, timestamp.txt included: leave room for it.
                    budget = Budget(1000 * self.coursedir.max_dir_size - TIMESTAMP_ROOM)
                    stage_entry(inbound_fd, entry, self._staging, budget=budget)
                except Exception as error:  # noqa: BLE001 - one student's entry must not stop collect for the class
                    self.log.error("not collected: %r: %s", entry.name, _reason(error))
                    continue
                self.src_records.append({"username": entry.student, "filename": entry.name,
                                         "timestamp": entry.submitted_at})
        finally:
            os.close(inbound_fd)
        # nbgrader's copy_files reads from here: the private copies, no longer the students' entries.
        self.inbound_path = str(self._staging)
        # Ownership was checked above, on the students' entries; nbgrader's own check would now look at the
        # staged copies, which are the instructor's, and warn about every student.
        self.check_owner = False

    def do_copy(self, src, dest, log=None):
        """nbgrader's copy of one staged entry; if it fails (a path too long where it lands, say), only that
        student is not collected: nbgrader's own loop would stop for everyone after them."""
        try:
            super().do_copy(src, dest, log=log)
        except Exception as error:  # noqa: BLE001 - one student's entry must not stop collect for the class
            shutil.rmtree(dest, ignore_errors=True)
            self.log.error("not collected: %r: %s", os.path.basename(src), _reason(error))

    def _open_entries(self, inbound_fd: int) -> list[Entry]:
        student = self.coursedir.student_id or "*"
        pattern = f"{student}+{self.coursedir.assignment_id}+*"
        entries = []
        for name in sorted(os.listdir(inbound_fd)):
            if not fnmatch.fnmatchcase(name, pattern):
                continue
            try:
                entries.append(open_entry(inbound_fd, name, check_owner=self.check_owner))
            except Exception as error:  # noqa: BLE001 - one student's entry must not stop collect for the class
                self.log.error("not collected: %r: %s", name, _reason(error))
        return entries

    def _duedate(self):
        from nbgrader.api import Gradebook, MissingEntry

        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gradebook:
            try:
                return gradebook.find_assignment(self.coursedir.assignment_id).duedate
            except MissingEntry:
                return None


def open_entry(inbound_fd: int, name: str, *, check_owner: bool) -> Entry:
    """Look at one inbound entry without following a link, and close it again (a class may have thousands).

    Refused if its name holds no valid student id, or it is not a folder, or
    (``check_owner``) it is not owned by the account its name gives.
    """
    student = name.rsplit("+", 3)[0]
    problem = student_id_problem(student)
    if problem:
        raise EntryRefused(f"its name gives no valid student id ({problem})")
    try:
        descriptor = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=inbound_fd)
    except OSError as error:
        raise EntryRefused("not a folder of its own (a link or a file)") from error
    try:
        info = os.fstat(descriptor)
    finally:
        os.close(descriptor)
    if check_owner and owner_name(info.st_uid) != student:
        raise EntryRefused(f"names {student!r} but belongs to the account {owner_name(info.st_uid)!r} (if every "
                           "student runs as one account, set c.ExchangeCollect.check_owner = False)")
    return Entry(name, student, _utc(info.st_ctime), (info.st_dev, info.st_ino),
                 info.st_uid if check_owner else None)


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).replace(tzinfo=None)


def _reason(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def newest_per_student(entries: list[Entry], duedate) -> list[Entry]:
    """Each student's newest entry; with a due date, their newest one on time if they have one."""
    by_student: dict[str, list[Entry]] = {}
    for entry in entries:
        by_student.setdefault(entry.student, []).append(entry)
    chosen = []
    for own in by_student.values():
        own.sort(key=lambda entry: entry.submitted_at, reverse=True)
        on_time = [entry for entry in own if duedate is not None and entry.submitted_at <= duedate]
        chosen.append((on_time or own)[0])
    return chosen


class Budget:
    """What an entry may still hold: a sparse file of terabytes, or a million empty files, is refused."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.items = MAX_ITEMS

    def take(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise EntryRefused("larger than the course's max_dir_size")

    def take_item(self) -> None:
        self.items -= 1
        if self.items < 0:
            raise EntryRefused(f"holds more than {MAX_ITEMS} files and folders")


def stage_entry(inbound_fd: int, entry: Entry, staging: Path, *, budget: Budget) -> Path:
    """Copy the entry into ``staging`` through descriptors; its timestamp.txt becomes the trusted time."""
    descriptor = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=inbound_fd)
    try:
        info = os.fstat(descriptor)
        if (info.st_dev, info.st_ino) != entry.inode:
            raise EntryRefused("it was replaced while collect read the inbound folder")
        _check_owner(info, entry.owner, entry.name)
        destination = staging / entry.name
        latest = _copy_folder(descriptor, destination, budget, entry.owner, depth=0)
    finally:
        os.close(descriptor)
    entry.submitted_at = _utc(latest)
    (destination / "timestamp.txt").write_text(entry.submitted_at.strftime(TIMESTAMP_FORMAT), encoding="utf-8")
    return destination


def _check_owner(info: os.stat_result, owner: int | None, name: str) -> None:
    if owner is not None and info.st_uid != owner:
        raise EntryRefused(f"{name!r} in it belongs to the account {owner_name(info.st_uid)!r}, not the student's")


def _copy_folder(folder_fd: int, destination: Path, budget: Budget, owner: int | None, *, depth: int) -> float:
    """Copy a folder's files and folders; the latest ctime among them and itself, read after copying."""
    if depth > MAX_DEPTH:
        raise EntryRefused(f"folders nested deeper than {MAX_DEPTH}")
    destination.mkdir()
    latest = 0.0
    for name in sorted(os.listdir(folder_fd)):
        budget.take_item()
        info = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
        _check_owner(info, owner, name)
        if stat.S_ISDIR(info.st_mode):
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder_fd)
            try:
                latest = max(latest, _copy_folder(child, destination / name, budget, owner, depth=depth + 1))
            finally:
                os.close(child)
        elif stat.S_ISREG(info.st_mode):
            latest = max(latest, _copy_file(folder_fd, name, destination / name, budget, owner))
        else:
            raise EntryRefused(f"{name!r} is a symbolic link or a special file, not a file of its own")
    return max(latest, os.fstat(folder_fd).st_ctime)


def _copy_file(folder_fd: int, name: str, destination: Path, budget: Budget, owner: int | None) -> float:
    """Copy one file; its ctime after the copy (a rewrite during the copy shows in it)."""
    # O_NONBLOCK: a fifo swapped in after the stat above must not hang collect; fstat then refuses it.
    source = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder_fd)
    try:
        info = os.fstat(source)
        if not stat.S_ISREG(info.st_mode):
            raise EntryRefused(f"{name!r} is not a file of its own")
        _check_owner(info, owner, name)
        with open(destination, "wb") as out:
            while chunk := os.read(source, CHUNK):
                budget.take(len(chunk))
                out.write(chunk)
        return os.fstat(source).st_ctime
    finally:
        os.close(source)
