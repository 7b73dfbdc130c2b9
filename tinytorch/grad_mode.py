"""Switching graph recording on and off.

Inside ``with no_grad():`` operations compute their values but record no
graph: results never require grad and hold no ``grad_fn``.  Evaluation and
optimiser updates use it, because a graph that will never be walked backward
only costs memory.
"""

_enabled = True


def is_grad_enabled() -> bool:
    """Whether operations currently record the graph."""
    return _enabled


class no_grad:
    """Context manager that stops graph recording inside its block.

    Nesting works: leaving a block restores the state that was in force when
    it was entered.  The switch is process-wide (not per thread), which is all
    a single-threaded training loop or grader needs.
    """

    def __enter__(self) -> "no_grad":
        global _enabled
        self._previous = _enabled
        _enabled = False
        return self

    def __exit__(self, *exc_info) -> None:
        global _enabled
        _enabled = self._previous
