"""Plain-text tables: the one helper every command that prints rows of results uses."""

from __future__ import annotations

from .results import CellScore


def text_table(header: list[str], rows: list[list[str]], *, right: frozenset[int] = frozenset(),
               separator: str = "  ") -> str:
    """Columns padded to their widest cell, a rule under the header; columns in ``right`` right-aligned.

    Cells are shown as given: a caller makes untrusted text safe (``literal``) before it gets here.
    """
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [cell.rjust(width) if i in right else cell.ljust(width)
                  for i, (cell, width) in enumerate(zip(cells, widths))]
        return separator.join(padded).rstrip()

    rule = "-" * len(line(["-" * width for width in widths]))
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def points(score: float | None, max_score: float) -> str:
    """A test's or a submission's points as "6/8"; "-" for a score still to be graded by hand."""
    return f"{'-' if score is None else format(score, 'g')}/{max_score:g}"


def score_matrix(scores: dict[str, dict[str, CellScore]]) -> str:
    """Submissions as rows, tests as numbered columns (in notebook order), points in each cell; a legend."""
    tests: list[str] = []
    for row in scores.values():  # the first row that has a test fixes its place
        tests += [grade_id for grade_id in row if grade_id not in tests]
    rows = []
    for name, row in scores.items():
        cells, total, maximum = [], 0.0, 0.0
        for test in tests:
            cell = row.get(test)
            if cell is None:
                cells.append("?")
                continue
            maximum += cell.max_score
            total += cell.score or 0.0
            cells.append("-" if cell.score is None else f"{cell.score:g}")
        rows.append([name, "|", *cells, "|", f"{total:g}/{maximum:g}"])
    header = ["", "|", *(str(i) for i in range(1, len(tests) + 1)), "|", "total"]
    numbered = frozenset(range(2, 2 + len(tests)))
    legend = [f"{i:>3}: {test}" for i, test in enumerate(tests, 1)]
    return "\n".join([text_table(header, rows, right=numbered, separator=" "), "", *legend])
