"""A class graded in n = 1, 2, 3 shards and merged equals the class graded in one run on the same seed."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from autograder import sandbox
from autograder.classroom import grade_class
from autograder.cli import main
from autograder.course import ASSIGNMENT, copy_course, nbgrader, outputs_folder, students_folder
from autograder.gradebook import ensure_assignment
from autograder.variants import instructor_notebook, load_variants, variant_notebook

pytestmark = [pytest.mark.sandbox, pytest.mark.nbgrader]

ROOT = Path(__file__).resolve().parents[1]
UNSANDBOXED = sandbox.detect_isolation().level == "none"
SEED = 11
SUBMITTED_AT = dt.datetime(2026, 11, 30, 9, 15, 0)


def _submit(submitted: Path, student: str, notebook) -> None:
    folder = submitted / student / ASSIGNMENT
    folder.mkdir(parents=True)
    if notebook is not None:
        nbformat.write(notebook, folder / "05_autograd.ipynb")
        (folder / "timestamp.txt").write_text(SUBMITTED_AT.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    """A class of seven, in nbgrader's submitted/ layout, and a course whose gradebook holds the assignment."""
    base = tmp_path_factory.mktemp("shards")
    template = copy_course(ROOT, base / "template")
    ensure_assignment(template)  # once: every course below starts from a copy of this gradebook
    variants = {variant.name: variant for variant in load_variants(ROOT / "corpus" / "validity.py")}
    submitted = base / "submitted"
    _submit(submitted, "ann", instructor_notebook(root=ROOT))
    _submit(submitted, "ben", instructor_notebook(root=ROOT))
    _submit(submitted, "cat", variant_notebook(variants["backward_propagates_first_arrival"], root=ROOT))
    _submit(submitted, "dan", variant_notebook(variants["mul_no_unbroadcast"], root=ROOT))
    _submit(submitted, "eve", nbformat.read(ROOT / "release" / ASSIGNMENT / "05_autograd.ipynb", as_version=4))
    _submit(submitted, "fay", None)  # a folder without a notebook: recorded as missing
    (submitted / "gus" / ASSIGNMENT).mkdir(parents=True)
    (submitted / "gus" / ASSIGNMENT / "05_autograd.ipynb").write_text('{"cells": [')
    whole = _course(template, base / "whole")
    grade_class(whole, source=submitted, workers=1, base_seed=SEED, allow_unsandboxed=UNSANDBOXED,
                show_progress=False)
    return template, submitted, whole


def _course(template: Path, destination: Path) -> Path:
    shutil.copytree(template, destination)
    return destination


def _comparable(course: Path) -> dict:
    """What a class run decides: the class CSV and every record, less the time each grading took."""
    records = {}
    for path in sorted(students_folder(course).glob("*/results.json")):
        data = json.loads(path.read_text())
        data.pop("execution_time")
        records[path.parent.name] = data
    return {"grades.csv": (outputs_folder(course) / "grades.csv").read_text(), "records": records}


@pytest.fixture(scope="module")
def merged(classroom, tmp_path_factory):
    """count -> the course the shards of a count-way split were merged into, all through the command line."""
    template, submitted, _ = classroom
    unsafe = ["--unsafe-no-sandbox"] if UNSANDBOXED else []
    classes = {}
    for count in (1, 2, 3):
        base = tmp_path_factory.mktemp(f"split-{count}")
        shards = []
        for index in range(1, count + 1):
            shard = _course(template, base / f"shard-{index}")
            assert main(["--root", str(shard), "grade-class", str(submitted), "--shard", f"{index}/{count}",
                         "--workers", "1", "--seed", str(SEED), *unsafe]) == 0
            shards.append(shard)
        course = _course(template, base / "merged")
        assert main(["--root", str(course), "merge", *map(str, shards)]) == 0
        classes[count] = course
    return classes


@pytest.mark.parametrize("count", [1, 2, 3])
def test_a_class_graded_in_shards_and_merged_equals_the_class_graded_at_once(classroom, merged, count):
    _, _, whole = classroom
    course = merged[count]
    expected = _comparable(whole)
    assert {s: (r["status"], r["score"]) for s, r in expected["records"].items()} == {
        "ann": ("graded", 100), "ben": ("graded", 100), "cat": ("graded", 68), "dan": ("graded", 90),
        "eve": ("graded", 0), "fay": ("missing", 0), "gus": ("invalid_notebook", 0)}
    assert _comparable(course) == expected
    for student in ("ann", "cat", "eve"):
        assert (course / "autograded" / student / ASSIGNMENT / "05_autograd.ipynb").is_file()
        assert (students_folder(course) / student / "feedback.html").is_file()
    assert (outputs_folder(course) / "report.html").is_file()


def test_nbgrader_export_of_a_merged_class_equals_the_one_graded_at_once(classroom, merged, tmp_path):
    _, _, whole = classroom
    exported = {}
    for name, course in (("whole", whole), ("merged", merged[2])):
        nbgrader("export", "--to", str(tmp_path / f"{name}.csv"), root=course)
        # nbgrader lists students in the order the database returns them: the rows, not their order, must match.
        exported[name] = sorted((tmp_path / f"{name}.csv").read_text().splitlines())
    assert exported["merged"] == exported["whole"]
    assert len(exported["merged"]) == 1 + 7 and any("2026-11-30 09:15:00" in row for row in exported["merged"])
