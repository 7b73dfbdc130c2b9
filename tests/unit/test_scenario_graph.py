"""Finding the node that is probably wrong (autograder/scenario_graph.py), on the reference engine alone."""

from __future__ import annotations

import copy
from pathlib import Path

from autograder.assignment import load_assignment
from autograder.course import source_notebook
from autograder.feedback import draw_graph
from autograder.scenario_graph import capture_tensors, graph_tensors, locate_culprit, operation_probes, operations
from autograder.scenario_runtime import run_scenario
from autograder.scenarios import reference_namespace

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = {s.name: s for t in load_assignment(source_notebook(ROOT)).tests for s in t.scenarios}
COMPLEX = SCENARIOS["scenario_complex_graph"]  # f = (x + y) * (x - y)


def _engine_with_a_wrong(kind: str | None):
    """A stand-in for the student's engine: the reference, except that nodes of ``kind`` answer wrong."""
    def run(probe, seed):
        result = run_scenario(probe, reference_namespace(), seed)
        if probe.kind == kind:
            result = copy.deepcopy(result)
            result["observed"]["to input 1"]["values"] = [v + 1.0 for v in result["observed"]["to input 1"]["values"]]
        return result
    return run


def test_probes_come_output_first_with_positions_as_drawn():
    probes = operation_probes(COMPLEX, 1)
    produced = operations(graph_tensors(*capture_tensors(COMPLEX, 1)))
    assert [p.kind for p in probes] == [type(t.grad_fn).__name__ for t in reversed(produced)]
    assert [p.position for p in probes] == list(range(len(produced)))[::-1]
    assert probes[0].kind == "MulBackward"


def test_the_wrong_node_is_located_and_marked_on_the_drawing():
    diagnosis = locate_culprit(COMPLEX, 1, _engine_with_a_wrong("AddBackward"))
    produced = operations(graph_tensors(*capture_tensors(COMPLEX, 1)))
    assert type(produced[diagnosis.position].grad_fn).__name__ == "AddBackward"
    assert diagnosis.text.startswith("AddBackward is probably where it goes wrong")
    drawing = draw_graph(*capture_tensors(COMPLEX, 1), {"x"}, diagnosis.position)
    marked = [line for line in drawing.splitlines() if "probably wrong here" in line]
    assert len(marked) == 1 and "[AddBackward]" in marked[0]


def test_the_first_wrong_node_from_the_output_is_the_one_named():
    both = _engine_with_a_wrong("AddBackward")
    also_mul = _engine_with_a_wrong("MulBackward")

    def run(probe, seed):
        return also_mul(probe, seed) if probe.kind == "MulBackward" else both(probe, seed)

    assert locate_culprit(COMPLEX, 1, run).text.startswith("MulBackward")


def test_when_every_node_answers_right_backward_is_named():
    diagnosis = locate_culprit(COMPLEX, 1, _engine_with_a_wrong(None))
    assert diagnosis.position is None and "comes from backward()" in diagnosis.text


def test_nothing_is_said_when_a_probe_cannot_run():
    assert locate_culprit(COMPLEX, 1, lambda probe, seed: None) is None
