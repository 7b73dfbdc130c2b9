"""``Tensor``: an ndarray that remembers how it was computed.

Every operation on tensors computes its result with numpy (the forward pass)
and, when gradients are wanted, attaches to the result a ``Function`` that
knows how to send the result's gradient back to the operation's inputs (see
``function.py``).  ``backward()`` walks those Functions from the result to the
leaves (see ``autograd.py``).

The dtype rule: floating-point data keeps its dtype, so float64 inputs stay
float64 end to end (finite-difference checks need that precision) and float32
stays float32 (speed).  Anything else (ints, bools, Python lists of ints) is
converted to float64.  A Python scalar combined with a tensor takes the
tensor's dtype, so ``x * 2`` does not turn float32 into float64; two arrays
of different float dtypes follow numpy's promotion.

When a result records a graph: outside ``no_grad()``, a result requires grad
if and only if at least one input does, and then its ``grad_fn`` is the
Function that produced it.  Otherwise it is a constant: no ``grad_fn``.
"""

from __future__ import annotations

import numpy as np

from . import grad_mode
from .autograd import run_backward
from .function import (
    AddBackward,
    DivBackward,
    ExpBackward,
    LogBackward,
    MatMulBackward,
    MeanBackward,
    MulBackward,
    NegBackward,
    PowBackward,
    ReluBackward,
    ReshapeBackward,
    SigmoidBackward,
    SubBackward,
    SumBackward,
    TanhBackward,
    TransposeBackward,
)


# Python numbers and numpy's scalar numbers: a constant operand that takes the tensor's dtype.
_SCALARS = (int, float, np.integer, np.floating)


def _as_float_array(data) -> np.ndarray:
    array = np.asarray(data)
    if array.dtype.kind != "f":  # not floating point (kind is faster than issubdtype)
        array = array.astype(np.float64)
    return array


class Tensor:
    """An n-dimensional array with automatic differentiation.

    >>> x = Tensor([2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    array([4., 6.])
    """

    __slots__ = ("data", "requires_grad", "grad", "grad_fn", "retains_grad", "__weakref__")
    # numpy should defer to Tensor's reflected operators (ndarray + Tensor).
    __array_priority__ = 1000

    def __init__(self, data, requires_grad: bool = False) -> None:
        if isinstance(data, Tensor):
            data = data.data
        self.data: np.ndarray = _as_float_array(data)
        self.requires_grad: bool = bool(requires_grad)
        self.grad: np.ndarray | None = None
        self.grad_fn = None
        self.retains_grad: bool = False

    # ----------------------------------------------------------------- basics
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        """True for tensors not produced by a recorded operation."""
        return self.grad_fn is None

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def item(self) -> float:
        """The value of a one-element tensor as a Python float."""
        return self.data.item()

    def detach(self) -> "Tensor":
        """A new leaf sharing this tensor's data, outside any graph."""
        return Tensor(self.data)

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (``.grad`` becomes None)."""
        self.grad = None

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor in later backward passes.

        Leaves that require grad keep their gradient anyway; intermediate
        results do not unless asked, to save memory (see ``autograd.py``).
        """
        if not self.requires_grad:
            raise RuntimeError("retain_grad() needs a tensor that requires grad")
        if not self.is_leaf:
            self.retains_grad = True

    def __repr__(self) -> str:
        body = np.array2string(self.data, prefix="Tensor(", separator=" ")
        extras = []
        if self.dtype != np.float64:
            extras.append(f"dtype={self.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "Tensor(" + ", ".join([body, *extras]) + ")"

    # --------------------------------------------------------------- backward
    def backward(self, gradient=None) -> None:
        """Compute the gradient of this tensor with respect to every leaf it depends on.

        ``gradient`` is d(final value)/d(self); it defaults to 1 for a
        one-element tensor.  Leaves that require grad (and tensors on which
        ``retain_grad()`` was called) *add* the result to ``.grad``: call
        ``zero_grad()`` between independent passes.  The graph is not freed,
        so backward may be called again on the same result.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() called on a tensor that does not require grad: "
                "create the leaves with Tensor(..., requires_grad=True), "
                "and do not compute the result inside no_grad()"
            )
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a one-element tensor, "
                    f"but this one has shape {self.shape}: reduce it first "
                    f"(e.g. y.sum().backward()) or pass backward(gradient=...) "
                    f"of shape {self.shape}"
                )
            gradient = np.ones_like(self.data)
        else:
            gradient = np.asarray(
                gradient.data if isinstance(gradient, Tensor) else gradient, dtype=self.dtype
            )
            if gradient.shape != self.shape:
                raise ValueError(
                    f"backward(gradient=...) needs shape {self.shape}, got {gradient.shape}"
                )
        run_backward(self, gradient)

    # ------------------------------------------------------------- operations
    def _other(self, value) -> "Tensor":
        """Turn the other operand of a binary op into a tensor (a constant if it is not one)."""
        if isinstance(value, Tensor):
            return value
        if isinstance(value, _SCALARS):
            return Tensor(np.asarray(value, dtype=self.dtype))
        return Tensor(value)

    def __add__(self, other):
        other = self._other(other)
        return _record(self.data + other.data, AddBackward, self, other)

    def __radd__(self, other):
        return self._other(other).__add__(self)

    def __sub__(self, other):
        other = self._other(other)
        return _record(self.data - other.data, SubBackward, self, other)

    def __rsub__(self, other):
        return self._other(other).__sub__(self)

    def __mul__(self, other):
        other = self._other(other)
        return _record(self.data * other.data, MulBackward, self, other)

    def __rmul__(self, other):
        return self._other(other).__mul__(self)

    def __truediv__(self, other):
        other = self._other(other)
        return _record(self.data / other.data, DivBackward, self, other)

    def __rtruediv__(self, other):
        return self._other(other).__truediv__(self)

    def __neg__(self):
        return _record(-self.data, NegBackward, self)

    def __pow__(self, exponent):
        if not isinstance(exponent, _SCALARS) or isinstance(exponent, bool):
            raise TypeError("only a constant scalar exponent is supported: x ** 2, x ** 0.5")
        return _record(self.data**exponent, PowBackward, self, exponent=exponent)

    def __matmul__(self, other):
        other = self._other(other)
        return _record(self.data @ other.data, MatMulBackward, self, other)

    def __rmatmul__(self, other):
        return self._other(other).__matmul__(self)

    def sum(self, axis=None, keepdims: bool = False) -> "Tensor":
        data = self.data.sum(axis=axis, keepdims=keepdims)
        return _record(data, SumBackward, self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims: bool = False) -> "Tensor":
        data = self.data.mean(axis=axis, keepdims=keepdims)
        count = self.data.size // max(data.size, 1)
        return _record(data, MeanBackward, self, axis=axis, keepdims=keepdims, count=count)

    def reshape(self, *shape) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _record(self.data.reshape(shape), ReshapeBackward, self)

    def transpose(self) -> "Tensor":
        """All axes reversed (the matrix transpose for 2-D tensors)."""
        return _record(np.transpose(self.data), TransposeBackward, self)

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    def relu(self) -> "Tensor":
        return _record(np.maximum(self.data, 0), ReluBackward, self)

    def exp(self) -> "Tensor":
        result = np.exp(self.data)
        return _record(result, ExpBackward, self, result=result)

    def log(self) -> "Tensor":
        return _record(np.log(self.data), LogBackward, self)

    def tanh(self) -> "Tensor":
        result = np.tanh(self.data)
        return _record(result, TanhBackward, self, result=result)

    def sigmoid(self) -> "Tensor":
        result = 1 / (1 + np.exp(-self.data))
        return _record(result, SigmoidBackward, self, result=result)


def _record(data, backward_class, *inputs, **saved) -> Tensor:
    """Wrap an op's result, and attach its graph node if gradients are wanted."""
    out = Tensor(data)
    if grad_mode.is_grad_enabled():
        for tensor in inputs:
            if tensor.requires_grad:
                out.requires_grad = True
                out.grad_fn = backward_class(*inputs, **saved)
                break
    return out
