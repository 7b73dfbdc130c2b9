"""The text tables and the class CSV (autograder/tables.py): pure logic."""

from __future__ import annotations

import csv
import io

from autograder.results import CellScore, ClassRow
from autograder.tables import NBGRADER_EXPORT_COLUMNS, class_csv, class_table, score_matrix, text_table


def _row(student: str, score: float, status: str, tests: dict, seed: int | None = 7) -> ClassRow:
    return ClassRow(student, "05_autograd", "", "2026-12-01 10:00:00", "", "", "", score, 0.0, score, 100.0,
                    status=status, message="", seed=seed, tests=tests)


def test_text_table_pads_columns_and_right_aligns_the_asked_ones():
    table = text_table(["name", "n"], [["a", "1"], ["long name", "100"]], right=frozenset({1}))
    assert table.splitlines() == ["name         n", "--------------", "a            1", "long name  100"]


def test_score_matrix_keeps_notebook_order_and_marks_unknown_and_manual_cells():
    matrix = score_matrix({"alice": {"t2": CellScore(6, 6), "t1": CellScore(None, 4)},
                           "bob": {"t2": CellScore(0, 6)}})
    lines = matrix.splitlines()
    assert lines[0].split() == ["|", "1", "2", "|", "total"]
    assert lines[2].split() == ["alice", "|", "6", "-", "|", "6/10"]
    assert lines[3].split() == ["bob", "|", "0", "?", "|", "0/6"]
    assert lines[-2:] == ["  1: t2", "  2: t1"]


def test_class_csv_is_nbgrader_exports_columns_then_status_tests_and_seed():
    rows = [_row("alice", 100.0, "graded", {"t1": 4.0, "t2": 6.0}),
            _row("bob", 0.0, "missing", {}, seed=None)]
    parsed = list(csv.reader(io.StringIO(class_csv(rows))))
    assert parsed[0] == [*NBGRADER_EXPORT_COLUMNS, "status", "t1", "t2", "seed"]
    assert parsed[1][NBGRADER_EXPORT_COLUMNS.index("student_id")] == "alice"
    assert parsed[1][-4:] == ["graded", "4.0", "6.0", "7"]
    assert parsed[2][-4:] == ["missing", "", "", ""]


def test_class_table_says_status_and_message():
    row = _row("carol", 0.0, "timeout", {})
    row.message = "grading stopped after 60 s"
    table = class_table([row])
    assert table.splitlines()[-1].split(maxsplit=3) == ["carol", "0/100", "timeout", "(grading stopped after 60 s)"]
