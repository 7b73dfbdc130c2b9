"""The backward pass: walk the graph once, in topological order.

Two rules make the walk correct and linear in the size of the graph:

1. A tensor passes its gradient on only after *every* tensor that used it has
   contributed.  In ``y = x * 3; a = y * 2; b = y * 5; (a + b).backward()``
   the gradient of ``y`` is 2 + 5 = 7, and only then does ``y`` hand 7 * 3 = 21
   to ``x``.  Propagating after the first contribution gives ``x`` a wrong 6.
   Reverse topological order (every consumer before what it consumes)
   guarantees the rule.
2. Each node's ``apply`` runs exactly once per backward pass, with the sum of
   all contributions.  Following every path separately instead costs time
   exponential in the number of shared subexpressions (``z = z + z`` fifty
   times has 2**50 paths; one pass over its 51 nodes is enough).

The order is computed with an explicit stack rather than recursion, so a
graph deeper than Python's recursion limit (1,000 frames by default) works:
a chain of a million operations is fine.

Which tensors keep a gradient: leaves that require grad (the parameters and
inputs a user created), and non-leaf tensors on which ``retain_grad()`` was
called.  Intermediate results do not, as in PyTorch: their gradients are only
needed during the pass, and keeping them would hold one array per operation
alive for as long as the graph lives.  Kept gradients *accumulate* across
backward calls until ``zero_grad()``.
"""

from __future__ import annotations

import numpy as np


def topological_order(root) -> list:
    """Tensors reachable from ``root`` through inputs that needed a gradient when recorded
    (``Function.needs_input_grad``), each after all its consumers.

    Depth-first post-order with an explicit stack: a tensor is appended once
    all of its inputs have been, and the list is reversed at the end.
    """
    order = []
    visited = set()
    stack = [(root, False)]
    while stack:
        tensor, inputs_done = stack.pop()
        if inputs_done:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        node = tensor.grad_fn
        if node is not None:
            needs_input_grad = node.needs_input_grad
            for index, parent in enumerate(node.inputs):
                if needs_input_grad[index] and id(parent) not in visited:
                    stack.append((parent, False))
    order.reverse()
    return order


def run_backward(root, gradient: np.ndarray) -> None:
    """Propagate ``gradient`` (d root / d root) to every tensor ``root`` depends on."""
    # Gradients still being summed, keyed by tensor id.  The graph keeps every
    # tensor alive during the pass, so ids cannot be reused meanwhile.
    pending = {id(root): gradient}
    for tensor in topological_order(root):
        grad = pending.pop(id(tensor), None)
        if grad is None:
            continue  # nothing reached this tensor (all its consumers gave None)
        if tensor.is_leaf or tensor.retains_grad:
            _accumulate(tensor, grad)
        if tensor.grad_fn is None:
            continue
        # apply() gives None to every input that needed no gradient when recorded.
        for parent, parent_grad in zip(tensor.grad_fn.inputs, tensor.grad_fn.apply(grad)):
            if parent_grad is None:
                continue
            if id(parent) in pending:
                # A new array, never an in-place +=: the pending array may be
                # the very one another input was handed (AddBackward passes
                # its gradient through unchanged).
                pending[id(parent)] = pending[id(parent)] + parent_grad
            else:
                pending[id(parent)] = parent_grad


def _accumulate(tensor, grad: np.ndarray) -> None:
    """Add ``grad`` into ``tensor.grad``, which is always an array of the tensor's own."""
    if tensor.grad is None:
        # Copy: ``grad`` may be shared with other tensors or be a read-only
        # broadcast view; ``.grad`` must be an array no other tensor sees.
        tensor.grad = np.array(grad, dtype=tensor.dtype, copy=True)
    else:
        # asarray: adding two 0-d arrays gives a numpy scalar, not an array.
        tensor.grad = np.asarray(tensor.grad + grad, dtype=tensor.dtype)
