"""The notebook's given engine and tinytorch keep the same semantics.

The notebook re-implements the engine in its given cells (students read and
run it), so the two copies can drift apart.  Here every test of
test_engine_semantics.py that takes no parameters and uses only names the
notebook defines runs a second time against the notebook's engine (its
given cells and the instructor's solutions, executed in this process): the
same test code, with the engine names it reads bound to the notebook's.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest

import test_engine_semantics as semantics
import tinytorch
from autograder.assignment import load_assignment
from autograder.course import source_notebook
from autograder.scenario_runtime import ENGINE_NAMES

ROOT = Path(__file__).resolve().parents[2]


def _notebook_engine() -> dict:
    namespace: dict = {"__name__": "notebook_engine"}
    for cell in load_assignment(source_notebook(ROOT)).engine_cells:
        exec(compile(cell.source, f"<cell {cell.cell_id}>", "exec"), namespace)
    return namespace


NOTEBOOK = _notebook_engine()
# What tinytorch has and the notebook's engine does not (more operations, more Tensor methods):
# tests that use any of it are tinytorch's alone.
ONLY_IN_TINYTORCH = frozenset(
    [name for name in tinytorch.__all__ if name not in NOTEBOOK]
    + [name for name in dir(tinytorch.Tensor(0.0)) if not hasattr(NOTEBOOK["Tensor"](0.0), name)]
    + ["FUNCTION_CLASSES"]  # the list of every tinytorch Function class
)


def _names_used(code: types.CodeType) -> set[str]:
    """Global and attribute names a function's code reads, nested functions and lambdas included."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _names_used(constant)
    return names


def _portable(test) -> bool:
    return test.__code__.co_argcount == 0 and not (_names_used(test.__code__) & ONLY_IN_TINYTORCH)


def _against_the_notebook(test):
    """``test`` and the module's helpers, reading engine names from the notebook's engine."""
    rebound = dict(vars(semantics))
    rebound.update({name: NOTEBOOK[name] for name in tinytorch.__all__ if name in NOTEBOOK})
    rebound["tinytorch"] = types.SimpleNamespace(**{name: NOTEBOOK[name] for name in tinytorch.__all__
                                                    if name in NOTEBOOK})
    for name, value in list(rebound.items()):
        if isinstance(value, types.FunctionType) and value.__module__ == semantics.__name__:
            rebound[name] = types.FunctionType(value.__code__, rebound, name, value.__defaults__, value.__closure__)
    return rebound[test.__name__]


PORTABLE = [test for name, test in sorted(vars(semantics).items())
            if name.startswith("test_") and isinstance(test, types.FunctionType) and _portable(test)]


def test_most_of_the_semantics_tests_run_against_both_engines():
    # If this drops, tests were rewritten in a way that no longer runs on the notebook's engine.
    assert len(PORTABLE) >= 25, [test.__name__ for test in PORTABLE]


@pytest.mark.parametrize("test", PORTABLE, ids=lambda test: test.__name__)
def test_the_notebook_engine_passes(test):
    _against_the_notebook(test)()


def test_the_notebook_and_the_grader_name_the_same_engine_classes():
    """The notebook's check_helper lists the names a scenario's tt holds; so does scenario_runtime."""
    assert tuple(NOTEBOOK["ENGINE_NAMES"]) == ENGINE_NAMES
