"""Feedback a student can act on: every test's result, and for a wrong gradient, the graph.

For a scenario whose gradients differ from the reference, the scenario is run
once more on the reference engine with its local variables captured, and its
computation graph is drawn in the module's ASCII style with the tensors whose
gradient differs marked, and the operation the grader found probably at fault
(``scenario_graph.py``).  The feedback holds only what the grader itself
produced: test titles, scenario explanations, the comparison's sentences, the
diagnosis and the drawing; never test source and never raw output of the
student's process.  It holds neither the seed nor the isolation detail
(instructor-only).  Everything in it that the submission could influence (the
comparison's sentences, the diagnosis, notes, the message, names) is escaped
by ``literal`` so that it stays literal text in feedback.md and in the HTML
made from it; so are the instructor's explanations, which hold code
(``x ** 2`` must not render as emphasis).
"""

from __future__ import annotations

from pathlib import Path

from . import literal
from .assignment import Assignment
from .results import GradeResult
from .judge import gradient_differences
from .scenario_graph import MAX_DRAWN_OPERATIONS, capture_tensors, graph_tensors, operations
from .scenarios import scenario_seed

def draw_graph(local_vars: dict, created: list, differing: set[str], culprit: int | None = None) -> str:
    """The scenario's computation graph, one operation a line.

    Marked: the tensors named in ``differing`` (their gradient differs), and
    the operation at position ``culprit`` (probably at fault).  The marks are
    short; the sentences saying how things differ are printed beside the
    drawing, so no line of it grows with the values.
    """
    from tinytorch import Tensor

    names: dict[int, str] = {}
    for name, value in local_vars.items():
        if isinstance(value, Tensor) and id(value) not in names:
            names[id(value)] = name
    order = graph_tensors(local_vars, created)
    produced = operations(order)
    if len(produced) > MAX_DRAWN_OPERATIONS:
        lines = [f"(a graph of {len(produced)} operations: too large to draw)"]
        lines += [f"  {name}.grad differs" for name in sorted(differing)]
        return "\n".join(lines)

    unnamed = iter(f"t{i}" for i in range(1, 10_000))

    def label(tensor) -> str:
        if id(tensor) not in names:
            if not tensor.requires_grad and tensor.data.size == 1:
                names[id(tensor)] = f"{tensor.data.item():g}"
            else:
                names[id(tensor)] = next(unnamed)
        return names[id(tensor)]

    def marks(name: str, position: int | None = None) -> str:
        found = []
        if position is not None and position == culprit:
            found.append("probably wrong here")
        if name in differing:
            found.append(f"{name}.grad differs")
        return "    ◄── " + "; ".join(found) if found else ""

    lines = []
    for tensor in order:
        if tensor.grad_fn is None and tensor.requires_grad:
            lines.append(f" {label(tensor)} (leaf, shape {tensor.shape})" + marks(label(tensor)))
    for position, tensor in enumerate(produced):
        inputs = [label(parent) for parent in tensor.grad_fn.inputs]
        node = f"[{type(tensor.grad_fn).__name__}]"
        out = label(tensor)
        if len(inputs) == 1:
            lines.append(f" {inputs[0]} ──► {node} ──► {out}" + marks(out, position))
        else:
            width = max(len(text) for text in inputs)
            lines.append(f" {inputs[0]:<{width}} ──┐")
            lines.append(f" {'':<{width}}   ├──► {node} ──► {out}" + marks(out, position))
            lines.append(f" {inputs[1]:<{width}} ──┘")
    return "\n".join(lines)


def explanation(summary: str) -> list[str]:
    """An instructor's explanation as Markdown paragraphs, shown as written.

    Its prose is escaped (``x ** 2`` is code, not emphasis); what it marks as
    code with backticks stays a code span.  Its line breaks are the
    docstring's wrapping, so the lines of a paragraph are joined.
    """
    lines = []
    for block in summary.split("\n\n"):
        paragraph = " ".join(line.strip() for line in block.splitlines() if line.strip())
        if not paragraph:
            continue
        # Odd-numbered pieces lie between backticks.
        pieces = paragraph.split("`")
        if len(pieces) % 2 == 0:
            pieces = [paragraph]  # an unmatched backtick: no code spans, all prose
        text = "".join(f"`{piece}`" if index % 2 else _prose(piece) for index, piece in enumerate(pieces))
        lines += [text, ""]
    return lines


def _prose(text: str) -> str:
    """``text`` escaped for Markdown, keeping the spaces around it (they separate it from code spans)."""
    if not text.strip():
        return text
    leading = " " if text[0].isspace() else ""
    trailing = " " if text[-1].isspace() else ""
    return leading + literal.markdown_inline(text) + trailing


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
            lines += explanation(outcome.summary)
            lines += [f"- {literal.markdown_inline(problem)}" for problem in outcome.problems]
            differing = set(gradient_differences(outcome.problems))
            if differing and outcome.name in scenarios:
                local_vars, created = capture_tensors(scenarios[outcome.name],
                                                      scenario_seed(outcome.name, result.seed))
                drawing = draw_graph(local_vars, created, differing, outcome.culprit)
                lines += ["", *literal.markdown_block(drawing)]
            if outcome.diagnosis:
                lines += ["", f"**Where to look:** {literal.markdown_inline(outcome.diagnosis)}"]
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
        "pre{background:#f6f8fa;padding:1rem;white-space:pre-wrap;overflow-wrap:anywhere}"
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
