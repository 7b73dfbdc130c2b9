"""Every operation's gradient against central finite differences, in float64.

How a check works: the expression is run on tinytorch tensors, and its output
is sent backward with a random upstream gradient ``weights``.  That makes each
input's ``.grad`` the gradient of the scalar ``sum(output * weights)``.  The
same scalar is then computed with plain numpy, and its gradient estimated by
nudging one input element at a time by +/- EPSILON.  Random weights (rather
than ``output.sum()``) catch gradients that are right only on average, such as
a transposed or mis-broadcast one.

The expected numbers come from numpy alone, never from the engine, so a wrong
forward value or a wrong chain rule both make a check fail.  Most expressions
are written once for both engines: ``+ - * / @ **``, ``sum``, ``mean``,
``reshape``, ``transpose`` and ``.T`` mean the same on tensors and ndarrays.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from tinytorch import Tensor

# Central differences have an error of about EPSILON**2 (truncation) plus
# 1e-16 / EPSILON (rounding); 1e-6 balances the two for float64.
EPSILON = 1e-6
RTOL = 1e-6
ATOL = 1e-8


# ------------------------------------------------------------------ helpers
def numerical_gradient(loss, arrays: list[np.ndarray], index: int) -> np.ndarray:
    """Estimate d loss(*arrays) / d arrays[index] by central differences."""
    array = arrays[index]
    gradient = np.zeros_like(array)
    for position in np.ndindex(array.shape):
        original = array[position]
        array[position] = original + EPSILON
        loss_up = loss(*arrays)
        array[position] = original - EPSILON
        loss_down = loss(*arrays)
        array[position] = original
        gradient[position] = (loss_up - loss_down) / (2 * EPSILON)
    return gradient


def check_gradients(expression, *arrays, rng, numpy_expression=None) -> None:
    """Check the value and every input's gradient of ``expression`` against numpy.

    ``numpy_expression`` is the same computation on ndarrays; it defaults to
    ``expression`` itself, for expressions that read the same on both.
    """
    numpy_expression = numpy_expression or expression
    arrays = [np.array(array, dtype=np.float64) for array in arrays]
    # Tensors share memory with the array they wrap; give them copies so the
    # finite differences below cannot disturb what backward saved.
    tensors = [Tensor(array.copy(), requires_grad=True) for array in arrays]

    output = expression(*tensors)
    expected_value = numpy_expression(*arrays)
    np.testing.assert_allclose(output.data, expected_value, rtol=1e-12, atol=1e-12)

    weights = rng.standard_normal(np.shape(expected_value))
    output.backward(weights)

    def weighted_loss(*inputs):
        return float(np.sum(numpy_expression(*inputs) * weights))

    for index, tensor in enumerate(tensors):
        expected_gradient = numerical_gradient(weighted_loss, arrays, index)
        assert tensor.grad is not None, f"input {index} got no gradient"
        assert tensor.grad.shape == arrays[index].shape
        np.testing.assert_allclose(
            tensor.grad, expected_gradient, rtol=RTOL, atol=ATOL, err_msg=f"input {index}"
        )


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test's own id: the same numbers whichever tests run."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def normal(rng, shape) -> np.ndarray:
    return rng.standard_normal(shape)


def positive(rng, shape) -> np.ndarray:
    """Values in [0.5, 2]: safe for log, square roots and denominators."""
    return rng.uniform(0.5, 2.0, size=shape)


def away_from_zero(rng, shape) -> np.ndarray:
    """Values with |x| in [0.5, 2] and random signs: safe for relu's kink and 1/x."""
    return positive(rng, shape) * rng.choice([-1.0, 1.0], size=shape)


def random_shape(rng: np.random.Generator, max_ndim: int = 3) -> tuple[int, ...]:
    ndim = int(rng.integers(1, max_ndim + 1))
    return tuple(int(size) for size in rng.integers(2, 5, size=ndim))


def random_broadcast_partner(rng: np.random.Generator, shape) -> tuple[int, ...]:
    """A shape that broadcasts against ``shape``: some leading axes dropped, some sizes 1."""
    kept = shape[int(rng.integers(0, len(shape) + 1)):]
    return tuple(1 if rng.random() < 0.5 else size for size in kept)


# ------------------------------------------------------- elementwise binary
BINARY_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}

_shape_rng = np.random.default_rng(7)
SHAPE_PAIRS = [
    ((3, 4), (3, 4)),
    ((3, 1), (1, 4)),  # both sides broadcast
    ((1, 4), (3, 1)),
    ((4,), (2, 3, 4)),  # fewer axes on the left
    ((2, 3, 4), (4,)),  # fewer axes on the right
    ((), (2, 3)),  # 0-d tensor on either side
    ((2, 3), ()),
    ((1,), (2, 3)),
    ((2, 1, 4), (3, 1)),
    *[(shape, shape) for shape in (random_shape(_shape_rng) for _ in range(3))],
    *[(shape, random_broadcast_partner(_shape_rng, shape))
      for shape in (random_shape(_shape_rng) for _ in range(3))],
    *[(random_broadcast_partner(_shape_rng, shape), shape)
      for shape in (random_shape(_shape_rng) for _ in range(3))],
]


@pytest.mark.parametrize("op", BINARY_OPS)
@pytest.mark.parametrize("shapes", SHAPE_PAIRS, ids=str)
def test_binary_op_gradient(op, shapes, rng):
    a_shape, b_shape = shapes
    # Divisors are kept away from zero; the other ops take any values.
    b = away_from_zero(rng, b_shape) if op == "div" else normal(rng, b_shape)
    check_gradients(BINARY_OPS[op], normal(rng, a_shape), b, rng=rng)


# Python scalars and plain ndarrays are constants: only the tensor gets a gradient.
CONSTANT = 1.7
_constants_rng = np.random.default_rng(11)
ARRAY_3x1 = away_from_zero(_constants_rng, (3, 1))
ARRAY_2x3x4 = away_from_zero(_constants_rng, (2, 3, 4))
MATRIX_4x3 = normal(_constants_rng, (4, 3))
# name -> (expression, shape of the tensor operand)
CONSTANT_OPERAND_CASES = {
    "tensor + scalar": (lambda a: a + CONSTANT, (3, 4)),
    "scalar + tensor": (lambda a: CONSTANT + a, (3, 4)),
    "tensor - scalar": (lambda a: a - CONSTANT, (3, 4)),
    "scalar - tensor": (lambda a: CONSTANT - a, (3, 4)),
    "tensor * scalar": (lambda a: a * CONSTANT, (3, 4)),
    "scalar * tensor": (lambda a: CONSTANT * a, (3, 4)),
    "tensor / scalar": (lambda a: a / CONSTANT, (3, 4)),
    "scalar / tensor": (lambda a: CONSTANT / a, (3, 4)),
    "tensor * int": (lambda a: a * 3, (3, 4)),
    "int - tensor": (lambda a: 3 - a, (3, 4)),
    "scalar + 0-d tensor": (lambda a: CONSTANT + a, ()),
    "tensor + array, array broadcast": (lambda a: a + ARRAY_3x1, (3, 4)),
    "array - tensor, array broadcast": (lambda a: ARRAY_3x1 - a, (3, 4)),
    "array / tensor, array broadcast": (lambda a: ARRAY_3x1 / a, (3, 4)),
    "array * tensor, tensor broadcast": (lambda a: ARRAY_2x3x4 * a, (4,)),
    "tensor / array, tensor broadcast": (lambda a: a / ARRAY_2x3x4, (3, 1)),
}


@pytest.mark.parametrize("case", CONSTANT_OPERAND_CASES)
def test_constant_operand_gradient(case, rng):
    expression, tensor_shape = CONSTANT_OPERAND_CASES[case]
    check_gradients(expression, away_from_zero(rng, tensor_shape), rng=rng)


# --------------------------------------------------------------- reductions
REDUCTION_AXES = [None, 0, 1, 2, -1, -2, (0, 2), (-1, 0), (0, 1, 2)]


@pytest.mark.parametrize("keepdims", [False, True], ids=["drop_axes", "keepdims"])
@pytest.mark.parametrize("axis", REDUCTION_AXES, ids=str)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_reduction_gradient(reduction, axis, keepdims, rng):
    def expression(a):
        return getattr(a, reduction)(axis=axis, keepdims=keepdims)

    check_gradients(expression, normal(rng, (2, 3, 4)), rng=rng)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("shape", [(), (5,)], ids=str)
def test_reduction_of_small_shapes_gradient(reduction, shape, rng):
    check_gradients(lambda a: getattr(a, reduction)(), normal(rng, shape), rng=rng)


# ------------------------------------------------------------------- matmul
MATMUL_SHAPES = [
    ((3, 4), (4, 5)),  # 2-D @ 2-D
    ((4,), (4, 5)),  # 1-D @ 2-D: a row vector
    ((3, 4), (4,)),  # 2-D @ 1-D: a column vector
    # 1-D @ 1-D, a dot product.  Regression: its backward used to raise
    # AxisError (the row axis was inserted into a 0-d gradient).
    ((4,), (4,)),
    ((2, 3, 4), (4, 5)),  # batched @ one matrix shared by the batch
    ((3, 4), (2, 4, 5)),
    ((2, 3, 4), (2, 4, 5)),  # batched @ batched
    ((1, 3, 4), (2, 4, 5)),  # batch axis broadcast
    ((4,), (2, 4, 5)),
    ((2, 3, 4), (4,)),
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_gradient(shapes, rng):
    a_shape, b_shape = shapes
    check_gradients(lambda a, b: a @ b, normal(rng, a_shape), normal(rng, b_shape), rng=rng)



@pytest.mark.parametrize(
    "expression",
    [lambda a: a @ MATRIX_4x3, lambda a: MATRIX_4x3 @ a],
    ids=["tensor @ array", "array @ tensor"],
)
def test_matmul_with_constant_array_gradient(expression, rng):
    # (3, 4) fits both sides of the (4, 3) constant.
    check_gradients(expression, normal(rng, (3, 4)), rng=rng)


# --------------------------------------------------------- shape operations
# description -> (input shape, expression)
RESHAPES = {
    "(2,3,4) to (6,4)": ((2, 3, 4), lambda a: a.reshape(6, 4)),
    "(2,3,4) to (24,) as a tuple": ((2, 3, 4), lambda a: a.reshape((24,))),
    "(2,3,4) to (4,3,2), not a transpose": ((2, 3, 4), lambda a: a.reshape(4, 3, 2)),
    "(2,3,4) to (-1,2)": ((2, 3, 4), lambda a: a.reshape(-1, 2)),
    "() to (1,1)": ((), lambda a: a.reshape(1, 1)),
    "(6,) to (2,3)": ((6,), lambda a: a.reshape(2, 3)),
}


@pytest.mark.parametrize("case", RESHAPES)
def test_reshape_gradient(case, rng):
    shape, expression = RESHAPES[case]
    check_gradients(expression, normal(rng, shape), rng=rng)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("spelling", ["transpose()", ".T"])
def test_transpose_gradient(shape, spelling, rng):
    if spelling == ".T":
        check_gradients(lambda a: a.T, normal(rng, shape), rng=rng)
    else:
        check_gradients(lambda a: a.transpose(), normal(rng, shape), rng=rng)


# ---------------------------------------------------------------- unary ops
def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


# name -> (tinytorch expression, numpy expression, input values)
UNARY_OPS = {
    "neg": (lambda a: -a, lambda a: -a, normal),
    "pow 2": (lambda a: a**2, lambda a: a**2, normal),
    "pow 3": (lambda a: a**3, lambda a: a**3, normal),
    "pow 0.5": (lambda a: a**0.5, lambda a: a**0.5, positive),
    "pow -1": (lambda a: a**-1, lambda a: a**-1.0, away_from_zero),
    "pow 0": (lambda a: a**0, lambda a: a**0, away_from_zero),
    "relu": (lambda a: a.relu(), lambda a: np.maximum(a, 0), away_from_zero),
    "exp": (lambda a: a.exp(), np.exp, normal),
    "log": (lambda a: a.log(), np.log, positive),
    "tanh": (lambda a: a.tanh(), np.tanh, normal),
    "sigmoid": (lambda a: a.sigmoid(), _sigmoid, normal),
}


UNARY_SHAPES = [(), (5,), (3, 4), (2, 3, 4), *(random_shape(_shape_rng) for _ in range(2))]


@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
@pytest.mark.parametrize("op", UNARY_OPS)
def test_unary_op_gradient(op, shape, rng):
    expression, numpy_expression, make_input = UNARY_OPS[op]
    check_gradients(expression, make_input(rng, shape), rng=rng, numpy_expression=numpy_expression)
