"""The notebook's systems and thinking cells say so when the engine they measure is wrong.

The cells are executed in this process (no kernel), in notebook order, on
the instructor's solution and on validity-corpus variants; test cells are
skipped, since only what the measurement cells print is checked here.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from autograder.checks import nbgrader_meta
from autograder.variants import instructor_bodies, load_variants, submission_notebook, variant_notebook
from autograder.course import release_notebook, source_notebook

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = {variant.name: variant for variant in load_variants(ROOT / "corpus" / "validity.py")}
MEASUREMENT_CELLS = ("systems_tensor_memory", "systems_graph_depth", "systems_time", "systems_layers",
                     "thinking_vanishing", "thinking_accumulate_demo", "thinking_no_grad_demo")


def _printed_by_cell(notebook) -> dict[str, str]:
    namespace: dict = {"__name__": "__main__"}
    printed = {}
    for cell in notebook.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type != "code" or meta.get("grade"):
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(cell.source, meta.get("grade_id", "cell"), "exec"), namespace)
        printed[meta.get("grade_id")] = out.getvalue()
    return printed


def _instructor():
    import nbformat

    release = nbformat.read(release_notebook(ROOT), as_version=4)
    return submission_notebook(release, instructor_bodies(nbformat.read(source_notebook(ROOT), as_version=4)))


def test_a_correct_engine_gets_no_warning():
    printed = _printed_by_cell(_instructor())
    for cell in MEASUREMENT_CELLS:
        assert "How to read it" in printed[cell] or "layers" in printed[cell] or "backward()" in printed[cell], cell
        assert "WARNING" not in printed[cell], f"{cell}: {printed[cell]}"


@pytest.mark.parametrize("variant, cells", [
    ("mul_swapped_operands", ("systems_time", "thinking_vanishing")),
    ("no_grad_ignored", ("thinking_no_grad_demo",)),
    ("backward_overwrites_grad", ("systems_time", "thinking_accumulate_demo")),
])
def test_a_wrong_engine_is_warned_about_where_it_shows(variant, cells):
    printed = _printed_by_cell(variant_notebook(VARIANTS[variant], root=ROOT))
    for cell in cells:
        assert "WARNING" in printed[cell] and "fix the exercise whose visible tests fail" in printed[cell], \
            f"{variant}, {cell}: {printed[cell]}"


def test_a_recursive_backward_is_sent_to_step_2_not_a_traceback():
    printed = _printed_by_cell(variant_notebook(VARIANTS["backward_recursive_toposort"], root=ROOT))
    assert "Step 2: walk the graph with a loop and a stack" in printed["systems_time"]
