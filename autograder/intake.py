"""Finding a class's submissions, whatever layout they came in, and who each one belongs to.

Layouts read (the first that matches wins; ``describe_layouts`` words them for
an empty intake):

- nbgrader's ``submitted/<student>/<assignment>/`` (as ``nbgrader collect`` or
  the exchange leaves it), with nbgrader's ``timestamp.txt``; a notebook put
  directly in ``submitted/<student>/`` is read too.  The course root may be
  given instead of its ``submitted/`` folder.
- a folder of ``<student>.ipynb`` files.
- a zip downloaded from an LMS, or a folder it was extracted to:
  Canvas (``<lastfirst>_[LATE_]<userid>_<submissionid>_<filename>.ipynb``: the
  student id is the Canvas user id, as two students may share ``lastfirst``), Moodle (a folder per student,
  ``<Full Name>_<participant id>_assignsubmission_file_/``: the id is the
  participant id) and nbgrader's ``zip_collect`` default
  (``<prefix>_<student id>_attempt_<YYYY-MM-DD-HH-MM-SS>_<file>.ipynb``, the
  attempt time being the submission time).

A layout is the one most of the entries follow; entries that do not follow
it (a stray file, a name an LMS mangled) are listed as skipped, so one odd
upload cannot change how everyone else's names are read.  Every id must pass
``identity.student_id_problem``: a name that does not is listed as skipped,
never cleaned up into someone else's id.  Symbolic links are not followed
(a link could point at the instructor's notebook).  A student with several
notebooks is graded on the one holding the most of this assignment's
exercise cells (each counted once), the latest among equals; the others are
named in a note.  ``timestamp.txt`` is read only in the form nbgrader writes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import stat
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .course import ASSIGNMENT
from .identity import student_id_problem

# A zip bigger than any class's notebooks would need, or with more members, is refused unread.
MAX_ZIP_BYTES = 2 * 1024**3
MAX_ZIP_MEMBERS = 20_000
# nbgrader submit writes 128 hex digits into this file.
SUBMISSION_SECRET = "submission_secret.txt"
MAX_SECRET_BYTES = 4096
SECRET = re.compile(rb"[0-9a-f]{32,1024}")

# The LMS writes the student's id; the student chooses only the uploaded file's name (<file>) or,
# on Moodle, their display name.  Each pattern takes the id from the part the LMS wrote, so a file
# named to look like another student's entry cannot move the match onto that student: Canvas and
# zip_collect read from the start (zip_collect's prefix is lazy), Moodle from the end (its name greedy).
CANVAS = re.compile(r"(?P<lastfirst>[a-z]+)_(?P<late>LATE_)?(?P<student>\d+)_(?P<submission>\d+)_(?P<file>.*\.ipynb)",
                    re.DOTALL)
MOODLE_FOLDER = re.compile(r"(?P<name>.+)_(?P<student>\d+)_assignsubmission_file_?", re.DOTALL)
ZIP_COLLECT = re.compile(
    r".*?_(?P<student>[^_]+)_attempt_(?P<time>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})_(?P<file>.*\.ipynb)", re.DOTALL)
# nbgrader's timestamp.txt: "2026-12-01 10:30:00.000000 UTC" and its ISO variants.  Anything else is
# ignored unparsed: the file is the student's, and dateutil's parser is slow on long inputs.
NBGRADER_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?( ?(UTC|Z|[+-]\d{2}:?\d{2}))?")


@dataclass
class Submission:
    student: str
    path: Path | None  # the notebook to grade; None: the student's folder holds none
    timestamp: dt.datetime | None = None  # when it was submitted, if the layout says (UTC)
    notes: list[str] = field(default_factory=list)
    # nbgrader exchange's submission_secret.txt, which collect puts beside the notebook: nbgrader
    # publishes the student's feedback under a hash of it (autograded.py passes it on).
    secret: Path | None = None


@dataclass
class Skipped:
    shown_name: str  # as ascii() writes it: quoted, every odd character escaped
    reason: str


@dataclass
class Intake:
    layout: str  # "nbgrader", "folder", "canvas", "moodle", "zip_collect" or "" when nothing was found
    submissions: list[Submission]
    skipped: list[Skipped]
    looked: Path


class UnreadableIntake(Exception):
    """The source itself cannot be read (not a folder or a zip, a damaged or oversized zip)."""


def describe_layouts() -> str:
    return ("nbgrader's submitted/<student>/" + ASSIGNMENT + "/*.ipynb, a folder of <student>.ipynb files, "
            "or a zip (or its extracted folder) from Canvas, Moodle or nbgrader zip_collect")


def read_intake(source: Path, *, scratch: Path) -> Intake:
    """The submissions under ``source`` (a course root, a folder or a zip); zips are extracted into ``scratch``."""
    if source.is_file() and zipfile.is_zipfile(source):
        folder = scratch / "extracted"
        _extract(source, folder)
        intake = _read_folder(folder)
        intake.looked = source
        return intake
    if not source.is_dir():
        raise UnreadableIntake(f"{source} is neither a folder nor a zip file")
    if _real_folder(source / "submitted") and not any(source.glob("*.ipynb")):
        source = source / "submitted"
    if not os.access(source, os.R_OK | os.X_OK):
        raise UnreadableIntake(f"{source} cannot be read by this user")
    intake = _read_folder(source)
    take_private_copies(intake, scratch / "copies")
    return intake


def take_private_copies(intake: Intake, copies: Path) -> None:
    """Grade copies the grader took, never the files where students may still write.

    Each chosen notebook (and exchange secret) is read once, through
    descriptors that follow no link in any part of its path under the source,
    into ``copies`` (the run's private scratch).  Everything after the intake
    (fingerprints, grading, the autograded notebook) reads the copy, so
    swapping a file for a link, or a folder on its path, after this point
    changes nothing; one that is a link by now is not graded, with a note.
    """
    from .submission import MAX_NOTEBOOK_BYTES

    for submission in intake.submissions:
        folder = copies / submission.student
        if submission.path is not None:
            try:
                submission.path = _copy_beneath(intake.looked, submission.path, folder, MAX_NOTEBOOK_BYTES)
            except OSError:
                shown = ascii(os.path.relpath(submission.path, intake.looked))
                submission.path = None
                submission.notes.append(f"{shown} is reached through a symbolic link, or cannot be read: not graded")
        if submission.secret is not None:
            try:
                submission.secret = _copy_beneath(intake.looked, submission.secret, folder / "exchange",
                                                  MAX_SECRET_BYTES)
            except OSError:
                submission.secret = None


def _copy_beneath(top: Path, path: Path, folder: Path, limit: int) -> Path:
    """Copy ``path`` (under ``top``) into ``folder``, following no link on the way; OSError if one is there."""
    parts = path.relative_to(top).parts
    descriptor = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=descriptor)
            os.close(descriptor)
            descriptor = child
        data = _read_regular(parts[-1], limit, dir_fd=descriptor)
    finally:
        os.close(descriptor)
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / parts[-1]
    copy.write_bytes(data)
    return copy


def _read_regular(name: str | Path, limit: int, *, dir_fd: int | None = None) -> bytes:
    """At most ``limit`` + 1 bytes (so that "too large" stays visible) of a plain file, opened once,
    without following a link; OSError for anything else.

    Never blocks, whatever a student put there: O_NONBLOCK makes a fifo's open
    return at once (fstat then refuses it) and makes the open of a file under a
    write lease fail instead of waiting 45 s for the lease to break.
    """
    descriptor = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(f"{str(name)!r} is not a file of its own")
        return _read_up_to(descriptor, limit + 1)
    finally:
        os.close(descriptor)


def _read_up_to(descriptor: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit and (chunk := os.read(descriptor, min(1 << 20, limit - size))):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _read_folder(folder: Path) -> Intake:
    # Moodle's folders would also pass for nbgrader's student folders: it is tried first.
    for layout, reader in (("moodle", _moodle), ("nbgrader", _nbgrader), ("canvas", _canvas),
                           ("zip_collect", _zip_collect), ("folder", _flat)):
        found = reader(folder)
        if found is not None:
            submissions, skipped = found
            return Intake(layout, submissions, skipped, folder)
    return Intake("", [], [], folder)


# What Jupyter, macOS and zip tools leave beside submissions: never a student's, so never listed.
JUNK = frozenset({".ipynb_checkpoints", "__MACOSX", ".DS_Store", ".git"})


def _real_folder(path: Path) -> bool:
    """A folder of its own: never a link to one (it could lead anywhere), and False if it cannot be read."""
    try:
        return not path.is_symlink() and path.is_dir()
    except OSError:
        return False


def _entries(folder: Path) -> list[Path]:
    """What ``folder`` holds; nothing if it is a link or cannot be read (one student's folder must not stop
    the class)."""
    if not _real_folder(folder):
        return []
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _notebooks(folder: Path) -> list[Path]:
    return [path for path in _entries(folder) if path.suffix == ".ipynb" and path.name not in JUNK
            and not path.name.startswith("._") and not path.is_symlink() and path.is_file()]


def _subfolders(folder: Path) -> list[Path]:
    return [path for path in _entries(folder) if path.name not in JUNK and _real_folder(path)]


def _links(folder: Path) -> list[Skipped]:
    return [Skipped(ascii(path.name)[:200], "a symbolic link, not a file or folder of its own: not followed")
            for path in _entries(folder) if path.is_symlink()]


def _nbgrader(folder: Path):
    # A link in the student's folder (to a notebook, or named like the assignment's folder) still makes it
    # a student's folder: they are recorded, with a note that the link was not followed, never left out.
    students = [sub for sub in _subfolders(folder)
                if _real_folder(sub / ASSIGNMENT) or any(path.suffix == ".ipynb" or path.name == ASSIGNMENT
                                                         for path in _entries(sub))]
    # The layout most entries follow: a notebook or two beside the student folders (a stray upload) is
    # skipped, and cannot turn the class into a folder of <student>.ipynb files.
    strays = _notebooks(folder)
    if not students or len(strays) >= len(students):
        return None
    submissions = []
    skipped = [Skipped(ascii(path.name)[:200], "a notebook beside the student folders: not any student's")
               for path in strays]
    for student_folder in students:
        problem = student_id_problem(student_folder.name)
        if problem:
            skipped.append(Skipped(ascii(student_folder.name)[:200], problem))
            continue
        assignment_folder = student_folder / ASSIGNMENT
        own = _real_folder(assignment_folder)  # a link named 05_autograd is never entered
        candidates = _notebooks(assignment_folder) or _notebooks(student_folder)
        submission = choose(student_folder.name, [(path, None) for path in candidates])
        if own:
            submission.timestamp, note = _nbgrader_timestamp(assignment_folder / "timestamp.txt")
            submission.notes += [note] if note else []
            submission.secret = _exchange_secret(assignment_folder / SUBMISSION_SECRET)
        if not os.access(student_folder, os.R_OK | os.X_OK):
            submission.notes.append("the grader could not read this folder: ask your instructor")
        for folder_seen in (student_folder, assignment_folder):
            submission.notes += [f"{link.shown_name} is a symbolic link: it was not followed"
                                 for link in _links(folder_seen)]
        submissions.append(submission)
    return submissions, skipped + _links(folder)


def _flat(folder: Path):
    notebooks = _notebooks(folder)
    if not notebooks:
        return None
    submissions, skipped = [], []
    for path in notebooks:
        problem = student_id_problem(path.stem)
        if problem:
            skipped.append(Skipped(ascii(path.name)[:200], problem))
        else:
            submissions.append(Submission(path.stem, path))
    return submissions, skipped + _links(folder)


def _most(entries: list[Path], pattern: re.Pattern):
    """(matches, the rest as skipped) if most of ``entries`` follow ``pattern``, else None."""
    matches = [(path, pattern.fullmatch(path.name)) for path in entries]
    following = [(path, match) for path, match in matches if match]
    if not following or 2 * len(following) <= len(entries):
        return None
    rest = [Skipped(ascii(path.name)[:200], "its name does not follow the naming of the other submissions")
            for path, match in matches if not match]
    return following, rest


def _canvas(folder: Path):
    found = _most(_notebooks(folder), CANVAS)
    if found is None:
        return None
    matches, rest = found
    submissions, skipped = _group([(match["student"], path, None) for path, match in matches])
    late = {match["student"] for _, match in matches if match["late"]}
    for submission in submissions:
        if submission.student in late:
            submission.notes.append("Canvas marked this submission late")
    return submissions, skipped + rest


def _zip_collect(folder: Path):
    found = _most(_notebooks(folder), ZIP_COLLECT)
    if found is None:
        return None
    matches, rest = found
    entries = [(match["student"], path,
                dt.datetime.strptime(match["time"], "%Y-%m-%d-%H-%M-%S").replace(tzinfo=dt.timezone.utc))
               for path, match in matches]
    submissions, skipped = _group(entries)
    return submissions, skipped + rest


def _moodle(folder: Path):
    found = _most(_subfolders(folder), MOODLE_FOLDER)
    if found is None:
        return None
    matches, rest = found
    submissions, skipped = _group([(match["student"], path, None)
                                   for sub, match in matches for path in _notebooks(sub)])
    return submissions, skipped + rest


def _group(entries: list[tuple[str, Path, dt.datetime | None]]):
    """One submission per student id from (id, notebook, timestamp) entries."""
    by_student: dict[str, list[tuple[Path, dt.datetime | None]]] = {}
    skipped = []
    for student, path, timestamp in entries:
        problem = student_id_problem(student)
        if problem:
            skipped.append(Skipped(ascii(path.name)[:200], problem))
        else:
            by_student.setdefault(student, []).append((path, timestamp))
    submissions = []
    for student, found in sorted(by_student.items()):
        submissions.append(choose(student, found))
    return submissions, skipped


def choose(student: str, candidates: list[tuple[Path, dt.datetime | None]]) -> Submission:
    """The student's notebook: the one with the most of this assignment's exercise cells, then the latest
    (by the submission time the layout gives, else the file's time); with its submission time."""
    if not candidates:
        return Submission(student, None)

    def latest(entry) -> float:
        path, timestamp = entry
        return timestamp.timestamp() if timestamp else path.stat().st_mtime

    ranked = sorted(candidates, key=lambda entry: (_exercise_cells(entry[0]), latest(entry)), reverse=True)
    path, timestamp = ranked[0]
    notes = []
    if len(ranked) > 1:
        others = ", ".join(ascii(other.name) for other, _ in ranked[1:])
        notes.append(f"several notebooks were submitted; graded {ascii(path.name)}, not {others}")
    return Submission(student, path, timestamp, notes)


def _exercise_cells(path: Path) -> int:
    """How many distinct exercise cells (nbgrader solution cells, by grade_id) the notebook holds.

    Copies of one cell count once: grading reads only the first.  The file is
    read with the same limits as a submission (size, JSON structure).
    """
    from .submission import MAX_NOTEBOOK_BYTES, parse_notebook

    data = read_student_file(path, MAX_NOTEBOOK_BYTES)
    if data is None or len(data) > MAX_NOTEBOOK_BYTES:
        return 0
    notebook, _ = parse_notebook(data)
    if notebook is None:
        return 0
    ids = set()
    for cell in notebook["cells"]:
        meta = cell.get("metadata")
        nbgrader = meta.get("nbgrader") if isinstance(meta, dict) else None
        if isinstance(nbgrader, dict) and nbgrader.get("solution") is True:
            ids.add(str(nbgrader.get("grade_id")))
    return len(ids)


def read_student_file(path: Path, limit: int) -> bytes | None:
    """A file a student wrote, as ``_read_regular`` reads it; None unless it is a plain file of its own."""
    try:
        return _read_regular(path, limit)
    except OSError:
        return None


def _exchange_secret(path: Path) -> Path | None:
    """The secret if it is a plain, small file holding hex digits, as nbgrader submit writes it: the student
    wrote it, and one that is empty or garbled would stop nbgrader's release_feedback for the class."""
    data = read_student_file(path, MAX_SECRET_BYTES)
    return path if data is not None and SECRET.fullmatch(data.strip()) else None


def _nbgrader_timestamp(path: Path) -> tuple[dt.datetime | None, str]:
    """nbgrader's timestamp.txt, parsed by nbgrader's own rule; (None, a note) if it is not one."""
    from nbgrader.utils import parse_utc

    data = read_student_file(path, 200)
    if data is None:
        return None, ""
    try:
        text = data[:200].decode("utf-8").strip()
    except UnicodeDecodeError:
        text = ""
    if not NBGRADER_TIME.fullmatch(text):
        return None, "timestamp.txt does not hold a time as nbgrader writes it: no submission time was recorded"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return parse_utc(text), ""
    except Exception:  # noqa: BLE001 - a malformed time must cost its student a note, never the class run
        return None, "timestamp.txt could not be read as a time: no submission time was recorded"


def _extract(archive: Path, folder: Path) -> None:
    """Extract ``archive`` into ``folder``, refusing members that would land outside it, links, and bombs."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            if len(members) > MAX_ZIP_MEMBERS or sum(m.file_size for m in members) > MAX_ZIP_BYTES:
                raise UnreadableIntake(f"{archive.name} holds more than any class's notebooks would")
            root = folder.resolve()
            written = set()
            for member in members:
                target = (folder / member.filename).resolve()
                # A name that climbs (x/../y) could land on another member's file, even inside the folder.
                climbs = ".." in member.filename.replace("\\", "/").split("/")
                link = (member.external_attr >> 16) & 0o170000 == 0o120000
                if member.is_dir() or climbs or link or not target.is_relative_to(root) or target in written:
                    continue  # folders are made as needed; escapes, links and second copies are never written
                written.add(target)
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with bundle.open(member) as source, target.open("wb") as out:
                        shutil.copyfileobj(source, out)
                except (OSError, zipfile.BadZipFile):
                    continue  # one member that cannot be written (a name clash, a damaged entry) costs only itself
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise UnreadableIntake(f"{archive.name} cannot be read as a zip ({error})") from None
    _unwrap(folder)


def _unwrap(folder: Path) -> None:
    """An LMS zip often holds one top-level folder: read what is inside it."""
    entries = [path for path in folder.iterdir() if path.name not in JUNK]
    if len(entries) == 1 and entries[0].is_dir() and not MOODLE_FOLDER.fullmatch(entries[0].name):
        inner = entries[0]
        holding = Path(tempfile.mkdtemp(dir=folder.parent))
        inner.rename(holding / "inner")
        shutil.rmtree(folder)
        (holding / "inner").rename(folder)
        shutil.rmtree(holding)


@dataclass(frozen=True)
class Shard:
    """Slice ``index`` (1-based) of ``count``: the students whose id hashes to it.

    The id's hash, not its place in the class, decides: adding or removing a
    student never moves anyone else to another shard.
    """

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """ "2/3" -> Shard(2, 3); ValueError with a message for anything else."""
        match = re.fullmatch(r"(\d{1,4})/(\d{1,4})", text.strip())
        if not match or not 1 <= int(match[1]) <= int(match[2]):
            raise ValueError(f"{text!r} is not a shard: write i/n with 1 <= i <= n, e.g. 2/3")
        return cls(int(match[1]), int(match[2]))

    def holds(self, student: str) -> bool:
        digest = hashlib.sha256(student.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1
