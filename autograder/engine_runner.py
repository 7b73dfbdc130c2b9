"""Running scenarios against the student's engine in the sandbox, replacing its process when it fails.

One engine host process (``engine_host.py``) serves scenario after scenario.
When it misses a deadline, dies or breaks the contract, the scenario that was
running fails with what happened, the whole sandbox is killed, and a fresh
process (cells run again, about 0.2 s) takes the next scenario, for as long as
the submission's time budget lasts.  A notebook cell that hangs or kills the
process is skipped in the fresh one, and noted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import sandbox
from .remote_engine import Connection, EngineError, EngineLost, RemoteEngine, UnreadableReply
from .results import Status
from .scenario_runtime import ENGINE_NAMES, to_plain

HERE = Path(__file__).resolve().parent
HOST_FILES = ("engine_host.py", "protocol.py")
# A process that keeps failing is not started again without end: past this
# many starts the remaining scenarios are not run.
MAX_STARTS = 8
UNREADABLE = "your engine returned something that is not a tensor, an array or a number"


@dataclass(frozen=True)
class JobCell:
    name: str  # what error messages call it: a grade_id, or "cell 12" for a cell the student added
    source: str
    student: bool  # the student wrote it (their solution or their own cell)


@dataclass
class Timing:
    request_seconds: float  # one round trip (a cell, or a scenario's reads)
    budget_seconds: float  # the whole submission


@dataclass
class RunnerState:
    starts: int = 0
    notes: list[str] = field(default_factory=list)
    skipped_cells: set[str] = field(default_factory=set)
    noted_cells: set[str] = field(default_factory=set)  # a restart runs cells again: note each once
    gave_up: str = ""  # why no further scenario can run ("" while they can)
    status: Status = Status.GRADED  # TIMEOUT or CRASHED once the runner gives up


class EngineRunner:
    """The student's engine in a sandboxed process, restarted as needed within one time budget."""

    def __init__(self, cells: list[JobCell], *, isolation: sandbox.Isolation, limits: sandbox.Limits,
                 timing: Timing) -> None:
        self.cells = cells
        self.isolation = isolation
        self.limits = limits
        self.timing = timing
        self.deadline = time.monotonic() + timing.budget_seconds
        self.state = RunnerState()
        self._stack = contextlib.ExitStack()
        self._conn: Connection | None = None
        self._scratch: Path | None = None
        self._lines: dict[str, list[str]] = {}  # a cell's lines, split once: errors name lines often

    def __enter__(self) -> EngineRunner:
        return self

    def __exit__(self, *exc_info) -> None:
        self._discard()

    # -- scenarios

    def run(self, scenario, seed: int) -> dict:
        """What ``scenario`` observed on the student's engine: {"observed"}, {"error"} or {"problem"}."""
        conn = self._connection()
        if conn is None:
            return {"problem": f"not run: {self.state.gave_up}"}
        try:
            observed = scenario(RemoteEngine(conn, ENGINE_NAMES), np.random.default_rng(seed))
            conn.flush()
        except EngineLost as lost:
            self._discard()
            return {"problem": f"your engine {lost}; the next test gets a fresh process, while the time budget lasts"}
        except EngineError as error:
            return {"error": self.describe(error)}
        except UnreadableReply:
            return {"problem": UNREADABLE}
        except Exception as error:  # noqa: BLE001 - the scenario tripped over what the engine returned
            return {"problem": f"the test could not use what your engine returned ({type(error).__name__})"}
        if not isinstance(observed, dict):
            return {"problem": UNREADABLE}
        return {"observed": to_plain(observed)}

    def probe(self, function, seed: int) -> dict | None:
        """Like ``run``, for a diagnosis only: on the process already running, never starting one.

        A probe changes nothing about the grade: if the engine is gone or is
        lost meanwhile, the answer is None and no note or status is recorded.
        """
        if self._conn is None:
            return None
        result = self.run(function, seed)
        return None if "problem" in result else result

    def describe(self, error: EngineError) -> str:
        """The student's own exception, and the line of their notebook that raised it."""
        text = f"{error.type_name}: {error.text}" if error.text else error.type_name
        place = self._place(error.where)
        return f"{text} ({place})" if place else text

    def _place(self, where: str) -> str:
        # The child only names a cell and a line; the line's text is taken from
        # the grader's own copy of the cells.
        match = re.fullmatch(r"(.{1,80}):(\d{1,7})", where or "")
        cell = next((c for c in self.cells if match and c.name == match.group(1)), None)
        if cell is None:
            return ""
        number = int(match.group(2))
        if cell.name not in self._lines:
            # The line breaks the compiler counts, not str.splitlines()'s dozen.
            self._lines[cell.name] = re.split(r"\r\n|\r|\n", cell.source)
        lines = self._lines[cell.name]
        line = lines[number - 1].strip() if 0 < number <= len(lines) else ""
        shown = f": {line[:120]}" if line else ""
        return f"{cell_label(cell)}, line {number}{shown}"

    # -- the process

    def _connection(self) -> Connection | None:
        while self._conn is None and not self.state.gave_up:
            if time.monotonic() >= self.deadline:
                self.state.gave_up = "the submission's time budget ran out before this test"
                self.state.status = Status.TIMEOUT
            elif self.state.starts >= MAX_STARTS:
                self.state.gave_up = f"your engine's process failed {MAX_STARTS} times; grading stopped"
                self.state.status = Status.CRASHED
            else:
                self._start()
        return self._conn

    def _start(self) -> None:
        self.state.starts += 1
        self._scratch = Path(tempfile.mkdtemp(prefix="grade-"))
        for name in HOST_FILES:
            shutil.copy(HERE / name, self._scratch / name)
        binds = sandbox.package_binds("numpy") if self.isolation.level != "none" else []
        inside = sorted({str(Path(path).parent) for _, path in binds})
        argv = [sys.executable, "-E", "-s", "engine_host.py", *inside]
        remaining = max(self.deadline - time.monotonic(), 0.1)
        limits = dataclasses.replace(self.limits, wall_seconds=remaining)
        session = self._stack.enter_context(sandbox.session(
            argv, scratch=self._scratch, read_only=binds, limits=limits, isolation=self.isolation))
        conn = Connection(session, self.timing.request_seconds, self.deadline)
        for cell in self.cells:
            if cell.name in self.state.skipped_cells:
                continue
            try:
                error = conn.run_cell(cell.name, cell.source)
            except EngineLost as lost:
                self.state.skipped_cells.add(cell.name)
                self.state.notes.append(f"{cell_label(cell)} {lost}: it was skipped in the rest of the grading")
                self._discard()
                return
            if error is not None and cell.student and cell.name not in self.state.noted_cells:
                self.state.noted_cells.add(cell.name)
                self.state.notes.append(f"{cell_label(cell)} raised {self.describe(error)}")
        self._conn = conn

    def _discard(self) -> None:
        self._conn = None
        self._stack.close()
        self._stack = contextlib.ExitStack()
        if self._scratch is not None:
            remove_tree(self._scratch)
            self._scratch = None


def cell_label(cell: JobCell) -> str:
    """How messages name a cell: "your cell 12" (added), "your cell exercise_add", "the given cell imports"."""
    if not cell.student:
        return f"the given cell {cell.name}"
    return f"your {cell.name}" if cell.name.startswith("cell ") else f"your cell {cell.name}"


def remove_tree(path: Path) -> None:
    """Delete a scratch folder whatever the submission left in it.

    ``rm -rf`` walks the tree without recursion; shutil.rmtree recurses and
    fails on a folder nested a few thousand levels deep.
    """
    import subprocess

    try:
        subprocess.run(["rm", "-rf", "--", str(path)], check=False, capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        shutil.rmtree(path, ignore_errors=True)
