"""The remote engine: what crosses into the sandbox, the cells the student added, the student's own errors.

Grading runs need a sandbox (bubblewrap or unshare); without one they skip and say how to get one.
The cell-ordering tests are pure logic.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from autograder import sandbox
from autograder.assignment import load_assignment
from autograder.variants import instructor_bodies, submission_notebook
from autograder.course import release_notebook, source_notebook
from autograder.grader import grade_submission
from autograder.job import job_cells
from autograder.submission import AddedCell, ReadSubmission

pytestmark = [pytest.mark.sandbox]

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = load_assignment(source_notebook(ROOT))
SEED = 424242


def _notebook(bodies: dict[str, list[str]] | None = None):
    release_nb = nbformat.read(release_notebook(ROOT), as_version=4)
    if bodies is None:
        bodies = instructor_bodies(nbformat.read(source_notebook(ROOT), as_version=4))
    return submission_notebook(release_nb, bodies)


def _grade(notebook, path: Path):
    nbformat.write(notebook, path)
    return grade_submission(path, root=ROOT, base_seed=SEED)


def _insert_before(notebook, grade_id: str, source: str) -> int:
    """Add an untracked code cell just above the cell ``grade_id``; its 1-based position."""
    index = next(i for i, cell in enumerate(notebook.cells)
                 if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    notebook.cells.insert(index, nbformat.v4.new_code_cell(source))
    return index + 1


# -- what the sandboxed process is told


def test_nothing_secret_crosses_into_the_sandbox(isolation, tmp_path, monkeypatch):
    sent: list[bytes] = []
    original = sandbox.Session.send

    def recording(self, data, deadline):
        sent.append(bytes(data))
        return original(self, data, deadline)

    monkeypatch.setattr(sandbox.Session, "send", recording)
    result = _grade(_notebook(), tmp_path / "correct.ipynb")
    assert result.score == 100
    traffic = b"".join(sent).decode("utf-8", errors="replace")
    names = [scenario.name for test in ASSIGNMENT.tests for scenario in test.scenarios]
    assert [name for name in names if name in traffic] == []
    assert [test.grade_id for test in ASSIGNMENT.tests if test.grade_id in traffic] == []
    assert "check_against_reference" not in traffic and "BEGIN HIDDEN" not in traffic
    assert str(SEED) not in traffic
    assert "def scenario_" not in traffic


# -- cells the student added


def test_a_helper_in_a_cell_of_its_own_is_used_by_the_solution(isolation, tmp_path):
    bodies = instructor_bodies(nbformat.read(source_notebook(ROOT), as_version=4))
    # The instructor's own backward, moved into a helper defined in a cell the student added.
    helper = "def my_backward(self, gradient):\n" + "".join(
        "    " + line + "\n" for line in bodies["exercise_backward"][0].splitlines())
    bodies["exercise_backward"] = ["return my_backward(self, gradient)\n"]
    notebook = _notebook(bodies)
    _insert_before(notebook, "exercise_backward", "import numpy as np\n\n" + helper)
    result = _grade(notebook, tmp_path / "helper.ipynb")
    assert (result.status, result.score) == ("graded", 100), [t.output for t in result.tests if t.score == 0]


def test_an_added_cell_that_raises_is_noted_and_grading_goes_on(isolation, tmp_path):
    notebook = _notebook()
    number = _insert_before(notebook, "exercise_add", "import numpy as np\nnp.no_such_function()\n")
    result = _grade(notebook, tmp_path / "raises.ipynb")
    assert (result.status, result.score) == ("graded", 100)
    assert any(note.startswith(f"your cell {number} raised AttributeError") and "line 2: np.no_such_function()"
               in note for note in result.notes), result.notes


def test_the_students_own_error_and_line_are_shown(isolation, tmp_path):
    bodies = instructor_bodies(nbformat.read(source_notebook(ROOT), as_version=4))
    bodies["exercise_mul"][0] = "raise ValueError('output array is read-only')\n"
    result = _grade(_notebook(bodies), tmp_path / "error.ipynb")
    mul = next(test for test in result.tests if test.name == "test_mul_visible")
    assert "ValueError: output array is read-only" in mul.output
    assert re.search(r"your cell exercise_mul, line \d+: raise ValueError", mul.output), mul.output


def test_a_backward_that_never_returns_costs_one_deadline_and_grading_goes_on(isolation, tmp_path):
    bodies = instructor_bodies(nbformat.read(source_notebook(ROOT), as_version=4))
    # A backward that follows every path separately: the fifty doublings never finish.
    bodies["exercise_backward"] = ["self._paths(gradient)\n"]
    notebook = _notebook(bodies)
    _insert_before(notebook, "test_backward_visible", (
        "def _paths(self, grad):\n"
        "    if self.grad_fn is None:\n"
        "        self.grad = grad.copy() if self.grad is None else self.grad + grad\n"
        "        return\n"
        "    for parent, g in zip(self.grad_fn.inputs, self.grad_fn.apply(grad)):\n"
        "        if parent.requires_grad:\n"
        "            _paths(parent, g)\n"
        "\n\nTensor._paths = _paths\n"))
    limits = sandbox.Limits(wall_seconds=40.0, cpu_seconds=40, memory_bytes=1024**3, max_processes=16,
                            output_bytes=4 * 1024**2)
    path = tmp_path / "exponential.ipynb"
    nbformat.write(notebook, path)
    result = grade_submission(path, root=ROOT, base_seed=SEED, limits=limits)
    linear = next(test for test in result.tests if test.name == "hidden_backward_linear_time")
    assert linear.score == 0 and "did not finish within 10 s" in linear.output
    # The process was replaced: the tests that do not need linear time were graded and passed.
    assert result.status == "graded"
    assert next(test for test in result.tests if test.name == "hidden_backward_values").score > 0
    assert next(test for test in result.tests if test.name == "test_mul_visible").score > 0


# -- where added cells run (pure logic)


def _read(added: list[AddedCell]) -> ReadSubmission:
    return ReadSubmission("ok", "", {}, [], added)


def test_added_cells_run_after_the_assignment_cell_above_them():
    cells, skipped = job_cells(ASSIGNMENT, _read([
        AddedCell(1, None, "top = 1"),
        AddedCell(9, "exercise_backward", "helper = 2"),
        AddedCell(12, "test_backward_visible", "after_a_test = 3"),
        AddedCell(99, "test_complex_graph_visible", "after_the_last_test = 4"),
    ]))
    names = [cell.name for cell in cells]
    assert names[0] == "cell 1"
    assert names.index("cell 9") == names.index("exercise_backward") + 1
    # A cell below a test runs before the next engine cell: the tests themselves run in the grader.
    assert names.index("exercise_backward") < names.index("cell 12") < names.index("exercise_add")
    assert "cell 99" not in names and skipped == [
        "cell 99 comes after the last test, so no test can use it: it was not run"]
    # Test cells never run in the engine's process.
    assert not {test.grade_id for test in ASSIGNMENT.tests} & set(names)


def test_a_cell_added_to_the_submission_is_read_with_its_place(tmp_path):
    from autograder.submission import read_submission

    notebook = _notebook()
    number = _insert_before(notebook, "exercise_mul", "def helper():\n    return 1\n")
    path = tmp_path / "added.ipynb"
    nbformat.write(notebook, path)
    read = read_submission(path, ASSIGNMENT)
    assert [(cell.number, cell.after) for cell in read.added] == [(number, "hidden_add_broadcast")]
    assert "".join(json.loads(path.read_text())["cells"][number - 1]["source"]).startswith("def helper")


# -- what replies can make in the grading process (pure logic)


def _connection():
    from autograder.remote_engine import Connection

    return Connection(session=None, request_seconds=1.0, deadline=0.0)


def test_type_names_from_replies_make_a_bounded_number_of_classes():
    from autograder.remote_engine import MAX_TYPE_NAMES, UnreadableReply

    conn = _connection()
    names = [f"Node{k}" for k in range(MAX_TYPE_NAMES)]
    proxies = conn._wrap({"list": [{"ref": 2**40 + k, "kind": "object", "type": name}
                                   for k, name in enumerate(names)]})
    assert [type(proxy).__name__ for proxy in proxies] == names
    with pytest.raises(UnreadableReply):
        conn._wrap({"ref": 2**41, "kind": "object", "type": "OneNameTooMany"})
    # The classes belong to the connection: the next submission's starts with none.
    assert len(conn.classes) == MAX_TYPE_NAMES and _connection().classes == {}


def test_replies_cannot_make_endless_objects():
    from autograder.remote_engine import MAX_CHILD_OBJECTS, UnreadableReply

    conn = _connection()
    batch = {"list": [{"ref": 2**40 + k, "kind": "tensor", "type": "Tensor"} for k in range(10_000)]}
    conn._wrap(batch)
    conn._wrap(batch)  # the same handles again: the same proxies, nothing new
    assert conn.child_objects == 10_000
    more = {"list": [{"ref": 2**42 + k, "kind": "tensor", "type": "Tensor"}
                     for k in range(MAX_CHILD_OBJECTS - 10_000 + 1)]}
    with pytest.raises(UnreadableReply):
        conn._wrap(more)


def test_error_names_from_the_child_key_nothing_that_outlives_a_submission():
    from autograder import remote_engine

    before = dict(remote_engine._ERROR_CLASSES)
    assert remote_engine.error_class("StudentInventedError") is remote_engine.EngineError
    assert remote_engine._ERROR_CLASSES == before
    mirrored = remote_engine.error_class("ValueError")
    assert issubclass(mirrored, ValueError) and mirrored.__name__ == "ValueError"


def test_scenario_seeds_are_a_keyed_hash_of_a_128_bit_secret():
    from autograder.scenarios import fresh_base_seed, scenario_seed

    secret = fresh_base_seed()
    assert secret.bit_length() > 64  # fails with probability 2**-64
    assert scenario_seed("scenario_a", secret) == scenario_seed("scenario_a", secret)
    assert len({scenario_seed("scenario_a", secret), scenario_seed("scenario_b", secret),
                scenario_seed("scenario_a", secret + 1)}) == 3


def test_an_error_inside_no_grad_does_not_leave_recording_off_for_later_tests(isolation, tmp_path):
    from autograder.engine_runner import EngineRunner, Timing
    from autograder.grader import DEFAULT_LIMITS

    bodies = instructor_bodies(nbformat.read(source_notebook(ROOT), as_version=4))
    read_path = tmp_path / "add_raises.ipynb"
    bodies["exercise_add"][0] = "raise NotImplementedError()\n"
    nbformat.write(_notebook(bodies), read_path)
    from autograder.submission import read_submission

    cells, _ = job_cells(ASSIGNMENT, read_submission(read_path, ASSIGNMENT))

    def adds_inside_no_grad(tt, rng):
        a = tt.Tensor([1.0], requires_grad=True)
        with tt.no_grad():
            a + a  # raises in the student's engine, inside the block
        return {}

    def records_afterwards(tt, rng):
        b = tt.Tensor([2.0], requires_grad=True)
        return {"requires_grad": (b * b).requires_grad}

    with EngineRunner(cells, isolation=isolation, limits=DEFAULT_LIMITS,
                      timing=Timing(request_seconds=10.0, budget_seconds=60.0)) as runner:
        first = runner.run(adds_inside_no_grad, 0)
        second = runner.run(records_afterwards, 0)
    assert first["error"].startswith("NotImplementedError")
    assert second == {"observed": {"requires_grad": True}}


def test_a_node_cannot_use_the_engine_while_the_engine_waits_for_it():
    conn = _connection()
    conn.answering = True
    with pytest.raises(RuntimeError, match="inside apply"):
        conn.exchange({"ops": []})


# -- the engine process across scenarios (review findings)


def _runner(isolation, cells, request_seconds: float = 10.0):
    from autograder.engine_runner import EngineRunner, Timing
    from autograder.grader import DEFAULT_LIMITS

    return EngineRunner(cells, isolation=isolation, limits=DEFAULT_LIMITS,
                        timing=Timing(request_seconds=request_seconds, budget_seconds=60.0))


def _instructor_cells(tmp_path, extra: dict[str, str] | None = None):
    """The instructor's engine as job cells, with cells added above the named assignment cells."""
    from autograder.submission import read_submission

    notebook = _notebook()
    for grade_id, source in (extra or {}).items():
        _insert_before(notebook, grade_id, source)
    path = tmp_path / "cells.ipynb"
    nbformat.write(notebook, path)
    return job_cells(ASSIGNMENT, read_submission(path, ASSIGNMENT))[0]


def test_a_plain_array_returned_by_an_operation_is_used_as_the_engine_returned_it(isolation, tmp_path):
    # A common slip: AddBackward.forward returns a.data + b.data, not a Tensor.
    cells = _instructor_cells(tmp_path, {"test_add_visible": (
        "AddBackward.forward = staticmethod(lambda a, b: a.data + b.data)\n")})

    def adds(tt, rng):
        x = tt.Tensor([1.0, 2.0], requires_grad=True)
        (x + x).sum().backward()
        return {}

    with _runner(isolation, cells) as runner:
        result = runner.run(adds, 0)
    # As in one process: the array's sum has no backward (not "an object the grader named is gone").
    assert "has no attribute 'backward'" in result["error"], result


def test_operations_left_queued_by_a_failed_scenario_do_not_run_in_the_next(isolation, tmp_path):
    def queues_then_fails(tt, rng):
        x = tt.Tensor([1.0], requires_grad=True)
        x.reshape(7)  # the given Tensor has no reshape: this would fail when sent
        raise ZeroDivisionError  # the scenario stops here, before anything was sent

    def reads(tt, rng):
        return {"data": tt.Tensor([3.0]).data}

    with _runner(isolation, _instructor_cells(tmp_path)) as runner:
        assert "problem" in runner.run(queues_then_fails, 0)
        second = runner.run(reads, 0)
    assert second["observed"]["data"]["values"] == [3.0], second


def test_a_cell_that_raises_after_a_restart_is_noted_too(isolation, tmp_path):
    cells = _instructor_cells(tmp_path, {"exercise_add": "while True:\n    pass\n",
                                         "exercise_mul": "import numpy as np\nnp.no_such_function()\n"})
    with _runner(isolation, cells, request_seconds=2.0) as runner:
        runner.run(lambda tt, rng: {"data": tt.Tensor([1.0]).data}, 0)
    notes = runner.state.notes
    assert any("did not finish within 2 s" in note for note in notes), notes
    assert any("raised AttributeError" in note for note in notes), notes


def test_a_probe_that_loses_the_engine_changes_nothing_and_starts_nothing(isolation, tmp_path):
    """Feedback probes (scenario_graph.py) run on the process already there; losing it records nothing."""
    cells = _instructor_cells(tmp_path, {"test_add_visible": "import os\nTensor.__neg__ = lambda self: os._exit(3)\n"})

    def negates(tt, rng):
        return {"value": (-tt.Tensor([1.0])).data}

    def reads(tt, rng):
        return {"value": tt.Tensor([1.0]).data}

    with _runner(isolation, cells) as runner:
        assert runner.probe(reads, 0) is None  # no process yet: a probe never starts one
        assert runner.run(reads, 0)["observed"]["value"]["values"] == [1.0]
        assert runner.probe(negates, 0) is None
        assert runner.probe(reads, 0) is None
        assert (runner.state.starts, runner.state.notes, runner.state.status) == (1, [], "graded")
