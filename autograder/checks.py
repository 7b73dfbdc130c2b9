"""Checks that the assignment is well formed, run at every release and in CI.

Each check returns a list of problems (empty when all is well), so that a
release can report every problem at once instead of stopping at the first.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .notebook_regions import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    END_HIDDEN,
    END_SOLUTION,
    UnbalancedMarkers,
    outside_regions,
    region_lines,
    regions,
)


@dataclass
class CheckResult:
    name: str
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def nbgrader_meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def check_cell_metadata(source_nb) -> CheckResult:
    """Solution cells hold a solution region; grade_ids are unique; nbgrader accepts the metadata."""
    from nbgrader.preprocessors import CheckCellMetadata

    result = CheckResult("cell metadata")
    ids = [nbgrader_meta(cell).get("grade_id") for cell in source_nb.cells if nbgrader_meta(cell)]
    for grade_id, count in Counter(ids).items():
        if count > 1:
            result.problems.append(f"grade_id {grade_id!r} is used by {count} cells")
    for cell in source_nb.cells:
        meta = nbgrader_meta(cell)
        try:
            for begin, end in ((BEGIN_SOLUTION, END_SOLUTION), (BEGIN_HIDDEN, END_HIDDEN)):
                regions(cell.source, begin, end)
        except UnbalancedMarkers as error:
            result.problems.append(f"cell {meta.get('grade_id')!r}: {error}")
            continue
        if meta.get("solution") and not regions(cell.source, BEGIN_SOLUTION, END_SOLUTION):
            result.problems.append(f"solution cell {meta.get('grade_id')!r} has no {BEGIN_SOLUTION} region")
        if meta.get("grade") and not meta.get("solution") and not meta.get("locked"):
            result.problems.append(f"test cell {meta.get('grade_id')!r} is not locked")
    try:
        CheckCellMetadata().preprocess(nbformat.from_dict(source_nb), {})
    except Exception as error:  # nbgrader raises its own ValidationError
        result.problems.append(f"nbgrader rejects the metadata: {error}")
    return result


def check_no_leaks(source_nb, release_nb) -> CheckResult:
    """The release holds no line of a solution or hidden-test region.

    A line that also stands outside every region of the source (a `return
    out` in given code) is not a leak and is not counted.
    """
    result = CheckResult("no solution or hidden test in the release")
    released = {line.strip() for cell in release_nb.cells for line in cell.source.splitlines()}
    try:
        secret = secret_only_lines(source_nb)
    except UnbalancedMarkers as error:
        result.problems.append(f"the regions cannot be read, so leaks cannot be checked: {error}")
        return result
    for line in sorted(secret & released):
        result.problems.append(f"the release contains the hidden line {line!r}")
    markers = (BEGIN_SOLUTION, BEGIN_HIDDEN)
    if any(marker in cell.source for cell in release_nb.cells for marker in markers):
        result.problems.append("the release still contains region markers")
    return result


def secret_only_lines(source_nb, *, hidden_only: bool = False) -> set[str]:
    """Stripped lines of the solution and hidden-test regions (or hidden tests only) that stand
    nowhere else in the notebook: the lines whose appearance anywhere public is a leak."""
    secret, public = set(), set()
    for cell in source_nb.cells:
        if not hidden_only:
            secret |= region_lines(cell.source, BEGIN_SOLUTION, END_SOLUTION)
        secret |= region_lines(cell.source, BEGIN_HIDDEN, END_HIDDEN)
        public |= {line.strip() for line in outside_regions(cell.source)}
    return secret - public


def check_clean(notebook, label: str) -> CheckResult:
    """Valid nbformat, and no outputs or execution counts saved in the file."""
    result = CheckResult(f"{label} is valid and carries no outputs")
    try:
        nbformat.validate(notebook)
    except nbformat.ValidationError as error:
        result.problems.append(f"{label} fails nbformat validation: {error.message}")
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            result.problems.append(f"{label} cell {index} carries outputs or an execution count")
    return result


def static_checks(source_path: Path, release_path: Path) -> list[CheckResult]:
    """The checks that need no execution: they take well under a second."""
    source_nb = nbformat.read(source_path, as_version=4)
    release_nb = nbformat.read(release_path, as_version=4)
    return [
        check_cell_metadata(source_nb),
        check_no_leaks(source_nb, release_nb),
        check_clean(source_nb, "the instructor notebook"),
        check_clean(release_nb, "the release"),
    ]
