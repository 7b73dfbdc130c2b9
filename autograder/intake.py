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
  student id is ``lastfirst``), Moodle (a folder per student,
  ``<Full Name>_<participant id>_assignsubmission_file_/``: the id is the
  participant id) and nbgrader's ``zip_collect`` default
  (``<prefix>_<student id>_attempt_<YYYY-MM-DD-HH-MM-SS>_<file>.ipynb``, the
  attempt time being the submission time).

Every id must pass ``identity.student_id_problem``: a name that does not is
listed as skipped, never cleaned up into someone else's id.  A student with
several notebooks is graded on the one holding the most of this assignment's
exercise cells (the newest among equals); the others are named in a note.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .course import ASSIGNMENT
from .identity import student_id_problem

# A zip bigger than any class's notebooks would need, or with more members, is refused unread.
MAX_ZIP_BYTES = 2 * 1024**3
MAX_ZIP_MEMBERS = 20_000

# The LMS writes the student's id; the student chooses only the uploaded file's name (<file>) or,
# on Moodle, their display name.  Each pattern takes the id from the part the LMS wrote, so a file
# named to look like another student's entry cannot move the match onto that student: Canvas and
# zip_collect read from the start (zip_collect's prefix is lazy), Moodle from the end (its name greedy).
CANVAS = re.compile(r"(?P<student>[a-z]+)_(?:LATE_)?(?P<userid>\d+)_(?P<submission>\d+)_(?P<file>.+\.ipynb)")
MOODLE_FOLDER = re.compile(r"(?P<name>.+)_(?P<student>\d+)_assignsubmission_file_?")
ZIP_COLLECT = re.compile(
    r".*?_(?P<student>[^_]+)_attempt_(?P<time>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})_(?P<file>.+\.ipynb)")


@dataclass
class Submission:
    student: str
    path: Path | None  # the notebook to grade; None: the student's folder holds none
    timestamp: dt.datetime | None = None  # when it was submitted, if the layout says (UTC)
    notes: list[str] = field(default_factory=list)


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
    if (source / "submitted").is_dir() and not any(source.glob("*.ipynb")):
        source = source / "submitted"
    return _read_folder(source)


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


def _notebooks(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_file() and path.suffix == ".ipynb"
                  and path.name not in JUNK and not path.name.startswith("._"))


def _subfolders(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_dir() and path.name not in JUNK)


def _nbgrader(folder: Path):
    students = [sub for sub in _subfolders(folder) if (sub / ASSIGNMENT).is_dir() or _notebooks(sub)]
    if not students or _notebooks(folder):
        return None
    submissions, skipped = [], []
    for student_folder in students:
        problem = student_id_problem(student_folder.name)
        if problem:
            skipped.append(Skipped(ascii(student_folder.name)[:200], problem))
            continue
        assignment_folder = student_folder / ASSIGNMENT
        candidates = _notebooks(assignment_folder) if assignment_folder.is_dir() else []
        candidates = candidates or _notebooks(student_folder)
        timestamp = _nbgrader_timestamp(assignment_folder / "timestamp.txt")
        submissions.append(_choose(student_folder.name, candidates, timestamp))
    return submissions, skipped


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
    return submissions, skipped


def _canvas(folder: Path):
    matches = [(path, CANVAS.fullmatch(path.name)) for path in _notebooks(folder)]
    if not matches or not all(match for _, match in matches):
        return None
    return _group(folder, [(match["student"], path, None) for path, match in matches])


def _zip_collect(folder: Path):
    matches = [(path, ZIP_COLLECT.fullmatch(path.name)) for path in _notebooks(folder)]
    if not matches or not all(match for _, match in matches):
        return None
    entries = [(match["student"], path,
                dt.datetime.strptime(match["time"], "%Y-%m-%d-%H-%M-%S").replace(tzinfo=dt.timezone.utc))
               for path, match in matches]
    return _group(folder, entries)


def _moodle(folder: Path):
    matches = [(sub, MOODLE_FOLDER.fullmatch(sub.name)) for sub in _subfolders(folder)]
    if not matches or not all(match for _, match in matches):
        return None
    return _group(folder, [(match["student"], path, None) for sub, match in matches for path in _notebooks(sub)])


def _group(folder: Path, entries: list[tuple[str, Path, dt.datetime | None]]):
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
        latest = max((t for _, t in found if t is not None), default=None)
        submissions.append(_choose(student, [path for path, _ in found], latest))
    return submissions, skipped


def _choose(student: str, candidates: list[Path], timestamp: dt.datetime | None) -> Submission:
    """The student's notebook: the one with the most of this assignment's exercise cells, then the newest."""
    if not candidates:
        return Submission(student, None, timestamp)
    if len(candidates) == 1:
        return Submission(student, candidates[0], timestamp)
    ranked = sorted(candidates, key=lambda path: (_exercise_cells(path), path.stat().st_mtime), reverse=True)
    others = ", ".join(ascii(path.name) for path in ranked[1:])
    return Submission(student, ranked[0], timestamp,
                      [f"several notebooks were submitted; graded {ascii(ranked[0].name)}, not {others}"])


def _exercise_cells(path: Path) -> int:
    """How many of the assignment's exercise cells (nbgrader solution cells) the notebook holds."""
    from .submission import MAX_NOTEBOOK_BYTES

    try:
        if path.stat().st_size > MAX_NOTEBOOK_BYTES:
            return 0
        cells = json.loads(path.read_bytes()).get("cells", [])
        return sum(1 for cell in cells if isinstance(cell, dict)
                   and (cell.get("metadata") or {}).get("nbgrader", {}).get("solution") is True)
    except (OSError, ValueError, AttributeError, RecursionError):
        return 0


def _nbgrader_timestamp(path: Path) -> dt.datetime | None:
    """nbgrader's timestamp.txt, parsed by nbgrader's own rule; None if absent or unreadable."""
    from nbgrader.utils import parse_utc

    try:
        text = path.read_text(encoding="utf-8").strip()
        return parse_utc(text) if text else None
    except (OSError, ValueError, OverflowError, UnicodeDecodeError):
        return None


def _extract(archive: Path, folder: Path) -> None:
    """Extract ``archive`` into ``folder``, refusing members that would land outside it, links, and bombs."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            if len(members) > MAX_ZIP_MEMBERS or sum(m.file_size for m in members) > MAX_ZIP_BYTES:
                raise UnreadableIntake(f"{archive.name} holds more than any class's notebooks would")
            root = folder.resolve()
            for member in members:
                target = (folder / member.filename).resolve()
                if member.is_dir() or not target.is_relative_to(root) or (member.external_attr >> 16) & 0o170000 == 0o120000:
                    continue  # folders are made as needed; escapes and symlinks are never written
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
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
