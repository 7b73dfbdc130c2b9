"""Short demonstrations that exercise the project end to end."""

from __future__ import annotations


def engine_demo() -> str:
    """The module's worked example f(x, y) = (x + y) * (x - y) at (3, 2), on the reference engine."""
    from tinytorch import Tensor

    x = Tensor(3.0, requires_grad=True)
    y = Tensor(2.0, requires_grad=True)
    total = x + y
    difference = x - y
    f = total * difference
    f.backward()
    return "\n".join(
        [
            "f(x, y) = (x + y) * (x - y) at x = 3, y = 2",
            f"  x + y = {total.item():g}    ({total.grad_fn!r})",
            f"  x - y = {difference.item():g}    ({difference.grad_fn!r})",
            f"  f     = {f.item():g}    ({f.grad_fn!r})",
            f"  df/dx = (x - y) + (x + y) = {x.grad.item():g}",
            f"  df/dy = (x - y) - (x + y) = {y.grad.item():g}",
        ]
    )
