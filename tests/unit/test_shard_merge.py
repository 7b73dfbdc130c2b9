"""Merging shard runs refuses anything but one complete, consistent split, and writes nothing when it refuses.

The shard folders here are made by hand (a manifest, and records where a test needs them): no grading.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autograder.cli import main
from autograder.course import copy_course, outputs_folder
from autograder.intake import Shard
from autograder.shards import MergeRefused, merge_shards, write_manifest

ROOT = Path(__file__).resolve().parents[2]
CLASS = ["ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal"]


@pytest.fixture
def course(tmp_path):
    return copy_course(ROOT, tmp_path / "course", folders=("source",))


def _slice(shard: Shard, students=CLASS) -> list[str]:
    return [student for student in students if shard.holds(student)]


def _shard_folder(course: Path, tmp_path: Path, name: str, shard: Shard, *, intake=CLASS, students=None) -> Path:
    """A folder as a shard run leaves it; its manifest is written by the shard run's own function."""
    folder = copy_course(course, tmp_path / name, folders=("source",))
    write_manifest(folder, shard, intake, _slice(shard, intake) if students is None else students)
    return folder


def _split(course: Path, tmp_path: Path, count: int) -> list[Path]:
    return [_shard_folder(course, tmp_path, f"shard-{i}", Shard(i, count)) for i in range(1, count + 1)]


def _nothing_written(course: Path) -> bool:
    return not (course / "gradebook.db").exists() and not outputs_folder(course).exists()


def _refused(course: Path, folders: list[Path]) -> str:
    with pytest.raises(MergeRefused) as refused:
        merge_shards(course, folders)
    assert _nothing_written(course)
    return str(refused.value)


def test_a_missing_shard_is_refused_and_named(course, tmp_path):
    folders = _split(course, tmp_path, 3)
    assert "shard(s) 2 of 3 missing" in _refused(course, [folders[0], folders[2]])


def test_a_shard_given_twice_is_refused(course, tmp_path):
    folders = _split(course, tmp_path, 2)
    copy = _shard_folder(course, tmp_path, "again", Shard(1, 2))
    message = _refused(course, [*folders, copy])
    assert "shard 1/2 given twice" in message and str(copy) in message


def test_shards_of_different_splits_are_refused(course, tmp_path):
    two = _split(course, tmp_path, 2)
    three = _shard_folder(course, tmp_path, "three", Shard(2, 3))
    assert "different splits" in _refused(course, [two[0], three])


def test_shards_cut_from_different_intakes_are_refused(course, tmp_path):
    first = _shard_folder(course, tmp_path, "first", Shard(1, 2))
    later = _shard_folder(course, tmp_path, "later", Shard(2, 2), intake=CLASS + ["ivy"])
    assert "different intakes" in _refused(course, [first, later])


def test_a_shard_graded_against_another_assignment_is_refused(course, tmp_path):
    folders = _split(course, tmp_path, 2)
    manifest = outputs_folder(folders[1]) / "shard.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(dict(data, assignment="0" * 64)))
    assert "another version of source/ or tinytorch/" in _refused(course, folders)


def test_a_shard_that_did_not_finish_is_refused(course, tmp_path):
    folders = _split(course, tmp_path, 2)
    (outputs_folder(folders[0]) / "shard.json").unlink()
    message = _refused(course, folders)
    assert str(folders[0]) in message and "not the output of a finished" in message


def test_a_student_in_two_shards_is_refused(course, tmp_path):
    first = _shard_folder(course, tmp_path, "first", Shard(1, 2))
    stolen = _slice(Shard(1, 2))[0]
    second = _shard_folder(course, tmp_path, "second", Shard(2, 2), students=_slice(Shard(2, 2)) + [stolen])
    assert f"{stolen} is in two shards" in _refused(course, [first, second])


def test_a_listed_student_without_a_record_is_refused_before_anything_is_written(course, tmp_path):
    folders = _split(course, tmp_path, 1)
    assert "lists ann but holds no" in _refused(course, folders)


@pytest.mark.parametrize("text", [
    '{"shard": "1/1", "students": ["eve"]',  # cut short
    '{"shard": "1/1", "intake": "x", "assignment": "y", "students": ["../eve"]}',  # not a student id
    '{"shard": "0/1", "intake": "x", "assignment": "y", "students": []}',
])
def test_a_damaged_manifest_is_refused(course, tmp_path, text):
    folders = _split(course, tmp_path, 1)
    (outputs_folder(folders[0]) / "shard.json").write_text(text)
    assert "cannot be read" in _refused(course, folders)


def test_the_merge_command_exits_2_on_a_refused_merge(course, tmp_path, capsys):
    folders = _split(course, tmp_path, 2)
    assert main(["--root", str(course), "merge", str(folders[0])]) == 2
    err = capsys.readouterr().err
    assert "shard(s) 2 of 2 missing" in err and "nothing was merged" in err
    assert main(["--root", str(course), "merge", str(tmp_path / "shard-9")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert _nothing_written(course)
