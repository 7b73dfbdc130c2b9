"""The program that runs inside the sandbox: build the student's engine, run the scenarios.

Copied into the sandbox's scratch folder together with ``scenario_runtime.py``
and a ``job.json`` written by the grader; it imports nothing else of the
project.  It reports on the file descriptor that was stdout when it started,
one JSON object per line; the student's own prints go to a capped file
instead.  Nothing it reports is trusted: the grader parses every line,
ignores what does not fit, and compares observations with the reference
engine itself.  The runner only has to be *useful* to an honest submission:
per-cell and per-scenario time limits, errors described, work continued
after a failure.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import traceback


class CellTimeout(BaseException):
    """Raised by the alarm; a BaseException so that `except Exception` in student code lets it through."""


def main() -> int:
    job_path = sys.argv[1] if len(sys.argv) > 1 else "job.json"
    with open(job_path, encoding="utf-8") as handle:
        job = json.load(handle)
    report = _take_over_stdout()
    # Where the sandbox mounted numpy; the interpreter's own site-packages is hidden.
    sys.path[:0] = job.get("sys_path", [])

    import numpy as np

    from scenario_runtime import EngineNamespace, run_scenario

    report({"event": "start"})
    namespace = {"__name__": "__main__"}
    for cell in job["cells"]:
        run = functools.partial(_run_cell, cell["source"], f"<cell {cell['id']}>", namespace)
        report({"event": "cell", "id": cell["id"], "error": _run_limited(run, job["cell_timeout"])})
    tt = EngineNamespace(namespace)
    for test in job["tests"]:
        for scenario in test["scenarios"]:
            scope = {"np": np}
            exec(compile(scenario["source"], f"<scenario {scenario['name']}>", "exec"), scope)
            outcome: dict = {}
            run = functools.partial(_collect, outcome, run_scenario, scope[scenario["name"]], tt, scenario["seed"])
            error = _run_limited(run, job["scenario_timeout"])
            report({"event": "scenario", "test": test["id"], "scenario": scenario["name"],
                    "result": outcome if not error else {"error": error}})
    report({"event": "done"})
    return 0


def _collect(outcome: dict, run_scenario, function, tt, seed: int) -> None:
    outcome.update(run_scenario(function, tt, seed))


def _take_over_stdout():
    """Keep the real stdout for reports; send everything else the process prints to a file."""
    reports = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    output = os.open("student-output.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(output, 1)
    os.dup2(output, 2)

    def report(event: dict) -> None:
        reports.write(json.dumps(event) + "\n")
        reports.flush()

    return report


def _run_cell(source: str, name: str, namespace: dict) -> None:
    """Run a notebook cell; if it is not Python because of IPython magics, run it without them."""
    try:
        code = compile(source, name, "exec")
    except SyntaxError:
        code = compile(_python_only(source), name, "exec")
    exec(code, namespace)


def _python_only(source: str) -> str:
    """Comment out IPython's magics and shell escapes: they are not Python and do nothing for grading."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        lines.append(line[: len(line) - len(stripped)] + "# " + stripped if stripped[:1] in ("%", "!") else line)
    return "\n".join(lines)


def _run_limited(work, seconds: float) -> str | None:
    """Run ``work`` with an alarm; the error it raised as text, or None."""

    def on_alarm(signum, frame):
        raise CellTimeout(f"took longer than {seconds:g} s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        work()
        return None
    except CellTimeout as timeout:
        return f"Timeout: {timeout}"
    except BaseException as error:  # noqa: BLE001 - the student's failure is a result, even SystemExit
        frames = traceback.extract_tb(error.__traceback__)
        place = f" (in {frames[-1].name}, line {frames[-1].lineno})" if len(frames) > 1 else ""
        return f"{type(error).__name__}: {str(error)[:300]}{place}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


if __name__ == "__main__":
    sys.exit(main())
