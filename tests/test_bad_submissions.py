"""Bad input: every broken submission gets a recorded status, a clear message and a zero, and `grade` exits 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.assignment import load_assignment
from autograder.course import release_notebook, source_notebook
from autograder.grader import grade_submission
from autograder.submission import MAX_NOTEBOOK_BYTES, read_submission

pytestmark = [pytest.mark.sandbox]

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = load_assignment(source_notebook(ROOT))
RELEASE_TEXT = release_notebook(ROOT).read_text(encoding="utf-8")


def _nbformat3_text() -> str:
    return json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {},
                       "worksheets": [{"cells": [{"cell_type": "code", "input": "1", "outputs": []}]}]})


def _other_assignment_text() -> str:
    other = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    other.cells[0].metadata["nbgrader"] = {"grade_id": "answer", "solution": True, "grade": False,
                                           "locked": False, "schema_version": 3, "task": False}
    return nbformat.writes(other)


def _release_with(change) -> str:
    """The release notebook as JSON text, after ``change`` edits its exercise_add cell (a dict)."""
    data = json.loads(RELEASE_TEXT)
    cell = next(c for c in data["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "exercise_add")
    change(cell)
    return json.dumps(data)


BAD_FILES = {
    # name: (bytes of the file, status, a phrase the message must contain)
    "not_json": (b"print('hello')\n", "invalid_notebook", "not valid notebook JSON"),
    "truncated_json": (RELEASE_TEXT[: len(RELEASE_TEXT) // 3].encode(), "invalid_notebook", "truncated"),
    "empty_file": (b"", "invalid_notebook", "empty"),
    "nbformat_3": (_nbformat3_text().encode(), "invalid_notebook", "format version 3"),
    "other_assignment": (_other_assignment_text().encode(), "wrong_assignment", "right notebook"),
    "binary_garbage": (bytes(range(256)) * 64, "invalid_notebook", "not UTF-8"),
    "latin1_text": ("{\"cells\": [], \"note\": \"caf\u00e9\"}".encode("latin-1"), "invalid_notebook", "not UTF-8"),
    "json_but_not_notebook": (b"[1, 2, 3]", "invalid_notebook", "not a Jupyter notebook"),
    "deeply_nested_json": (b"[" * 100_000, "invalid_notebook", "JSON"),
    "huge_integer": (b'{"cells": [], "nbformat": ' + b"9" * 5000 + b"}", "invalid_notebook", "JSON"),
}

# Notebooks that parse but whose exercise_add cell is malformed: graded, that cell as not attempted.
MALFORMED_CELLS = {
    "metadata_is_a_string": lambda cell: cell.update(metadata="x"),
    "metadata_is_null": lambda cell: cell.update(metadata=None),
    "grade_id_is_a_list": lambda cell: cell["metadata"]["nbgrader"].update(grade_id=["exercise_add"]),
}


# Cells that no Jupyter writes (the schema requires a type and a source of text): a damaged file.
DAMAGED_CELLS = {
    "source_is_a_list_of_numbers": lambda cell: cell.update(source=[1, 2]),
    "source_is_missing": lambda cell: cell.pop("source"),
    "source_is_a_number": lambda cell: cell.update(source=0),
    "cell_type_is_missing": lambda cell: cell.pop("cell_type"),
}


@pytest.mark.parametrize("name", sorted(DAMAGED_CELLS))
def test_a_damaged_cell_makes_an_invalid_notebook(tmp_path, name):
    path = tmp_path / "damaged.ipynb"
    path.write_text(_release_with(DAMAGED_CELLS[name]), encoding="utf-8")
    read = read_submission(path, ASSIGNMENT)
    assert read.status == "invalid_notebook"
    assert "is damaged" in read.message and "save it, and submit again" in read.message


@pytest.mark.parametrize("name", sorted(MALFORMED_CELLS))
def test_malformed_cell_is_graded_as_not_attempted(tmp_path, name):
    path = tmp_path / "malformed.ipynb"
    path.write_text(_release_with(MALFORMED_CELLS[name]), encoding="utf-8")
    read = read_submission(path, ASSIGNMENT)
    assert read.status is None
    assert "exercise_add" not in read.solutions and "exercise_backward" in read.solutions
    assert any("exercise_add" in note for note in read.notes)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_gets_status_message_and_zero(tmp_path, name):
    content, status, phrase = BAD_FILES[name]
    path = tmp_path / f"{name}.ipynb"
    path.write_bytes(content)
    result = grade_submission(path, root=ROOT, allow_unsandboxed=True, base_seed=1)
    assert result.status == status
    assert phrase in result.message
    assert result.score == 0
    assert len(result.tests) == len(ASSIGNMENT.tests)
    assert all(test.score == 0 and test.status == "failed" for test in result.tests)


def test_missing_notebook(tmp_path):
    result = grade_submission(tmp_path / "nowhere.ipynb", root=ROOT, allow_unsandboxed=True, base_seed=1)
    assert (result.status, result.score) == ("missing", 0)
    assert "no submission found" in result.message


def test_fifty_megabyte_notebook_is_refused_with_advice(tmp_path):
    notebook = nbformat.reads(RELEASE_TEXT, as_version=4)
    notebook.metadata["padding"] = "x" * (50 * 1024 * 1024)
    path = tmp_path / "huge.ipynb"
    nbformat.write(notebook, path)
    assert path.stat().st_size > MAX_NOTEBOOK_BYTES
    result = grade_submission(path, root=ROOT, allow_unsandboxed=True, base_seed=1)
    assert result.status == "invalid_notebook"
    assert "clear all outputs" in result.message and result.score == 0


def test_deleted_and_retyped_solution_cells_are_graded_as_not_attempted(tmp_path):
    notebook = nbformat.reads(RELEASE_TEXT, as_version=4)
    kept = []
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id == "exercise_add":
            continue  # deleted
        if grade_id == "exercise_mul":
            cell = nbformat.v4.new_markdown_cell(cell.source, metadata=cell.metadata)
        kept.append(cell)
    notebook.cells = kept
    path = tmp_path / "edited.ipynb"
    nbformat.write(notebook, path)
    read = read_submission(path, ASSIGNMENT)
    assert read.status is None
    assert "exercise_add" not in read.solutions and "exercise_mul" not in read.solutions
    assert any("exercise_add is missing" in note for note in read.notes)
    assert any("exercise_mul was changed into a non-code cell" in note for note in read.notes)


def test_duplicated_solution_cell_grades_the_first_copy(tmp_path):
    notebook = nbformat.reads(RELEASE_TEXT, as_version=4)
    index = next(i for i, c in enumerate(notebook.cells)
                 if c.metadata.get("nbgrader", {}).get("grade_id") == "exercise_add")
    copy = nbformat.from_dict(notebook.cells[index])
    copy.source = "# a second copy\n" + copy.source
    notebook.cells.insert(index + 1, copy)
    path = tmp_path / "duplicated.ipynb"
    nbformat.write(notebook, path)
    read = read_submission(path, ASSIGNMENT)
    assert not read.solutions["exercise_add"].startswith("# a second copy")
    assert any("more than once" in note for note in read.notes)


@pytest.mark.parametrize("name", ["not_json", "binary_garbage"])
def test_grade_command_exits_zero_on_bad_input(tmp_path, name):
    path = tmp_path / "submission.ipynb"
    path.write_bytes(BAD_FILES[name][0])
    out = tmp_path / "result.json"
    run = subprocess.run([sys.executable, "-m", "autograder", "grade", str(path), "--format", "json",
                          "--out", str(out), "--unsafe-no-sandbox", "--seed", "1"],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "invalid_notebook" and result["score"] == 0
    assert all(test["score"] == 0 for test in result["tests"])


def test_a_notebook_of_many_tiny_cells_gets_one_note(tmp_path):
    from autograder.submission import MAX_ADDED_CELLS

    notebook = json.loads(release_notebook(ROOT).read_text(encoding="utf-8"))
    notebook["cells"] += [{"cell_type": "code", "source": "", "metadata": {}}] * 100_000
    notebook["cells"] += [{"cell_type": "code", "source": f"x{k} = {k}", "metadata": {}}
                          for k in range(MAX_ADDED_CELLS * 100)]
    path = tmp_path / "many.ipynb"
    path.write_text(json.dumps(notebook), encoding="utf-8")
    read = read_submission(path, ASSIGNMENT)
    assert read.status is None
    assert len(read.added) == MAX_ADDED_CELLS
    assert read.notes == [f"you added {MAX_ADDED_CELLS * 100} code cells; only the first {MAX_ADDED_CELLS} were run"]


def test_a_file_of_endless_json_structure_is_refused_before_it_is_parsed(tmp_path):
    from autograder.submission import MAX_JSON_CONTAINERS

    notebook = json.loads(RELEASE_TEXT)
    notebook["metadata"]["padding"] = [{}] * (MAX_JSON_CONTAINERS + 1)
    path = tmp_path / "structure.ipynb"
    path.write_text(json.dumps(notebook), encoding="utf-8")
    read = read_submission(path, ASSIGNMENT)
    assert read.status == "invalid_notebook" and "clear all outputs" in read.message
