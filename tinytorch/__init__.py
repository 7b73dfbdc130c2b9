"""tinytorch: the course's reference autograd engine.

A small, readable numpy engine with the public surface the Module 05
notebook teaches (``Tensor``, ``Function``, ``no_grad``) and one ``Function``
subclass per differentiable operation.  The grader judges student code
against it, so correctness and clarity come before cleverness.
"""

from .autograd import run_backward, topological_order
from .function import (
    AddBackward,
    DivBackward,
    ExpBackward,
    Function,
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
    unbroadcast,
)
from .grad_mode import is_grad_enabled, no_grad
from .tensor import Tensor

__all__ = [
    "Tensor",
    "Function",
    "no_grad",
    "is_grad_enabled",
    "run_backward",
    "topological_order",
    "unbroadcast",
    "AddBackward",
    "SubBackward",
    "MulBackward",
    "DivBackward",
    "NegBackward",
    "PowBackward",
    "MatMulBackward",
    "SumBackward",
    "MeanBackward",
    "ReshapeBackward",
    "TransposeBackward",
    "ReluBackward",
    "ExpBackward",
    "LogBackward",
    "TanhBackward",
    "SigmoidBackward",
]
