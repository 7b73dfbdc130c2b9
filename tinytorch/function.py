"""The recorded operations: one ``Function`` subclass per differentiable op.

A ``Function`` is a node of the computation graph.  It is created by the
forward operation (see ``tensor.py``) and holds two things:

* ``inputs``: the tensors the operation read, in order.  These are the graph's
  edges; the backward pass follows them from the output towards the leaves.
* whatever else its ``apply`` needs to turn the gradient of the output into
  gradients of the inputs, and nothing more.  ``AddBackward`` needs nothing
  else: the shapes to reduce its gradient to are those of its inputs.
  ``MulBackward`` keeps the operand arrays, and only those that a gradient
  actually needs.

A Function never refers to the tensor it produced.  That keeps the graph free
of reference cycles: dropping the output frees the whole graph through
reference counting, without waiting for the cyclic garbage collector.

Broadcasting: a forward op may broadcast an input of shape (3,) against one
of shape (2, 3).  The gradient that flows back then has the broadcast shape
(2, 3), and ``unbroadcast`` sums it back to (3,).  Every op that can
broadcast calls it in its ``apply``; that is the one place where gradients are
reduced to their input's shape.
"""

from __future__ import annotations

import numpy as np


# One tuple per combination of flags, shared by every node that has it.
_SHARED_FLAGS: dict[tuple[bool, ...], tuple[bool, ...]] = {}


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched.

    A value used by broadcasting contributes to every position it was copied
    to, so its gradient is the sum over those positions.
    """
    if grad.shape == shape:
        return grad
    added_axes = grad.ndim - len(shape)
    if added_axes > 0:
        grad = grad.sum(axis=tuple(range(added_axes)))
    stretched_axes = tuple(
        axis for axis, size in enumerate(shape) if size == 1 and grad.shape[axis] != 1
    )
    if stretched_axes:
        grad = grad.sum(axis=stretched_axes, keepdims=True)
    return grad


class Function:
    """Base class of the graph nodes.

    Subclasses store what their backward needs in ``__init__`` and implement
    ``apply(grad_output)``, which returns one gradient per input, in the order
    of ``inputs``; each has the shape of its input.

    Which inputs get a gradient is decided once, when the node is recorded:
    ``needs_input_grad[i]`` is whether input i required grad then.  An input
    that did not gets ``None``, and a node saves only what the wanted
    gradients need; switching ``requires_grad`` on afterwards changes
    neither, as the input was not part of the graph when it was recorded.
    (A node with one input is recorded only when that input requires grad,
    so it always returns its gradient.)
    """

    # A node is made for every recorded operation, so its size and the cost of
    # making it are the engine's per-op overhead (benchmarks/engine.py): two
    # slots, no __weakref__, and flag tuples shared between nodes.
    __slots__ = ("inputs", "needs_input_grad")

    def __init__(self, *inputs) -> None:
        self.inputs = inputs
        # Spelled out for one and two inputs, the cases of nearly every node: cheaper than a generator.
        if len(inputs) == 1:
            flags = (inputs[0].requires_grad,)
        elif len(inputs) == 2:
            flags = (inputs[0].requires_grad, inputs[1].requires_grad)
        else:
            flags = tuple([tensor.requires_grad for tensor in inputs])
        self.needs_input_grad = _SHARED_FLAGS.setdefault(flags, flags)

    def apply(self, grad_output: np.ndarray) -> tuple[np.ndarray | None, ...]:
        raise NotImplementedError(f"{type(self).__name__} does not implement apply()")

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class AddBackward(Function):
    """z = a + b:  dz/da = 1, dz/db = 1, so the gradient passes through unchanged."""

    __slots__ = ()

    def apply(self, grad_output):
        a, b = self.inputs
        needs_a, needs_b = self.needs_input_grad
        return (
            unbroadcast(grad_output, a.shape) if needs_a else None,
            unbroadcast(grad_output, b.shape) if needs_b else None,
        )


class SubBackward(Function):
    """z = a - b:  dz/da = 1, dz/db = -1."""

    __slots__ = ()

    def apply(self, grad_output):
        a, b = self.inputs
        needs_a, needs_b = self.needs_input_grad
        return (
            unbroadcast(grad_output, a.shape) if needs_a else None,
            unbroadcast(-grad_output, b.shape) if needs_b else None,
        )


class MulBackward(Function):
    """z = a * b:  dz/da = b, dz/db = a: each gradient is scaled by the *other* operand."""

    __slots__ = ("a_data", "b_data")

    def __init__(self, a, b) -> None:
        super().__init__(a, b)
        needs_a, needs_b = self.needs_input_grad
        # a's gradient needs b's values and the other way round.
        self.a_data = a.data if needs_b else None
        self.b_data = b.data if needs_a else None

    def apply(self, grad_output):
        a, b = self.inputs
        needs_a, needs_b = self.needs_input_grad
        return (
            unbroadcast(grad_output * self.b_data, a.shape) if needs_a else None,
            unbroadcast(grad_output * self.a_data, b.shape) if needs_b else None,
        )


class DivBackward(Function):
    """z = a / b:  dz/da = 1 / b, dz/db = -a / b**2."""

    __slots__ = ("a_data", "b_data")

    def __init__(self, a, b) -> None:
        super().__init__(a, b)
        needs_a, needs_b = self.needs_input_grad
        # Both gradients divide by b; only b's needs a.
        self.a_data = a.data if needs_b else None
        self.b_data = b.data

    def apply(self, grad_output):
        a, b = self.inputs
        needs_a, needs_b = self.needs_input_grad
        return (
            unbroadcast(grad_output / self.b_data, a.shape) if needs_a else None,
            unbroadcast(-grad_output * self.a_data / self.b_data**2, b.shape) if needs_b else None,
        )


class NegBackward(Function):
    """z = -a:  dz/da = -1."""

    __slots__ = ()

    def apply(self, grad_output):
        return (-grad_output,)


class PowBackward(Function):
    """z = a ** p for a constant scalar p:  dz/da = p * a ** (p - 1)."""

    __slots__ = ("a_data", "exponent")

    def __init__(self, a, exponent: float) -> None:
        super().__init__(a)
        self.a_data = a.data
        self.exponent = exponent

    def apply(self, grad_output):
        p = self.exponent
        if p == 0:
            # x ** 0 is constant; the formula would give 0 * 0 ** -1 = nan at x = 0.
            return (np.zeros_like(grad_output * self.a_data),)
        return (grad_output * p * self.a_data ** (p - 1),)


class MatMulBackward(Function):
    """z = a @ b for 2-D (or batched) matrices:  da = g @ b.T,  db = a.T @ g.

    Batched operands broadcast over their leading axes like any other op, so
    the results are reduced back with ``unbroadcast``.  1-D operands are
    treated as a row (left) or a column (right) vector, as in numpy.
    """

    __slots__ = ("a_data", "b_data")

    def __init__(self, a, b) -> None:
        super().__init__(a, b)
        needs_a, needs_b = self.needs_input_grad
        self.a_data = a.data if needs_b else None
        self.b_data = b.data if needs_a else None

    def apply(self, grad_output):
        a, b = self.inputs
        needs_a, needs_b = self.needs_input_grad
        a_shape, b_shape = a.shape, b.shape
        # Give 1-D operands (and the gradient) the matrix shape numpy used.
        # The column axis goes in first: for a 1-D @ 1-D dot product the
        # gradient is 0-d, and the row axis can only go in front of an axis.
        g = grad_output
        if len(b_shape) == 1:
            g = np.expand_dims(g, -1)
        if len(a_shape) == 1:
            g = np.expand_dims(g, -2)
        grad_a = grad_b = None
        if needs_a:
            b_mat = self.b_data if len(b_shape) > 1 else self.b_data[:, None]
            grad_a = g @ np.swapaxes(b_mat, -1, -2)
            if len(a_shape) == 1:
                grad_a = np.squeeze(grad_a, -2)
            grad_a = unbroadcast(grad_a, a_shape)
        if needs_b:
            a_mat = self.a_data if len(a_shape) > 1 else self.a_data[None, :]
            grad_b = np.swapaxes(a_mat, -1, -2) @ g
            if len(b_shape) == 1:
                grad_b = np.squeeze(grad_b, -1)
            grad_b = unbroadcast(grad_b, b_shape)
        return grad_a, grad_b


def _restore_reduced_axes(grad, axis, keepdims: bool, input_ndim: int):
    """Put back the axes a reduction removed, so ``grad`` broadcasts against the input.

    With ``keepdims`` the axes are still there, and a full reduction gives a
    0-d gradient that broadcasts as it is; only ``axis=...`` without keepdims
    needs its axes re-inserted.
    """
    if keepdims or axis is None:
        return grad
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return np.expand_dims(grad, tuple(a % input_ndim for a in axes))


class SumBackward(Function):
    """z = a.sum(axis):  every summed element gets the gradient of its sum."""

    __slots__ = ("input_shape", "axis", "keepdims")

    def __init__(self, a, axis, keepdims: bool) -> None:
        super().__init__(a)
        self.input_shape, self.axis, self.keepdims = a.shape, axis, keepdims

    def apply(self, grad_output):
        grad = _restore_reduced_axes(grad_output, self.axis, self.keepdims, len(self.input_shape))
        return (np.broadcast_to(grad, self.input_shape),)


class MeanBackward(Function):
    """z = a.mean(axis):  like sum, divided by the number of averaged elements."""

    __slots__ = ("input_shape", "axis", "keepdims", "count")

    def __init__(self, a, axis, keepdims: bool, count: int) -> None:
        super().__init__(a)
        self.input_shape, self.axis, self.keepdims = a.shape, axis, keepdims
        self.count = count

    def apply(self, grad_output):
        grad = _restore_reduced_axes(grad_output, self.axis, self.keepdims, len(self.input_shape))
        return (np.broadcast_to(grad / self.count, self.input_shape),)


class ReshapeBackward(Function):
    """z = a.reshape(shape):  the gradient is reshaped back; no values change."""

    __slots__ = ("input_shape",)

    def __init__(self, a) -> None:
        super().__init__(a)
        self.input_shape = a.shape

    def apply(self, grad_output):
        return (np.reshape(grad_output, self.input_shape),)


class TransposeBackward(Function):
    """z = a.T (all axes reversed):  the gradient is transposed back."""

    __slots__ = ()

    def apply(self, grad_output):
        return (np.transpose(grad_output),)


class ReluBackward(Function):
    """z = max(a, 0):  the gradient passes where a > 0 and is 0 elsewhere (0 at a == 0)."""

    __slots__ = ("mask",)

    def __init__(self, a) -> None:
        super().__init__(a)
        self.mask = a.data > 0

    def apply(self, grad_output):
        return (grad_output * self.mask,)


class ExpBackward(Function):
    """z = exp(a):  dz/da = exp(a) = z, so the output values are kept."""

    __slots__ = ("result",)

    def __init__(self, a, result: np.ndarray) -> None:
        super().__init__(a)
        self.result = result

    def apply(self, grad_output):
        return (grad_output * self.result,)


class LogBackward(Function):
    """z = log(a):  dz/da = 1 / a."""

    __slots__ = ("a_data",)

    def __init__(self, a) -> None:
        super().__init__(a)
        self.a_data = a.data

    def apply(self, grad_output):
        return (grad_output / self.a_data,)


class TanhBackward(Function):
    """z = tanh(a):  dz/da = 1 - z**2."""

    __slots__ = ("result",)

    def __init__(self, a, result: np.ndarray) -> None:
        super().__init__(a)
        self.result = result

    def apply(self, grad_output):
        return (grad_output * (1 - self.result**2),)


class SigmoidBackward(Function):
    """z = 1 / (1 + exp(-a)):  dz/da = z * (1 - z)."""

    __slots__ = ("result",)

    def __init__(self, a, result: np.ndarray) -> None:
        super().__init__(a)
        self.result = result

    def apply(self, grad_output):
        return (grad_output * self.result * (1 - self.result),)
