"""Reading a submitted notebook defensively, and taking only the student's solution cells from it.

A submission can be anything: not JSON, truncated, empty, huge, in another
encoding, an old nbformat, another assignment's notebook, or a notebook whose
cells were deleted, duplicated or retyped.  Each case ends in a status and a
message a student can act on, never in an exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .assignment import Assignment, EngineCell
from .notebook_regions import BEGIN_SOLUTION, END_SOLUTION
from .results import Status

MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
# Parsed, every JSON object or list costs about 60 bytes of the grader's memory:
# a 20 MB file of "[{},{},..." would take half a gigabyte.  Real notebooks have
# far fewer (their bulk is text); the count includes brackets inside strings.
MAX_JSON_CONTAINERS = 1_000_000
# Cells a student adds each cost a round trip to the engine and maybe a note:
# a notebook of half a million tiny cells must not cost minutes.
MAX_ADDED_CELLS = 100


@dataclass(frozen=True)
class AddedCell:
    """A code cell the student added (no nbgrader metadata): it runs where it stands, as in Jupyter."""

    number: int  # its position in the notebook, counting from 1, as the student sees it
    after: str | None  # the id of the nearest assignment cell above it; None at the top
    source: str


@dataclass
class ReadSubmission:
    status: Status | None  # None when the notebook was read; else why grading cannot go on
    message: str
    solutions: dict[str, str] = field(default_factory=dict)  # solution grade_id -> the student's cell source
    notes: list[str] = field(default_factory=list)  # things the student should know, e.g. a missing cell
    added: list[AddedCell] = field(default_factory=list)


def read_submission(path: Path, assignment: Assignment) -> ReadSubmission:
    """Load ``path`` and pick the student's solution cells, or say why that is not possible."""
    if not path.is_file():
        return ReadSubmission(Status.MISSING, f"no submission found at {path.name}: submit the notebook file")
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        return ReadSubmission(
            Status.INVALID_NOTEBOOK,
            f"the notebook is {size / 1e6:.0f} MB, over the {MAX_NOTEBOOK_BYTES / 1e6:.0f} MB limit: "
            "clear all outputs (Kernel > Restart Kernel and Clear Outputs), save, and submit again",
        )
    notebook, problem = parse_notebook(path.read_bytes())
    if problem:
        return ReadSubmission(Status.INVALID_NOTEBOOK, problem)
    return _solutions(notebook, assignment)


def parse_notebook(raw: bytes):
    """``(notebook, "")`` for bytes that hold a notebook this grader can use, else ``(None, why not)``."""
    if not raw.strip():
        return None, "the file is empty: save the notebook in Jupyter and submit it again"
    if raw.count(b"{") + raw.count(b"[") > MAX_JSON_CONTAINERS:
        return None, ("the file holds more JSON structure than any notebook needs: clear all outputs "
                      "(Kernel > Restart Kernel and Clear Outputs), save, and submit again")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "the file is not UTF-8 text, so it is not a Jupyter notebook: submit the .ipynb file"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        return None, (f"the file is not valid notebook JSON (line {error.lineno}: {error.msg}); "
                      "it may be truncated: download it again from Jupyter and resubmit")
    except (ValueError, RecursionError):
        # Numbers too long to convert, or nesting deeper than any notebook has.
        return None, "the file is JSON no Jupyter notebook would contain: submit the .ipynb file Jupyter saved"
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        return None, "the file is JSON but not a Jupyter notebook: submit the .ipynb file"
    if data.get("nbformat") != 4:
        return None, (f"the notebook is in format version {data.get('nbformat')}, not 4: open it in a "
                      "current Jupyter and save it, then submit again")
    if not isinstance(data.get("cells"), list):
        return None, "the notebook has no list of cells: save it again in Jupyter and resubmit"
    for number, cell in enumerate(data["cells"], start=1):
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str) \
                or _source_text(cell.get("source")) is None:
            return None, (f"cell {number} of the notebook is damaged (it has no cell type or no source text): "
                          "open the notebook in Jupyter, save it, and submit again")
        if not _encodable(_source_text(cell["source"])):
            # JSON's \ud800 escapes can spell text no file can hold (lone surrogates); Jupyter never
            # writes them, and the notebooks written from a submission could not hold them either.
            return None, (f"cell {number} holds characters that are not valid Unicode text: "
                          "open the notebook in Jupyter, save it, and submit again")
    # Cells' types and sources are checked above and their metadata as it is
    # read, so nbformat's schema validation is not needed (and not imported: it is slow).
    return data, None


def _solutions(notebook, assignment: Assignment) -> ReadSubmission:
    wanted = set(assignment.solution_ids)
    known = set(assignment.cell_order)
    found: dict[str, str] = {}
    notes: list[str] = []
    added: list[AddedCell] = []
    after: str | None = None
    for number, cell in enumerate(notebook["cells"], start=1):
        grade_id = _grade_id(cell)
        if grade_id in known:
            after = grade_id
        elif grade_id is None and cell["cell_type"] == "code" and _source_text(cell["source"]).strip():
            added.append(AddedCell(number, after, _source_text(cell["source"])))
        if grade_id not in wanted:
            continue
        if cell.get("cell_type") != "code":
            _note_once(notes, f"cell {grade_id} was changed into a non-code cell: graded as not attempted")
            continue
        if grade_id in found:
            _note_once(notes, f"cell {grade_id} appears more than once: the first copy was graded")
            continue
        found[grade_id] = _source_text(cell["source"])
    if not found:
        return ReadSubmission(
            Status.WRONG_ASSIGNMENT,
            "this notebook has none of this assignment's exercise cells (" + ", ".join(sorted(wanted))
            + "): is it the right notebook? Submit the notebook from release/05_autograd",
        )
    for grade_id in assignment.solution_ids:
        if grade_id not in found and not any(f"cell {grade_id} " in note for note in notes):
            notes.append(f"cell {grade_id} is missing from the notebook: graded as not attempted")
    if len(added) > MAX_ADDED_CELLS:
        notes.append(f"you added {len(added)} code cells; only the first {MAX_ADDED_CELLS} were run")
        added = added[:MAX_ADDED_CELLS]
    return ReadSubmission(None, "", found, notes, added)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _grade_id(cell) -> str | None:
    """The cell's nbgrader grade_id if the cell is shaped as nbgrader writes it, else None."""
    if not isinstance(cell, dict):
        return None
    metadata = cell.get("metadata")
    nbgrader = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    grade_id = nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None
    return grade_id if isinstance(grade_id, str) else None


def _source_text(source) -> str | None:
    """A cell's source as one string; None if it is not a string or a list of strings."""
    if isinstance(source, str):
        return source
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        return "".join(source)
    return None


def _note_once(notes: list[str], note: str) -> None:
    # A notebook with thousands of copies of a cell gets one note, not thousands.
    if note not in notes:
        notes.append(note)


def blank_solution(cell: EngineCell) -> str:
    """The instructor's cell with its solution regions replaced by the release's stub."""
    lines, inside = [], False
    for line in cell.source.splitlines():
        stripped = line.strip()
        if stripped == BEGIN_SOLUTION:
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            lines.append(indent + "raise NotImplementedError()")
        elif stripped == END_SOLUTION:
            inside = False
        elif not inside:
            lines.append(line)
    return "\n".join(lines)
