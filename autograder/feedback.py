"""Feedback a student can act on: every test's result, and for a wrong gradient, the graph.

For a scenario whose gradients differ from the reference, the scenario is run
once more on the reference engine with its local variables captured, and its
computation graph is drawn in the module's ASCII style with the tensors whose
gradient differs marked, both values beside them.  The feedback holds only
what the grader itself produced: test titles, scenario explanations, the
comparison's sentences and the drawing; never test source and never raw
output of the student's process.  It holds neither the seed nor the
isolation detail (instructor-only).  Everything in it that the submission
could influence (the comparison's sentences, notes, the message, names) is
escaped by ``literal`` so that it stays literal text in feedback.md and in
the HTML made from it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from . import literal
from .assignment import Assignment, Scenario
from .results import GradeResult
from .scenarios import reference_namespace, scenario_seed

MAX_DRAWN_OPERATIONS = 24


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


def draw_graph(local_vars: dict, created: list, differing: dict[str, str]) -> str:
    """The scenario's computation graph, one operation a line, mismatches marked.

    ``differing`` maps a tensor's name to the sentence that says how its
    gradient differs.
    """
    from tinytorch import Tensor

    names: dict[int, str] = {}
    for name, value in local_vars.items():
        if isinstance(value, Tensor) and id(value) not in names:
            names[id(value)] = name
    named = [value for value in local_vars.values() if isinstance(value, Tensor)]
    if len(created) > 10 * MAX_DRAWN_OPERATIONS:
        created = []  # a huge graph: only its size is reported below
    order = _leaves_first(named + created)
    operations = [tensor for tensor in order if tensor.grad_fn is not None]
    if len(operations) > MAX_DRAWN_OPERATIONS:
        lines = [f"(a graph of {len(operations)} operations: too large to draw)"]
        lines += [f"  {name}.grad  <-- differs: {text}" for name, text in differing.items()]
        return "\n".join(lines)

    unnamed = iter(f"t{i}" for i in range(1, 10_000))

    def label(tensor) -> str:
        if id(tensor) not in names:
            if not tensor.requires_grad and tensor.data.size == 1:
                names[id(tensor)] = f"{tensor.data.item():g}"
            else:
                names[id(tensor)] = next(unnamed)
        return names[id(tensor)]

    lines = []
    for tensor in order:
        if tensor.grad_fn is None and tensor.requires_grad:
            lines.append(_marked(f" {label(tensor)} (leaf, shape {tensor.shape})", label(tensor), differing))
    for tensor in operations:
        inputs = [label(parent) for parent in tensor.grad_fn.inputs]
        node = f"[{type(tensor.grad_fn).__name__}]"
        out = label(tensor)
        if len(inputs) == 1:
            lines.append(_marked(f" {inputs[0]} ──► {node} ──► {out}", out, differing))
        else:
            width = max(len(text) for text in inputs)
            lines.append(f" {inputs[0]:<{width}} ──┐")
            lines.append(_marked(f" {'':<{width}}   ├──► {node} ──► {out}", out, differing))
            lines.append(f" {inputs[1]:<{width}} ──┘")
    return "\n".join(lines)


def _marked(line: str, name: str, differing: dict[str, str]) -> str:
    """The line, with the gradient difference of the tensor it produces beside it."""
    return f"{line}    ◄── {name}.grad differs: {differing[name]}" if name in differing else line


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


def gradient_differences(problems: list[str]) -> dict[str, str]:
    """Tensor name -> how its gradient differs, from the comparison's sentences ("x.grad: expected ...")."""
    found = {}
    for problem in problems:
        key, _, text = problem.partition(": ")
        if key.endswith(".grad") and text:
            found[key.removesuffix(".grad")] = text
    return found


def feedback_markdown(result: GradeResult, assignment: Assignment) -> str:
    scenarios = {s.name: s for test in assignment.tests for s in test.scenarios}
    lines = [
        f"# Feedback: Module 05 (Autograd), {literal.markdown_inline(result.student)}",
        "",
        f"Score: **{result.score:g} / {result.max_score:g}** · status: {literal.markdown_inline(result.status)}"
        + (f" ({literal.markdown_inline(result.message)})" if result.message else ""),
        "",
        *[f"- {literal.markdown_inline(note)}" for note in result.notes],
        "",
        "| test | points | result |",
        "| --- | ---: | --- |",
    ]
    lines += [f"| {t.title} (`{t.name}`) | {t.score:g} / {t.max_score:g} | {t.status} |" for t in result.tests]
    for test in result.tests:
        if test.status == "passed":
            continue
        lines += ["", f"## {test.title} (`{test.name}`): 0 of {test.max_score:g} points", ""]
        if not test.scenarios:
            lines += literal.markdown_block(test.output)
        for outcome in test.scenarios:
            if outcome.passed:
                continue
            lines += [outcome.summary, ""]
            lines += [f"- {literal.markdown_inline(problem)}" for problem in outcome.problems]
            differing = {name: literal.one_line(text) for name, text in gradient_differences(outcome.problems).items()}
            if differing and outcome.name in scenarios:
                local_vars, created = capture_tensors(scenarios[outcome.name],
                                                      scenario_seed(outcome.name, result.seed))
                lines += ["", *literal.markdown_block(draw_graph(local_vars, created, differing))]
            lines.append("")
    return "\n".join(lines) + "\n"


def feedback_html(markdown_text: str, title: str) -> str:
    import mistune

    # The Markdown already escapes what came from the submission; escape=True
    # is the second guard: raw HTML that slipped through is shown, not run.
    body = mistune.create_markdown(escape=True, plugins=["table"])(markdown_text)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{literal.for_html(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto}"
        "pre{background:#f6f8fa;padding:1rem;overflow-x:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .6rem}</style>"
        f"</head><body>\n{body}</body></html>\n"
    )


def write_feedback(result: GradeResult, assignment: Assignment, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    markdown_text = feedback_markdown(result, assignment)
    markdown_path = folder / "feedback.md"
    html_path = folder / "feedback.html"
    markdown_path.write_text(markdown_text, encoding="utf-8")
    html_path.write_text(feedback_html(markdown_text, f"Feedback for {result.student}"), encoding="utf-8")
    return markdown_path, html_path
