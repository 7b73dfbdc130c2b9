"""A class graded in slices (``grade-class --shard I/N``, e.g. one per CI job), and the slices merged into one.

Each shard run leaves, beside its outputs, ``reports/05_autograd/shard.json``:
which slice it was, a hash of the whole intake it was cut from, a hash of the
assignment it graded against, and the students it holds.  It is written last,
so a shard that did not finish has none.

``merge_shards`` takes the folders the shard runs left (each shaped like a
course root: ``reports/05_autograd/`` and ``autograded/``) and, only if they
are exactly slices 1..N of one split of one intake, graded against this
course's assignment, records every student into this course's gradebook and
copies their records, feedback and autograded notebooks here; then it writes
the class outputs (grades.csv, junit.xml, the report) for the whole class.
Anything else (a missing, repeated or unfinished shard; shards of different
intakes, splits or assignments; a student in two shards) is refused before
anything is written, with a message saying which folder is wrong.

A merged student's results.json is the shard's, byte for byte, and their
gradebook rows are rebuilt from it through the same ``record_scores`` a class
run uses, so a merged class equals the class graded in one run on the same seed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .assignment import load_assignment
from .class_outputs import write_class_outputs
from .course import ASSIGNMENT, assignment_fingerprint, outputs_folder, source_notebook, students_folder
from .gradebook import RECORD_FILE, ensure_assignment, record_path, record_scores, recorded_scores, write_atomically
from .identity import InvalidStudentId, check_student_id
from .intake import Shard
from .progress import Progress

SHARD_FILE = "shard.json"


class MergeRefused(ValueError):
    """The folders given are not one complete, consistent set of shards (a usage error: nothing was written)."""


@dataclass
class ShardOutput:
    folder: Path
    shard: Shard
    intake: str  # hash of every student id of the intake the shard was cut from
    assignment: str  # assignment_fingerprint of the course the shard was graded with
    students: list[str]

    @property
    def name(self) -> str:
        return f"{self.shard.index}/{self.shard.count} ({self.folder})"


@dataclass
class Merged:
    shards: list[ShardOutput]
    students: list[str] = field(default_factory=list)
    seconds: float = 0.0


def intake_hash(students: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(students)).encode("utf-8")).hexdigest()


def write_manifest(root: Path, shard: Shard, intake_students: list[str], students: list[str]) -> Path:
    """Record that this root holds slice ``shard`` of the intake: the last thing a shard run writes."""
    path = outputs_folder(root) / SHARD_FILE
    write_atomically(path, json.dumps({
        "shard": f"{shard.index}/{shard.count}",
        "intake": intake_hash(intake_students),
        "assignment": assignment_fingerprint(root),
        "students": sorted(students),
    }, indent=2))
    return path


def read_shard(folder: Path) -> ShardOutput:
    path = outputs_folder(folder) / SHARD_FILE
    if not folder.is_dir():
        raise MergeRefused(f"{folder} is not a folder")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        shard = Shard.parse(data["shard"])
        students = [check_student_id(student) for student in data["students"]]
        return ShardOutput(folder, shard, str(data["intake"]), str(data["assignment"]), students)
    except FileNotFoundError:
        raise MergeRefused(f"{folder} holds no {path.relative_to(folder)}: it is not the output of a finished "
                           "grade-class --shard run (run that shard again)") from None
    except (OSError, ValueError, KeyError, TypeError, InvalidStudentId) as error:
        raise MergeRefused(f"{path} cannot be read ({error}): run that shard again") from None


def check_complete(shards: list[ShardOutput], assignment: str) -> None:
    """Refuse, naming the culprit, unless ``shards`` are exactly slices 1..N of one split of one intake."""
    if not shards:
        raise MergeRefused("no shard folders given")
    first = shards[0]
    for other in shards[1:]:
        if other.shard.count != first.shard.count:
            raise MergeRefused(f"shards of different splits: {first.name} and {other.name}")
        if other.intake != first.intake:
            raise MergeRefused(f"shards cut from different intakes (the submissions changed between the runs): "
                               f"{first.name} and {other.name}; grade every shard of the same submissions again")
    for shard in shards:
        if shard.assignment != assignment:
            raise MergeRefused(f"shard {shard.name} was graded against another version of source/ or tinytorch/ "
                               "than this course's: merge in a checkout of the commit the shards graded")
    seen: dict[int, ShardOutput] = {}
    for shard in shards:
        if shard.shard.index in seen:
            raise MergeRefused(f"shard {shard.shard.index}/{shard.shard.count} given twice: "
                               f"{seen[shard.shard.index].folder} and {shard.folder}")
        seen[shard.shard.index] = shard
    missing = [str(index) for index in range(1, first.shard.count + 1) if index not in seen]
    if missing:
        raise MergeRefused(f"shard(s) {', '.join(missing)} of {first.shard.count} missing: a merge needs every "
                           "shard of the split (an empty shard's run still leaves its shard.json)")
    owner: dict[str, ShardOutput] = {}
    for shard in shards:
        for student in shard.students:
            if student in owner:
                raise MergeRefused(f"{student} is in two shards: {owner[student].name} and {shard.name}")
            if not shard.shard.holds(student):
                raise MergeRefused(f"{student} is not in slice {shard.name} of the split")
            owner[student] = shard


def merge_shards(root: Path, folders: list[Path], *, show_progress: bool = False) -> Merged:
    started = time.perf_counter()
    shards = [read_shard(folder) for folder in folders]
    check_complete(shards, assignment_fingerprint(root))
    tests = {test.grade_id for test in load_assignment(source_notebook(root)).tests}
    # Read and check every record before writing anything: a refused merge changes nothing.
    records = [(shard, student, _read_record(shard, student, tests)) for shard in shards for student in shard.students]
    merged = Merged(shards)
    ensure_assignment(root)
    progress = Progress(len(records), "merging") if show_progress else None
    for shard, student, (text, data) in records:
        submitted_at = data["instructor"].get("submitted_at")
        record_scores(root, student, recorded_scores(data),
                      dt.datetime.fromisoformat(submitted_at) if submitted_at else None)
        _copy_folder(students_folder(shard.folder) / student, students_folder(root) / student)
        _copy_folder(shard.folder / "autograded" / student / ASSIGNMENT, root / "autograded" / student / ASSIGNMENT)
        write_atomically(record_path(root, student), text)  # last: it marks the student as recorded
        merged.students.append(student)
        if progress:
            progress.advance()
    if progress:
        progress.close()
    write_class_outputs(root)
    merged.seconds = time.perf_counter() - started
    return merged


def _read_record(shard: ShardOutput, student: str, tests: set[str]) -> tuple[str, dict]:
    path = record_path(shard.folder, student)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
        scores = recorded_scores(data)
        if not isinstance(data.get("instructor"), dict):
            raise ValueError("no instructor section")
    except FileNotFoundError:
        raise MergeRefused(f"shard {shard.name} lists {student} but holds no {path}: run that shard again") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise MergeRefused(f"{path} cannot be read ({error}): run that shard again") from None
    if set(scores) != tests:
        raise MergeRefused(f"{path} does not score this assignment's tests: run that shard again")
    return text, data


def _copy_folder(source: Path, destination: Path) -> None:
    """Replace ``destination`` with a copy of ``source`` (nothing if the shard has no such folder)."""
    if not source.is_dir():
        return
    if destination.exists():
        shutil.rmtree(destination)
    # results.json is written apart, last and whole (see merge_shards).
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns(RECORD_FILE))
