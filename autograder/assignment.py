"""The assignment as the grader sees it, read from the instructor notebook.

Everything the trusted grader needs comes from ``source/``, never from a
submission: the code cells that build the engine (given cells from the
instructor, solution cells later swapped for the student's), and the tests
with their points and scenarios.
"""

from __future__ import annotations

import ast
import functools
import json
from dataclasses import dataclass
from pathlib import Path

from .notebook_regions import BEGIN_HIDDEN, outside_regions


@dataclass(frozen=True)
class Scenario:
    name: str
    source: str  # the scenario function's definition, runnable on its own with `np` in scope
    summary: str  # its docstring: what a student reads when it fails

    def function(self):
        """The scenario as a function, compiled from the instructor's source (trusted code).

        A fresh function each time (its globals are its own), from code compiled once.
        """
        import numpy as np

        scope = {"np": np}
        exec(_compiled(self.name, self.source), scope)
        return scope[self.name]


@functools.lru_cache(maxsize=256)
def _compiled(name: str, source: str):
    return compile(source, f"<scenario {name}>", "exec")


@dataclass(frozen=True)
class TestCell:
    grade_id: str
    points: float
    hidden: bool
    title: str  # the cell's first comment line, or its grade_id
    scenarios: tuple[Scenario, ...]


@dataclass(frozen=True)
class EngineCell:
    cell_id: str  # grade_id, or the notebook cell id for cells nbgrader does not track
    source: str
    is_solution: bool


@dataclass(frozen=True)
class Assignment:
    engine_cells: tuple[EngineCell, ...]
    tests: tuple[TestCell, ...]
    # Every code cell's id in notebook order, tests and closing demos included:
    # where a cell the student added sits is known by the cell before it.
    cell_order: tuple[str, ...] = ()

    @property
    def solution_ids(self) -> tuple[str, ...]:
        return tuple(cell.cell_id for cell in self.engine_cells if cell.is_solution)

    @property
    def max_score(self) -> float:
        return sum(test.points for test in self.tests)


def load_assignment(source_path: Path) -> Assignment:
    """The assignment in the instructor notebook at ``source_path``.

    Read once per process while the file stays the same: a class run's
    workers grade many submissions against it.
    """
    stat = source_path.stat()
    return _load_assignment(str(source_path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _load_assignment(path: str, mtime_ns: int, size: int) -> Assignment:
    # Plain JSON, not nbformat: importing nbformat pulls in jsonschema's format
    # checkers, which cost about two seconds per grading process.  The
    # instructor notebook is validated by the release checks instead.
    notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    code_cells = [_plain_cell(cell) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    graded = [i for i, cell in enumerate(code_cells) if _meta(cell).get("grade")]
    last_test = graded[-1] if graded else -1
    engine, tests, order = [], [], []
    for index, cell in enumerate(code_cells):
        meta = _meta(cell)
        cell_id = meta.get("grade_id") or cell.id or f"cell{index}"
        order.append(cell_id)
        if meta.get("grade"):
            tests.append(_test_cell(cell, meta))
        elif index < last_test:
            # Cells after the last test only illustrate (measurements, demos):
            # they cost time and decide nothing, so the grader skips them.
            engine.append(EngineCell(cell_id, cell.source, bool(meta.get("solution"))))
    return Assignment(tuple(engine), tuple(tests), tuple(order))


@dataclass(frozen=True)
class _Cell:
    id: str | None
    source: str
    metadata: dict


def _plain_cell(cell: dict) -> _Cell:
    source = cell.get("source", "")
    return _Cell(cell.get("id"), "".join(source) if isinstance(source, list) else source, cell.get("metadata", {}))


def _meta(cell: _Cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _test_cell(cell: _Cell, meta: dict) -> TestCell:
    tree = ast.parse(cell.source)
    scenarios = tuple(
        Scenario(node.name, ast.get_source_segment(cell.source, node), ast.get_docstring(node) or node.name)
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("scenario_")
    )
    first = cell.source.lstrip().splitlines()[0] if cell.source.strip() else ""
    title = first.lstrip("# ").strip() if first.startswith("#") else meta["grade_id"]
    # Hidden: students see none of its scenarios.  A visible test cell may also hold hidden
    # twins of its checks on random inputs; it stays visible.
    visible_part = "\n".join(outside_regions(cell.source))
    hidden = BEGIN_HIDDEN in cell.source and "def scenario_" not in visible_part
    return TestCell(meta["grade_id"], float(meta["points"]), hidden, title, scenarios)
