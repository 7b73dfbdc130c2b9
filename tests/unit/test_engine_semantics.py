"""The engine's documented behaviour, one rule per test.

Expected values here are worked out by hand from the chain rule or from the
documentation (docstrings of ``tinytorch``), never read off the engine.
"""

from __future__ import annotations

import gc
import inspect
import sys
import weakref
from collections import Counter

import numpy as np
import pytest

import tinytorch
from tinytorch import (
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
    Tensor,
    TransposeBackward,
    is_grad_enabled,
    no_grad,
)

FUNCTION_CLASSES = [
    AddBackward, SubBackward, MulBackward, DivBackward, NegBackward, PowBackward,
    MatMulBackward, SumBackward, MeanBackward, ReshapeBackward, TransposeBackward,
    ReluBackward, ExpBackward, LogBackward, TanhBackward, SigmoidBackward,
]


def leaf(values, dtype=np.float64) -> Tensor:
    return Tensor(np.array(values, dtype=dtype), requires_grad=True)


@pytest.fixture
def apply_calls(monkeypatch) -> Counter:
    """Count how often each graph node's ``apply`` runs (keyed by the node)."""
    calls = Counter()
    for function_class in FUNCTION_CLASSES:
        original_apply = function_class.apply

        def counting_apply(node, grad_output, original_apply=original_apply):
            calls[node] += 1
            return original_apply(node, grad_output)

        monkeypatch.setattr(function_class, "apply", counting_apply)
    return calls


# ------------------------------------------------------------ backward errors
def test_backward_on_non_scalar_without_gradient_says_what_to_do():
    y = leaf([1.0, 2.0]) * 3
    with pytest.raises(RuntimeError) as error:
        y.backward()
    message = str(error.value)
    assert "(2,)" in message  # the offending shape
    assert "sum()" in message and "gradient=" in message  # the two ways out


def test_backward_on_tensor_that_does_not_require_grad_raises():
    constant = Tensor([1.0, 2.0]).sum()
    with pytest.raises(RuntimeError, match="requires_grad=True"):
        constant.backward()


def test_backward_on_result_computed_under_no_grad_raises():
    x = leaf([1.0, 2.0])
    with no_grad():
        y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="no_grad"):
        y.backward()


@pytest.mark.parametrize("wrong_shape", [(3,), (2, 1), (1, 2), ()], ids=str)
def test_backward_with_gradient_of_wrong_shape_raises(wrong_shape):
    y = leaf([1.0, 2.0]) * 3
    with pytest.raises(ValueError, match=r"\(2,\)"):
        y.backward(np.ones(wrong_shape))


def test_backward_with_explicit_gradient_scales_the_result():
    x = leaf([1.0, 2.0])
    (x * 3).backward(np.array([10.0, 100.0]))
    np.testing.assert_array_equal(x.grad, [30.0, 300.0])


def test_backward_accepts_a_tensor_as_gradient():
    x = leaf([1.0, 2.0])
    (x * 3).backward(Tensor([1.0, -1.0]))
    np.testing.assert_array_equal(x.grad, [3.0, -3.0])


# ---------------------------------------------------- gradient bookkeeping
def test_leaf_gradients_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    (x * x).sum().backward()  # d/dx x**2 = 2x
    np.testing.assert_array_equal(x.grad, [3.0 + 2.0, 3.0 + 4.0])


def test_backward_twice_on_same_graph_doubles_the_gradient():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    y.backward()
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])


def test_zero_grad_resets_to_none_and_next_backward_starts_fresh():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    x.zero_grad()
    assert x.grad is None
    (x * 5).sum().backward()
    np.testing.assert_array_equal(x.grad, [5.0, 5.0])


def test_accumulated_gradient_of_0d_leaf_stays_an_array():
    # Regression: the second accumulation turned a 0-d .grad into a numpy
    # scalar (0-d array + 0-d array gives a scalar), which cannot be updated
    # in place like every other .grad.
    x = leaf(2.0)
    (x * 3).backward()
    (x * 3).backward()
    assert isinstance(x.grad, np.ndarray)
    assert x.grad.shape == ()
    assert x.grad == 6.0


def test_grad_is_a_writable_array_of_the_leafs_shape_and_dtype():
    # A sum's gradient is a read-only broadcast view; .grad must not be.
    x = leaf(np.ones((2, 3)), dtype=np.float32)
    x.sum().backward()
    assert x.grad.shape == (2, 3) and x.grad.dtype == np.float32
    x.grad += 1  # would raise on a read-only view
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 2.0))


def test_two_inputs_of_an_add_do_not_share_a_gradient_array():
    # AddBackward hands the same gradient to both inputs.
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).sum().backward()
    a.grad += 1
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])
    np.testing.assert_array_equal(a.grad, [2.0, 2.0])


def test_x_plus_x_gets_its_own_gradient_not_the_retained_one():
    x = leaf([1.0, 2.0])
    y = x + x
    y.retain_grad()
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])
    x.grad += 1
    np.testing.assert_array_equal(y.grad, [1.0, 1.0])


def test_x_plus_x_leaves_the_callers_gradient_untouched():
    # Both contributions to x arrive as the very same array; summing them in
    # place would write into the caller's array.
    x = leaf([1.0, 2.0])
    upstream = np.array([1.0, 1.0])
    (x + x).backward(upstream)
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])
    np.testing.assert_array_equal(upstream, [1.0, 1.0])


def test_leaf_gradient_is_not_the_callers_gradient_array():
    x = leaf([1.0, 2.0])
    upstream = np.array([1.0, 1.0])
    (x + 0).backward(upstream)
    upstream += 100
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


def test_non_leaf_tensors_keep_no_gradient():
    x = leaf([1.0, 2.0])
    y = x * 3
    z = y.exp()
    z.sum().backward()
    assert y.grad is None and z.grad is None
    assert x.grad is not None


def test_retain_grad_keeps_the_gradient_of_a_non_leaf():
    x = leaf([1.0, 2.0])
    y = x * 3
    y.retain_grad()
    (y * y).sum().backward()  # d/dy y**2 = 2y = 6x
    np.testing.assert_array_equal(y.grad, [6.0, 12.0])
    np.testing.assert_array_equal(x.grad, [18.0, 36.0])
    assert y.retains_grad


def test_retain_grad_on_a_leaf_changes_nothing():
    # Leaves keep their gradient anyway; like PyTorch, the flag stays False.
    x = leaf([1.0, 2.0])
    x.retain_grad()
    assert x.retains_grad is False
    (x * 2).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])


def test_retain_grad_on_a_tensor_that_does_not_require_grad_raises():
    with pytest.raises(RuntimeError):
        Tensor([1.0]).retain_grad()


def test_constant_inputs_get_no_gradient():
    x, constant = leaf([1.0, 2.0]), Tensor([3.0, 4.0])
    (x * constant).sum().backward()
    assert constant.grad is None
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_relu_gradient_at_exactly_zero_is_zero():
    # The documented choice (and PyTorch's); finite differences cannot check it.
    x = leaf([-1.0, 0.0, 2.0])
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])


# ------------------------------------------------------------ graph shapes
def test_diamond_sums_both_paths_before_going_further(apply_calls):
    x = leaf(1.0)
    y = x * 3
    a = y * 2
    b = y * 5
    (a + b).backward()
    assert x.grad == 21.0  # (2 + 5) * 3
    assert set(apply_calls.values()) == {1}
    assert len(apply_calls) == 4  # y, a, b and a + b


def test_fifty_nested_doublings_run_each_node_once(apply_calls):
    x = leaf(1.0)
    z = x
    for _ in range(50):
        z = z + z
    z.backward()
    assert x.grad == 2.0**50  # exact in float64
    assert len(apply_calls) == 50
    assert set(apply_calls.values()) == {1}


def test_node_reached_directly_and_through_a_longer_path_runs_once(apply_calls):
    # y feeds the output both directly and through two more nodes, so a
    # walk that visits y too early would have to run it twice.
    x = leaf(0.5)
    y = x * 3
    out = y + (y * 2).exp()  # 3x + exp(6x)
    out.backward()
    assert x.grad == pytest.approx(3 + 6 * np.exp(3.0), rel=1e-15)
    assert len(apply_calls) == 4
    assert set(apply_calls.values()) == {1}


def test_hundred_thousand_op_chain_backward_needs_no_recursion():
    depth = 100_000
    assert depth > sys.getrecursionlimit()
    x = leaf([1.0, 2.0])
    z = x
    for _ in range(depth):
        z = z + x  # z = (k + 1) * x after k steps
    z.sum().backward()
    np.testing.assert_array_equal(x.grad, [depth + 1.0, depth + 1.0])
    del z  # freeing a chain this deep must not crash either


def test_backward_and_freeing_work_far_deeper_than_the_recursion_limit():
    """With the limit set just above the current stack depth, a chain 50 times
    deeper than that limit still works: backward uses no frame per node."""
    stack_depth = 0
    frame = inspect.currentframe()
    while frame is not None:
        stack_depth += 1
        frame = frame.f_back
    old_limit = sys.getrecursionlimit()
    new_limit = stack_depth + 60
    chain_length = 50 * new_limit
    x = leaf([1.0, -1.0])
    sys.setrecursionlimit(new_limit)
    try:
        z = x
        for _ in range(chain_length):
            z = z * 1.0
        z = z.tanh()
        z.sum().backward()
        del z
    finally:
        sys.setrecursionlimit(old_limit)
    expected = 1 - np.tanh([1.0, -1.0]) ** 2
    np.testing.assert_allclose(x.grad, expected, rtol=1e-15)


def test_graph_has_no_reference_cycles():
    """Dropping the output frees the whole graph by reference counting alone."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        nodes_before = _live_nodes()
        x, w = leaf(np.ones((2, 3))), leaf(np.full((3, 2), 0.5))
        # Every op once, with a retained gradient and a backward pass.
        h = ((x @ w).relu() + 1.0).log() * 2 - x.sum(axis=1, keepdims=True).exp()
        h.retain_grad()
        g = (h / 3.0).tanh().sigmoid().reshape(4).T.mean() ** 2
        out = -(g + (h.transpose() ** 2).sum(axis=0).mean())
        out.backward()
        intermediates = [h, g, out]
        nodes = list(_all_graph_nodes(out))
        assert {type(node) for node in nodes} == set(FUNCTION_CLASSES)
        watchers = [weakref.ref(item) for item in intermediates]
        del h, g, out, intermediates, nodes
        dead = [watcher() is None for watcher in watchers]
        assert all(dead), f"{dead.count(False)} of {len(dead)} tensors survived"
        # Nodes take no weak references (a slot per node would cost memory): count them among all objects.
        assert _live_nodes() == nodes_before, f"{_live_nodes() - nodes_before} graph nodes survived"
        assert x.grad is not None  # the leaves themselves are still ours
    finally:
        if gc_was_enabled:
            gc.enable()


def _live_nodes() -> int:
    # type(), not isinstance(): isinstance reads __class__, which some modules (torch) warn about.
    return sum(issubclass(type(o), Function) for o in gc.get_objects())


def _all_graph_nodes(root: Tensor):
    """Every Function reachable from ``root``, each once."""
    seen = set()
    stack = [root]
    while stack:
        tensor = stack.pop()
        node = tensor.grad_fn
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        stack.extend(node.inputs)


# ------------------------------------------------------------------ no_grad
def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with no_grad():
        y = (x * 2 + 1).exp().sum()
    assert y.requires_grad is False
    assert y.grad_fn is None
    assert y.is_leaf
    np.testing.assert_allclose(y.data, np.exp([3.0, 5.0]).sum())


def test_no_grad_nesting_restores_the_outer_state():
    assert is_grad_enabled()
    with no_grad():
        with no_grad():
            assert not is_grad_enabled()
        assert not is_grad_enabled()  # still inside the outer block
    assert is_grad_enabled()


def test_no_grad_restores_recording_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            raise ZeroDivisionError
    assert is_grad_enabled()
    assert (leaf([1.0]) * 2).requires_grad


@pytest.mark.parametrize("a_requires", [False, True])
@pytest.mark.parametrize("b_requires", [False, True])
def test_result_requires_grad_iff_an_input_does(a_requires, b_requires):
    a = Tensor([1.0, 2.0], requires_grad=a_requires)
    b = Tensor([3.0, 4.0], requires_grad=b_requires)
    for result in (a + b, a * b, a @ b, (a - b).exp()):
        assert result.requires_grad == (a_requires or b_requires)
        assert (result.grad_fn is not None) == (a_requires or b_requires)


def test_requires_grad_does_not_propagate_from_scalars_or_arrays():
    a = Tensor([1.0, 2.0])
    assert not (a * 2).requires_grad
    assert not (np.ones(2) + a).requires_grad


# -------------------------------------------------------------------- dtype
# Each expression takes a tensor of positive values (safe for log and **0.5).
DTYPE_EXPRESSIONS = {
    "x * 2": lambda x: x * 2,
    "2 * x": lambda x: 2 * x,
    "x + 0.5": lambda x: x + 0.5,
    "1 - x": lambda x: 1 - x,
    "x / 3": lambda x: x / 3,
    "3 / x": lambda x: 3 / x,
    "x * x": lambda x: x * x,
    "-x": lambda x: -x,
    "x ** 2": lambda x: x**2,
    "x ** 0.5": lambda x: x**0.5,
    "x @ x.T": lambda x: x @ x.T,
    "sum": lambda x: x.sum(axis=0),
    "mean": lambda x: x.mean(),
    "reshape": lambda x: x.reshape(-1),
    "relu": lambda x: x.relu(),
    "exp": lambda x: x.exp(),
    "log": lambda x: x.log(),
    "tanh": lambda x: x.tanh(),
    "sigmoid": lambda x: x.sigmoid(),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("expression", DTYPE_EXPRESSIONS)
def test_float_dtype_is_kept_in_results_and_gradients(expression, dtype):
    x = leaf([[0.5, 1.0], [1.5, 2.0]], dtype=dtype)
    result = DTYPE_EXPRESSIONS[expression](x)
    assert result.dtype == dtype
    result.sum().backward()
    assert x.grad.dtype == dtype


def test_float32_leaf_gets_float32_gradient_through_float64_ops():
    x32 = leaf([1.0, 2.0], dtype=np.float32)
    y64 = leaf([3.0, 4.0], dtype=np.float64)
    product = x32 * y64
    assert product.dtype == np.float64  # numpy's promotion
    product.sum().backward()
    assert x32.grad.dtype == np.float32 and y64.grad.dtype == np.float64


def test_explicit_gradient_takes_the_tensors_dtype():
    x = leaf([1.0, 2.0], dtype=np.float32)
    (x * 2).backward(np.array([1.0, 1.0], dtype=np.float64))
    assert x.grad.dtype == np.float32


@pytest.mark.parametrize(
    "data",
    [[1, 2], np.array([1, 2], dtype=np.int32), np.array([True, False]), 3],
    ids=["list of ints", "int32 array", "bool array", "python int"],
)
def test_non_float_data_becomes_float64(data):
    assert Tensor(data).dtype == np.float64


# ------------------------------------------------------- small conveniences
def test_detach_shares_data_and_leaves_the_graph():
    x = leaf([1.0, 2.0])
    y = x * 3
    d = y.detach()
    assert d.data is y.data
    assert d.requires_grad is False and d.grad_fn is None and d.is_leaf
    (d * x).sum().backward()  # no gradient may flow into y's graph
    np.testing.assert_array_equal(x.grad, [3.0, 6.0])


def test_numpy_returns_the_underlying_array():
    x = Tensor([1.0, 2.0])
    assert x.numpy() is x.data
    assert isinstance(x.numpy(), np.ndarray)


def test_item_returns_a_python_float():
    value = (leaf([1.5, 2.0]) * 2).sum().item()
    assert type(value) is float and value == 7.0


def test_item_of_a_multi_element_tensor_raises():
    with pytest.raises(ValueError):
        Tensor([1.0, 2.0]).item()


def test_repr_format():
    x = leaf([1.0, 2.0])
    assert repr(Tensor([1.0, 2.0])) == "Tensor([1. 2.])"
    assert repr(x) == "Tensor([1. 2.], requires_grad=True)"
    assert repr(x * x) == "Tensor([1. 4.], grad_fn=<MulBackward>)"
    assert repr(Tensor(np.array([1.0], dtype=np.float32))) == "Tensor([1.], dtype=float32)"
    assert repr(Tensor(3.0)) == "Tensor(3.)"
    assert repr(leaf([1.0]).sum()) == "Tensor(1., grad_fn=<SumBackward>)"


def test_is_leaf():
    x = leaf([1.0])
    assert x.is_leaf and Tensor([1.0]).is_leaf
    assert not (x * 2).is_leaf
    with no_grad():
        assert (x * 2).is_leaf
    assert (x * 2).detach().is_leaf


def test_shape_and_ndim():
    x = Tensor(np.zeros((2, 3)))
    assert x.shape == (2, 3) and x.ndim == 2


# ----------------------------------------------- grad_fn types and edges
def _is_constant(value):
    """Matches the constant tensor an op wraps a scalar or array operand in."""

    def check(tensor):
        return (
            isinstance(tensor, Tensor)
            and not tensor.requires_grad
            and np.array_equal(tensor.data, value)
        )

    return check


A_VALUES = np.array([[1.0, 2.0], [3.0, 4.0]])
ARRAY = np.array([[5.0, 6.0], [7.0, 8.0]])

# name -> (expression of a and b, Function class, expected inputs)
# An expected input is "a", "b", or a check for a constant operand.
EDGE_CASES = {
    "a + b": (lambda a, b: a + b, AddBackward, ["a", "b"]),
    "a + 2": (lambda a, b: a + 2, AddBackward, ["a", _is_constant(2.0)]),
    "2 + a": (lambda a, b: 2 + a, AddBackward, [_is_constant(2.0), "a"]),
    "array + a": (lambda a, b: ARRAY + a, AddBackward, [_is_constant(ARRAY), "a"]),
    "a - b": (lambda a, b: a - b, SubBackward, ["a", "b"]),
    "2 - a": (lambda a, b: 2 - a, SubBackward, [_is_constant(2.0), "a"]),
    "a * b": (lambda a, b: a * b, MulBackward, ["a", "b"]),
    "a * 2": (lambda a, b: a * 2, MulBackward, ["a", _is_constant(2.0)]),
    "3 * a": (lambda a, b: 3 * a, MulBackward, [_is_constant(3.0), "a"]),
    "a / b": (lambda a, b: a / b, DivBackward, ["a", "b"]),
    "1 / a": (lambda a, b: 1 / a, DivBackward, [_is_constant(1.0), "a"]),
    "-a": (lambda a, b: -a, NegBackward, ["a"]),
    "a ** 3": (lambda a, b: a**3, PowBackward, ["a"]),
    "a @ b": (lambda a, b: a @ b, MatMulBackward, ["a", "b"]),
    "array @ a": (lambda a, b: ARRAY @ a, MatMulBackward, [_is_constant(ARRAY), "a"]),
    "a.sum()": (lambda a, b: a.sum(), SumBackward, ["a"]),
    "a.mean(axis=0)": (lambda a, b: a.mean(axis=0), MeanBackward, ["a"]),
    "a.reshape(4)": (lambda a, b: a.reshape(4), ReshapeBackward, ["a"]),
    "a.transpose()": (lambda a, b: a.transpose(), TransposeBackward, ["a"]),
    "a.T": (lambda a, b: a.T, TransposeBackward, ["a"]),
    "a.relu()": (lambda a, b: a.relu(), ReluBackward, ["a"]),
    "a.exp()": (lambda a, b: a.exp(), ExpBackward, ["a"]),
    "a.log()": (lambda a, b: a.log(), LogBackward, ["a"]),
    "a.tanh()": (lambda a, b: a.tanh(), TanhBackward, ["a"]),
    "a.sigmoid()": (lambda a, b: a.sigmoid(), SigmoidBackward, ["a"]),
}


def test_every_function_class_has_an_edge_case():
    assert {case[1] for case in EDGE_CASES.values()} == set(FUNCTION_CLASSES)
    assert set(FUNCTION_CLASSES) == {
        value
        for value in vars(tinytorch).values()
        if isinstance(value, type) and issubclass(value, Function) and value is not Function
    }


@pytest.mark.parametrize("case", EDGE_CASES)
def test_grad_fn_type_and_input_edges(case):
    expression, function_class, expected_inputs = EDGE_CASES[case]
    a = Tensor(A_VALUES.copy(), requires_grad=True)
    b = Tensor(ARRAY.copy(), requires_grad=True)
    result = expression(a, b)
    assert type(result.grad_fn) is function_class
    assert repr(result.grad_fn) == f"<{function_class.__name__}>"
    inputs = result.grad_fn.inputs
    assert len(inputs) == len(expected_inputs)
    for actual, expected in zip(inputs, expected_inputs):
        if expected == "a":
            assert actual is a
        elif expected == "b":
            assert actual is b
        else:
            assert expected(actual), f"unexpected constant operand {actual!r}"


@pytest.mark.parametrize("op", [lambda a, b: a * b, lambda a, b: a / b, lambda a, b: a @ b,
                                lambda a, b: a + b, lambda a, b: a - b],
                         ids=["mul", "div", "matmul", "add", "sub"])
def test_requires_grad_switched_on_after_recording_does_not_crash(op):
    # Regression: nodes saved operands by the flags at record time but read the
    # flags again in apply(), so turning requires_grad on afterwards crashed;
    # and + and - read the live flags, so b got a gradient: one rule now
    # (Function.needs_input_grad, decided when the node is recorded).
    a = Tensor(np.arange(1.0, 5.0).reshape(2, 2), requires_grad=True)
    b = Tensor(np.full((2, 2), 2.0))
    out = op(a, b).sum()
    b.requires_grad = True
    out.backward()
    assert a.grad is not None and a.grad.shape == (2, 2)
    assert b.grad is None  # b was a constant when the graph was recorded


def test_power_zero_has_zero_gradient_even_at_zero():
    # Regression: p * x ** (p - 1) is 0 * inf = nan at x = 0 for p = 0.
    x = Tensor(np.array([0.0, 2.0]), requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


@pytest.mark.parametrize("scalar", [np.int64(3), np.float64(3.0), np.float32(3.0), 3, 3.0])
def test_numpy_scalars_are_constants_of_the_tensors_dtype(scalar):
    # Regression: np.int64 was treated as an array and promoted float32 to float64.
    x = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    y = x * scalar
    assert y.dtype == np.float32
    (x ** scalar).sum().backward()
    assert x.grad.dtype == np.float32
