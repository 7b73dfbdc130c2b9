"""The graph a scenario builds, and which of its nodes is probably wrong.

The feedback draws a failing scenario's computation graph as the reference
engine records it (``capture_tensors``, ``graph_tensors``).  To point at the
node that is probably wrong, the grader checks every operation of that graph
on its own: it rebuilds the operation on the student's engine from the same
input values, hands the student's node and the reference's node the same
incoming gradient, and compares what each sends back to its inputs
(``operation_probes``, ``locate_culprit``).  The first operation, counting
from the output, whose node answers differently is marked; if every node
answers like the reference's, the mistake lies in how ``backward()`` walks the
graph or adds up contributions.

The probe only words feedback: nothing it finds changes a score.
"""

from __future__ import annotations

import operator
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .assignment import Scenario
from .scenario_runtime import run_scenario
from .judge import compare_results
from .results import Diagnosis
from .scenarios import reference_namespace

MAX_DRAWN_OPERATIONS = 24

# The operations a probe can rebuild, by the reference node that records them.
# Reductions are rebuilt only in their plain form (sum or mean of everything).
REBUILD: dict[str, Callable] = {
    "AddBackward": operator.add,
    "SubBackward": operator.sub,
    "MulBackward": operator.mul,
    "NegBackward": operator.neg,
    "PowBackward": operator.pow,
    "SumBackward": lambda a: a.sum(),
    "MeanBackward": lambda a: a.mean(),
}


def capture_tensors(scenario: Scenario, seed: int) -> tuple[dict, list]:
    """Run ``scenario`` on the reference engine, watching it with a profiler.

    Returns the scenario's local variables when it returned (the names the
    drawing uses) and every tensor an engine function returned meanwhile
    (results that were never given a name, like the ``(a + b)`` in
    ``(a + b).backward()``).
    """
    from tinytorch import Tensor

    function = scenario.function()
    local_vars: dict = {}
    created: list = []

    def profiler(frame, event, arg):
        if event != "return":
            return
        if frame.f_code is function.__code__:
            local_vars.update(frame.f_locals)
        elif isinstance(arg, Tensor) and len(created) <= 10 * MAX_DRAWN_OPERATIONS:
            created.append(arg)

    previous = sys.getprofile()
    sys.setprofile(profiler)
    try:
        function(reference_namespace(), np.random.default_rng(seed))
    finally:
        sys.setprofile(previous)
    return local_vars, created


def graph_tensors(local_vars: dict, created: list) -> list:
    """Every tensor of the scenario's graph, each after its inputs.

    The order the feedback draws, and the order in which operations are
    counted (an operation's *position* is its index among the tensors here
    that have a ``grad_fn``).  A graph too large to draw keeps only the named
    tensors and what they reach.
    """
    from tinytorch import Tensor

    named = [value for value in local_vars.values() if isinstance(value, Tensor)]
    if len(created) > 10 * MAX_DRAWN_OPERATIONS:
        created = []
    return _leaves_first(named + created)


def operations(tensors: list) -> list:
    """The tensors that an operation produced, in the order of ``tensors``."""
    return [tensor for tensor in tensors if tensor.grad_fn is not None]


def _leaves_first(roots: list) -> list:
    """Every tensor reachable from ``roots``, each after its inputs (explicit stack, no recursion)."""
    order, seen = [], set()
    stack = [(root, False) for root in reversed(roots)]
    while stack:
        tensor, inputs_done = stack.pop()
        if inputs_done:
            order.append(tensor)
            continue
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        stack.append((tensor, True))
        if tensor.grad_fn is not None:
            stack.extend((parent, False) for parent in reversed(tensor.grad_fn.inputs) if id(parent) not in seen)
    return order


@dataclass(frozen=True)
class OperationProbe:
    """One operation of the graph, to rebuild alone on an engine and ask its node for gradients."""

    position: int  # among the graph's operations, leaves first
    kind: str  # the reference node's class
    inputs: tuple[np.ndarray, ...]
    requires_grad: tuple[bool, ...]
    exponent: float | None  # PowBackward's
    incoming: np.ndarray  # the gradient both nodes are handed

    def __call__(self, tt, rng) -> dict:
        """A scenario: rebuild the operation on ``tt`` and report what its node sends to its inputs."""
        tensors = [tt.Tensor(data, requires_grad=flag) for data, flag in zip(self.inputs, self.requires_grad)]
        operands = tensors if self.exponent is None else [*tensors, self.exponent]
        result = REBUILD[self.kind](*operands)
        node = result.grad_fn
        if node is None:
            return {"node": None}
        sent = node.apply(self.incoming)
        observed = {"node": type(node).__name__}
        for index, flag in enumerate(self.requires_grad):
            if flag:
                observed[f"to input {index + 1}"] = sent[index]
        return observed


def operation_probes(scenario: Scenario, seed: int) -> list[OperationProbe]:
    """A probe per operation of the scenario's graph, output first; none if one cannot be rebuilt alone."""
    tensors = graph_tensors(*capture_tensors(scenario, seed))
    found = operations(tensors)
    if len(found) > MAX_DRAWN_OPERATIONS:
        return []
    probes = []
    for position, tensor in enumerate(found):
        node = tensor.grad_fn
        kind = type(node).__name__
        if not _engine_node(node):
            continue  # a node the scenario defined: right by construction
        if kind not in REBUILD or getattr(node, "axis", None) is not None or getattr(node, "keepdims", False):
            return []  # an operation the probe cannot rebuild: it could be the culprit, so say nothing
        probes.append(OperationProbe(
            position=position, kind=kind,
            inputs=tuple(np.array(parent.data, copy=True) for parent in node.inputs),
            requires_grad=tuple(bool(parent.requires_grad) for parent in node.inputs),
            exponent=getattr(node, "exponent", None),
            # Any gradient will do; one drawn from the position alone carries nothing of the run's seed.
            incoming=np.asarray(np.random.default_rng(position).uniform(0.5, 1.5, tensor.shape)),
        ))
    return probes[::-1]


def _engine_node(node) -> bool:
    import tinytorch

    return getattr(tinytorch, type(node).__name__, None) is type(node)


def locate_culprit(scenario: Scenario, seed: int, run: Callable[[Callable, int], dict | None]) -> Diagnosis | None:
    """Which operation of ``scenario``'s graph is probably wrong on the engine that ``run`` reaches.

    ``run(probe, seed)`` runs a probe on the student's engine and returns
    what it observed (as ``run_scenario`` does), or None if it could not.
    None is returned when nothing can be said: no operation could be rebuilt,
    or a probe could not run.
    """
    probes = operation_probes(scenario, seed)
    if not probes:
        return None
    reference = reference_namespace()
    for probe in probes:  # output first
        expected = run_scenario(probe, reference, seed)
        actual = run(probe, seed)
        if actual is None or "error" in expected:
            return None
        problems = compare_results(expected, actual)
        if problems and actual.get("observed", {}).get("node", "") is None:
            return Diagnosis(probe.position, f"{probe.kind} is probably where it goes wrong: rebuilt alone, the "
                                             "operation's result has no grad_fn, so backward() cannot reach its "
                                             "inputs (the node is recorded in the operation's forward)")
        if problems:
            return Diagnosis(probe.position, f"{probe.kind} is probably where it goes wrong: rebuilt alone and "
                                             "handed the same gradient as the reference's node, it answers "
                                             "differently (" + "; ".join(problems) + ")")
    return Diagnosis(None, "every operation here, rebuilt alone and handed the same gradient, answers like the "
                           "reference's: the difference comes from backward(), from the order it walks the graph "
                           "in or how it adds up contributions (Step 2)")
