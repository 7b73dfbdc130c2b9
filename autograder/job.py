"""Building the job: which cells make the student's engine, and in which order the scenarios run.

The engine is built from the instructor's given cells (never the
submission's copies), the student's solution cells and the cells the student
added, in notebook order.  Test cells never run there: the scenarios run in
the grader, in an order drawn from the run's secret seed.
"""

from __future__ import annotations

import random

from .assignment import Assignment, Scenario, TestCell
from .engine_runner import JobCell
from .scenarios import scenario_seed
from .submission import ReadSubmission, blank_solution


def job_cells(assignment: Assignment, read: ReadSubmission) -> tuple[list[JobCell], list[str]]:
    """The cells that build the student's engine, in notebook order; and notes on cells not run.

    Given cells come from the instructor's notebook, whatever the submission
    did to them; solution cells are the student's; cells the student added run
    where they stand, after the assignment cell above them.  Test cells never
    run in the engine's process: the tests run in the grader.
    """
    position = {cell_id: index for index, cell_id in enumerate(assignment.cell_order)}
    last_test = max((position[test.grade_id] for test in assignment.tests), default=-1)
    added = list(read.added)
    cells: list[JobCell] = []

    def take_added_before(index: int) -> None:
        while added and (-1 if added[0].after is None else position[added[0].after]) < index:
            cell = added.pop(0)
            cells.append(JobCell(f"cell {cell.number}", cell.source, student=True))

    for cell in assignment.engine_cells:
        take_added_before(position[cell.cell_id])
        if cell.is_solution:
            cells.append(JobCell(cell.cell_id, read.solutions.get(cell.cell_id, blank_solution(cell)), True))
        else:
            cells.append(JobCell(cell.cell_id, cell.source, student=False))
    take_added_before(last_test)
    skipped = [f"cell {cell.number} comes after the last test, so no test can use it: it was not run"
               for cell in added]
    return cells, skipped


def scenario_order(assignment: Assignment, seed: int) -> list[tuple[TestCell, Scenario]]:
    """Every scenario, in an order drawn from the seed: the engine cannot tell which test runs by counting."""
    pairs = [(test, scenario) for test in assignment.tests for scenario in test.scenarios]
    random.Random(scenario_seed("scenario order", seed)).shuffle(pairs)
    return pairs
