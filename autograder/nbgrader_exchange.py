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

- the owner is the owner of the folder actually opened, so renaming or swapping
  entries after the check changes nothing;
- an entry that is not a plain folder, or that holds a link, a special file or
  more than the course's ``max_dir_size``, is refused;
- the submission time is the entry folder's change time (ctime), which the
  kernel sets and nobody can move back; it replaces the entry's timestamp.txt,
  and it decides which entry is a student's newest (before the due date first,
  with ``--before-duedate``);
- an entry that cannot be read costs only itself: it is logged as an error and
  left in ``inbound/``.

Where every student runs as one account (JupyterHub's Docker images: all are
``jovyan``), ownership says nothing about who submitted: there, set
``c.ExchangeCollect.check_owner = False`` (nbgrader's own option).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import pwd
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nbgrader.exchange.default.collect import ExchangeCollect

# nbgrader's own format for timestamp.txt (nbgrader.utils.parse_utc reads it back).
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f UTC"
CHUNK = 1 << 20


class EntryRefused(Exception):
    """This inbound entry is not collected (the message says why)."""


@dataclass
class Entry:
    name: str  # the folder's name in inbound/: <student>+<assignment>+<time>+<random>
    student: str
    submitted_at: dt.datetime  # naive UTC, as nbgrader keeps times: the folder's ctime
    descriptor: int


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
        entries: list[Entry] = []
        try:
            entries = self._open_entries(inbound_fd)
            chosen = newest_per_student(entries, self._duedate() if self.before_duedate else None)
            self.src_records = []
            for entry in chosen:
                try:
                    stage_entry(entry, self._staging, budget=Budget(1000 * self.coursedir.max_dir_size))
                except (EntryRefused, OSError) as error:
                    self.log.error("not collected: %s: %s", entry.name, error)
                    continue
                self.src_records.append({"username": entry.student, "filename": entry.name,
                                         "timestamp": entry.submitted_at})
        finally:
            for entry in entries:
                os.close(entry.descriptor)
            os.close(inbound_fd)
        # nbgrader's copy_files reads from here: the private copies, no longer the students' entries.
        self.inbound_path = str(self._staging)

    def _open_entries(self, inbound_fd: int) -> list[Entry]:
        student = self.coursedir.student_id or "*"
        pattern = f"{student}+{self.coursedir.assignment_id}+*"
        entries = []
        for name in sorted(os.listdir(inbound_fd)):
            if not fnmatch.fnmatchcase(name, pattern):
                continue
            try:
                entries.append(open_entry(inbound_fd, name, check_owner=self.check_owner))
            except (EntryRefused, OSError) as error:
                self.log.error("not collected: %s: %s", name, getattr(error, "strerror", None) or error)
        return entries

    def _duedate(self):
        from nbgrader.api import Gradebook, MissingEntry

        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gradebook:
            try:
                return gradebook.find_assignment(self.coursedir.assignment_id).duedate
            except MissingEntry:
                return None


def open_entry(inbound_fd: int, name: str, *, check_owner: bool) -> Entry:
    """Open one inbound entry without following a link; refuse it if its owner is not the student it names."""
    student = name.rsplit("+", 3)[0]
    try:
        descriptor = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=inbound_fd)
    except OSError as error:
        raise EntryRefused("not a folder of its own (a link or a file)") from error
    info = os.fstat(descriptor)
    if check_owner:
        owner = owner_name(info.st_uid)
        if owner != student:
            os.close(descriptor)
            raise EntryRefused(f"names {student!r} but belongs to the account {owner!r} (if every student runs "
                               "as one account, set c.ExchangeCollect.check_owner = False)")
    submitted_at = dt.datetime.fromtimestamp(info.st_ctime, tz=dt.timezone.utc).replace(tzinfo=None)
    return Entry(name, student, submitted_at, descriptor)


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
    """Bytes an entry may still hold: a sparse file of terabytes is refused, not copied."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def take(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise EntryRefused("larger than the course's max_dir_size")


def stage_entry(entry: Entry, staging: Path, *, budget: Budget) -> Path:
    """Copy the entry into ``staging`` through its descriptor; its timestamp.txt becomes the trusted time."""
    destination = staging / entry.name
    _copy_folder(entry.descriptor, destination, budget)
    (destination / "timestamp.txt").write_text(entry.submitted_at.strftime(TIMESTAMP_FORMAT), encoding="utf-8")
    return destination


def _copy_folder(folder_fd: int, destination: Path, budget: Budget) -> None:
    destination.mkdir()
    for name in sorted(os.listdir(folder_fd)):
        info = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder_fd)
            try:
                _copy_folder(child, destination / name, budget)
            finally:
                os.close(child)
        elif stat.S_ISREG(info.st_mode):
            _copy_file(folder_fd, name, destination / name, budget)
        else:
            raise EntryRefused(f"{name!r} is a symbolic link or a special file, not a file of its own")


def _copy_file(folder_fd: int, name: str, destination: Path, budget: Budget) -> None:
    # O_NONBLOCK: a fifo swapped in after the stat above must not hang collect; fstat then refuses it.
    source = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder_fd)
    try:
        if not stat.S_ISREG(os.fstat(source).st_mode):
            raise EntryRefused(f"{name!r} is not a file of its own")
        with open(destination, "wb") as out:
            while chunk := os.read(source, CHUNK):
                budget.take(len(chunk))
                out.write(chunk)
    finally:
        os.close(source)
