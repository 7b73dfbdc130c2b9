"""Scenarios on the reference engine: its namespace, the seeds of their inputs, and the notebook's check.

See ``scenario_runtime.py`` for what a scenario is.  Hidden test cells of the
notebook call ``check_against_reference`` under ``nbgrader autograde``: it
runs a scenario on the notebook's engine and on the reference, and fails with
the judge's sentences (``judge.py``) when they disagree.  The trusted grader
uses the same seeds and the same judge, on what a scenario observed through
the proxies of the student's engine (``remote_engine.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import os
import secrets

from .judge import compare_results
from .scenario_runtime import EngineNamespace, run_scenario



def reference_namespace() -> EngineNamespace:
    """The reference engine ``tinytorch`` as a scenario's ``tt``."""
    import tinytorch

    return EngineNamespace(vars(tinytorch))


def fresh_base_seed() -> int:
    """A new grading run's secret: 128 bits, so that no search over seeds is feasible."""
    return secrets.randbits(128)


def scenario_seed(name: str, base_seed: int) -> int:
    """The seed a scenario's inputs are drawn with: one per scenario and grading run.

    A keyed hash of the base seed: a student sees functions of the hidden inputs
    (expected values in messages), and with an unkeyed hash of a small seed
    those could be searched back to the seed and so to every other scenario's
    inputs.
    """
    digest = hmac.new(str(base_seed).encode(), name.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:16], "big")


def default_base_seed() -> int:
    return int(os.environ.get("AUTOGRADER_SEED", "0"))


def summary(scenario) -> str:
    """The scenario's docstring: what it checks, in words a student can act on."""
    return inspect.cleandoc(scenario.__doc__ or scenario.__name__)


def check_against_reference(scenario, namespace: dict, *, base_seed: int | None = None) -> None:
    """Run ``scenario`` on the engine in ``namespace`` and on the reference; fail on any difference.

    ``namespace`` is the notebook's ``globals()``.  Raises AssertionError with
    the scenario's explanation and every difference found.
    """
    seed = scenario_seed(scenario.__name__, default_base_seed() if base_seed is None else base_seed)
    expected = run_scenario(scenario, reference_namespace(), seed)
    if "error" in expected:
        raise RuntimeError(f"the reference engine fails {scenario.__name__}: {expected['error']}")
    actual = run_scenario(scenario, EngineNamespace(namespace), seed)
    problems = compare_results(expected, actual)
    if problems:
        raise AssertionError(failure_message(summary(scenario), problems))


def failure_message(explanation: str, problems: list[str]) -> str:
    lines = [explanation, "", "What differs from the reference engine:"]
    lines += [f"  - {problem}" for problem in problems]
    return "\n".join(lines)
