"""Reading nbgrader's marked regions (solutions, hidden tests) out of cell sources."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
# What nbgrader's ClearSolutions puts in place of a Python solution region.
STUB_LINES = ("# YOUR CODE HERE", "raise NotImplementedError()")


@dataclass(frozen=True)
class Region:
    """The lines strictly between a BEGIN and its END marker, and their indentation."""

    indent: str
    body: str  # dedented


class UnbalancedMarkers(ValueError):
    """A BEGIN without its END, an END without its BEGIN, or a region inside another (nbgrader refuses each)."""


def regions(source: str, begin: str, end: str) -> list[Region]:
    """Every begin/end region of ``source``, in order; UnbalancedMarkers if the markers do not pair up."""
    found, current, indent = [], None, ""
    for number, line in enumerate(source.splitlines(), start=1):
        if line.strip() == begin:
            if current is not None:
                raise UnbalancedMarkers(f"line {number}: {begin} inside another {begin} region")
            current, indent = [], line[: len(line) - len(line.lstrip())]
        elif line.strip() == end:
            if current is None:
                raise UnbalancedMarkers(f"line {number}: {end} without a {begin} before it")
            found.append(Region(indent, textwrap.dedent("\n".join(current))))
            current = None
        elif current is not None:
            current.append(line)
    if current is not None:
        raise UnbalancedMarkers(f"{begin} is never closed by {end}")
    return found


def region_lines(source: str, begin: str, end: str) -> set[str]:
    """The stripped, non-blank lines inside the regions of ``source``."""
    return {
        line.strip()
        for region in regions(source, begin, end)
        for line in region.body.splitlines()
        if line.strip()
    }


def outside_regions(source: str) -> list[str]:
    """The lines of ``source`` outside every solution and hidden-test region."""
    regions(source, BEGIN_SOLUTION, END_SOLUTION)  # UnbalancedMarkers rather than a silently wrong answer
    regions(source, BEGIN_HIDDEN, END_HIDDEN)
    lines, depth = [], 0
    for line in source.splitlines():
        stripped = line.strip()
        if stripped in (BEGIN_SOLUTION, BEGIN_HIDDEN):
            depth += 1
        elif stripped in (END_SOLUTION, END_HIDDEN):
            depth -= 1
        elif depth == 0:
            lines.append(line)
    return lines


def fill_stubs(release_source: str, bodies: list[str]) -> str:
    """Put ``bodies`` in place of the release cell's stubs, in order, at each stub's indentation."""
    lines = release_source.splitlines()
    out, index, filled = [], 0, 0
    while index < len(lines):
        line = lines[index]
        next_line = lines[index + 1] if index + 1 < len(lines) else ""
        if line.strip() == STUB_LINES[0] and next_line.strip() == STUB_LINES[1]:
            if filled >= len(bodies):
                raise ValueError("the cell has more stubs than bodies were given")
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(textwrap.indent(bodies[filled], indent).splitlines())
            filled += 1
            index += 2
            continue
        out.append(line)
        index += 1
    if filled != len(bodies):
        raise ValueError(f"the cell has {filled} stubs but {len(bodies)} bodies were given")
    return "\n".join(out)
