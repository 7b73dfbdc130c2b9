"""Random expression graphs, built on tinytorch and on PyTorch from one recipe.

A *recipe* is a list of steps.  Each step names an operation, the earlier
nodes it reads (by position in the list) and its constant parameters, so the
same recipe can be played on either engine.  ``RecipeGenerator`` writes random
recipes that mix shared subexpressions, broadcasting, reductions over random
axes, matmul of every rank combination, reshapes and every unary op.  The
recipe ends by summing every node nobody used, so every leaf influences the
final scalar.

Both engines run in float64, so values and gradients must agree to rounding.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch",
    reason="PyTorch is not installed; the cross-check against torch.autograd needs it "
    "(python3 dev.py setup --with-torch)",
)

from tinytorch import Tensor  # noqa: E402  (after the skip, on purpose)

SEEDS = range(24)
STEPS_PER_GRAPH = 24
# Summation order differs between the engines (and their BLAS libraries),
# so results agree to rounding, not bit for bit.
RTOL = 1e-9
ATOL = 1e-11


# ------------------------------------------------------------------ recipes
@dataclass(frozen=True)
class Step:
    op: str
    operands: tuple[int, ...] = ()  # positions of earlier steps
    params: tuple = ()  # constants: exponent, axis, shape, leaf values ...


BINARY_OPS = ("add", "sub", "mul", "div")
SCALAR_OPS = ("add_scalar", "scalar_sub", "mul_scalar", "scalar_div")
UNARY_OPS = ("neg", "relu", "tanh", "sigmoid", "exp", "log", "pow")
LEAF_SHAPES = [(3, 4), (4,), (3, 1), (1, 4), (), (4, 3), (2, 3, 4), (4, 2)]


def broadcastable(shape_a, shape_b) -> bool:
    try:
        np.broadcast_shapes(shape_a, shape_b)
    except ValueError:
        return False
    return True


def matmul_shape(shape_a, shape_b):
    """The shape of a @ b, or None if the shapes do not fit."""
    if not shape_a or not shape_b:
        return None
    try:
        return np.matmul(np.zeros(shape_a), np.zeros(shape_b)).shape
    except ValueError:
        return None


class RecipeGenerator:
    """Writes one random recipe, keeping track of every node's shape."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.steps: list[Step] = []
        self.shapes: list[tuple[int, ...]] = []

    # Every step goes through here, so ``shapes`` always matches ``steps``.
    def add(self, op: str, operands=(), params=()) -> int:
        operand_shapes = [self.shapes[i] for i in operands]
        self.steps.append(Step(op, tuple(operands), tuple(params)))
        self.shapes.append(result_shape(op, operand_shapes, params))
        return len(self.steps) - 1

    def leaf(self, shape, requires_grad: bool = True) -> int:
        values = self.rng.standard_normal(shape)
        return self.add("leaf", params=(values, requires_grad))

    def pick(self) -> int:
        """Usually the newest node (to grow depth), otherwise any earlier one (to share)."""
        if self.rng.random() < 0.5:
            return len(self.steps) - 1
        return int(self.rng.integers(len(self.steps)))

    def choose(self, options):
        return options[int(self.rng.integers(len(options)))]

    # Domain guards: log, square roots and denominators get values >= 1.
    def at_least_one(self, node: int) -> int:
        square = self.add("mul", (node, node))
        return self.add("add_scalar", (square,), (1.0,))

    # ---------------------------------------------------------------- moves
    def binary(self) -> None:
        a = self.pick()
        partners = [
            i for i, shape in enumerate(self.shapes) if broadcastable(self.shapes[a], shape)
        ]
        b = self.choose(partners)  # may be ``a`` itself: x * x
        op = self.choose(BINARY_OPS)
        if op == "div":
            b = self.at_least_one(b)
        self.add(op, (a, b))

    def with_constant(self) -> None:
        a = self.pick()
        op = self.choose(SCALAR_OPS)
        if op == "scalar_div":
            a = self.at_least_one(a)
        constant = round(float(self.rng.uniform(-2, 2)), 2)
        self.add(op, (a,), (constant,))

    def unary(self) -> None:
        a = self.pick()
        op = self.choose(UNARY_OPS)
        params = ()
        if op == "exp":
            a = self.add("tanh", (a,))  # keeps exp's result small
        if op == "log":
            a = self.at_least_one(a)
        if op == "pow":
            exponent = self.choose([2, 3, -1, 0.5])
            if exponent in (-1, 0.5):
                a = self.at_least_one(a)
            params = (exponent,)
        self.add(op, (a,), params)

    def reduction(self) -> None:
        a = self.pick()
        ndim = len(self.shapes[a])
        axes = [None, *range(ndim), *range(-ndim, 0)]
        if ndim >= 2:
            axes.append((0, ndim - 1))
        axis = self.choose(axes)
        keepdims = bool(self.rng.random() < 0.5)
        self.add(self.choose(["sum", "mean"]), (a,), (axis, keepdims))

    def matmul(self) -> None:
        a = self.pick()
        if not self.shapes[a]:
            a = self.leaf(self.choose([(3, 4), (4,)]))
        partners = [
            i for i, shape in enumerate(self.shapes)
            if matmul_shape(self.shapes[a], shape) is not None
        ]
        if not partners or self.rng.random() < 0.4:
            inner = self.shapes[a][-1]
            new_shapes = [
                shape for shape in [(inner, 2), (inner,), (2, inner, 3)]
                if matmul_shape(self.shapes[a], shape) is not None
            ]
            partners = [self.leaf(self.choose(new_shapes))]
        self.add("matmul", (a, self.choose(partners)))

    def reshape(self) -> None:
        a = self.pick()
        shape = self.shapes[a]
        new_shape = self.choose([(-1,), shape[::-1], (1, *shape)])
        self.add("reshape", (a,), (new_shape,))

    def transpose(self) -> None:
        self.add("transpose", (self.pick(),))

    def new_leaf(self) -> None:
        requires_grad = bool(self.rng.random() < 0.7)
        self.leaf(self.choose(LEAF_SHAPES), requires_grad)

    # --------------------------------------------------------------- recipe
    def generate(self, steps: int) -> list[Step]:
        for shape in LEAF_SHAPES[:3]:
            self.leaf(shape)
        moves = [
            self.binary, self.binary, self.with_constant, self.unary, self.unary,
            self.reduction, self.matmul, self.reshape, self.transpose, self.new_leaf,
        ]
        while len(self.steps) < steps:
            self.choose(moves)()
        self.finish()
        return self.steps

    def finish(self) -> None:
        """Sum every node no step reads into one scalar, so every leaf matters."""
        used = {i for step in self.steps for i in step.operands}
        unused = [i for i in range(len(self.steps)) if i not in used]
        total = self.add("sum", (unused[0],), (None, False))
        for node in unused[1:]:
            total = self.add("add", (total, self.add("sum", (node,), (None, False))))


def result_shape(op: str, operand_shapes, params) -> tuple[int, ...]:
    if op == "leaf":
        return params[0].shape
    if op in BINARY_OPS:
        return np.broadcast_shapes(*operand_shapes)
    if op == "matmul":
        return matmul_shape(*operand_shapes)
    (shape,) = operand_shapes
    if op in ("sum", "mean"):
        axis, keepdims = params
        return np.zeros(shape).sum(axis=axis, keepdims=keepdims).shape
    if op == "reshape":
        return np.zeros(shape).reshape(params[0]).shape
    if op == "transpose":
        return shape[::-1]
    return shape  # elementwise ops with a scalar or none


# ------------------------------------------------------------------ engines
# Operators and these method names mean the same on both engines.
SHARED_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "matmul": lambda a, b: a @ b,
    "add_scalar": lambda a, c: a + c,
    "scalar_sub": lambda a, c: c - a,
    "mul_scalar": lambda a, c: a * c,
    "scalar_div": lambda a, c: c / a,
    "neg": lambda a: -a,
    "pow": lambda a, exponent: a**exponent,
    "reshape": lambda a, shape: a.reshape(shape),
    "relu": lambda a: a.relu(),
    "exp": lambda a: a.exp(),
    "log": lambda a: a.log(),
    "tanh": lambda a: a.tanh(),
    "sigmoid": lambda a: a.sigmoid(),
}

TINYTORCH_OPS = {
    **SHARED_OPS,
    "leaf": lambda values, requires_grad: Tensor(values.copy(), requires_grad=requires_grad),
    "sum": lambda a, axis, keepdims: a.sum(axis=axis, keepdims=keepdims),
    "mean": lambda a, axis, keepdims: a.mean(axis=axis, keepdims=keepdims),
    "transpose": lambda a: a.transpose(),
}

TORCH_OPS = {
    **SHARED_OPS,
    "leaf": lambda values, requires_grad: torch.tensor(
        values, dtype=torch.float64, requires_grad=requires_grad
    ),
    "sum": lambda a, axis, keepdims: a.sum(dim=axis, keepdim=keepdims),
    "mean": lambda a, axis, keepdims: a.mean(dim=axis, keepdim=keepdims),
    # tinytorch's transpose reverses all axes, like numpy's.
    "transpose": lambda a: a.permute(tuple(reversed(range(a.dim())))),
}


def play(recipe: list[Step], ops: dict) -> list:
    """Run ``recipe`` with one engine's ops; returns every node, in order."""
    nodes = []
    for step in recipe:
        operands = [nodes[i] for i in step.operands]
        nodes.append(ops[step.op](*operands, *step.params))
    return nodes


def as_numpy(value):
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return value.detach().numpy()
    return np.asarray(value)


# -------------------------------------------------------------------- tests
@pytest.mark.parametrize("seed", SEEDS)
def test_random_graph_matches_torch(seed):
    recipe = RecipeGenerator(seed).generate(STEPS_PER_GRAPH)
    tiny_nodes = play(recipe, TINYTORCH_OPS)
    torch_nodes = play(recipe, TORCH_OPS)

    # Keep a few intermediate gradients too, on both engines alike.
    retained = [
        i for i, step in enumerate(recipe)
        if step.op != "leaf" and i % 3 == 0 and tiny_nodes[i].requires_grad
    ]
    for i in retained:
        tiny_nodes[i].retain_grad()
        torch_nodes[i].retain_grad()

    for i, (tiny, reference) in enumerate(zip(tiny_nodes, torch_nodes)):
        assert tiny.requires_grad == reference.requires_grad, f"node {i}: {recipe[i].op}"
        np.testing.assert_allclose(
            tiny.data, as_numpy(reference), rtol=RTOL, atol=ATOL,
            err_msg=f"value of node {i}: {recipe[i].op}",
        )

    tiny_nodes[-1].backward()
    torch_nodes[-1].backward()

    compared = [i for i, step in enumerate(recipe) if step.op == "leaf"] + retained
    for i in compared:
        tiny_grad, torch_grad = tiny_nodes[i].grad, as_numpy(torch_nodes[i].grad)
        if torch_grad is None:
            assert tiny_grad is None, f"node {i} should have no gradient"
            continue
        assert tiny_grad is not None, f"node {i} ({recipe[i].op}) got no gradient"
        assert tiny_grad.shape == torch_grad.shape
        np.testing.assert_allclose(
            tiny_grad, torch_grad, rtol=RTOL, atol=ATOL, err_msg=f"gradient of node {i}"
        )


def test_generated_graphs_cover_the_required_features():
    """The generator must keep producing what the comparison is meant to exercise."""
    ops_seen = Counter()
    features = Counter()
    for seed in SEEDS:
        generator = RecipeGenerator(seed)
        recipe = generator.generate(STEPS_PER_GRAPH)
        uses = Counter(i for step in recipe for i in step.operands)
        features["shared subexpression"] += any(count >= 2 for count in uses.values())
        for step in recipe:
            ops_seen[step.op] += 1
            shapes = {generator.shapes[i] for i in step.operands}
            if step.op in BINARY_OPS and len(shapes) == 2:
                features["broadcasting"] += 1
            if step.op in ("sum", "mean") and step.params[0] is not None:
                features["reduction over an axis"] += 1
            if step.op in ("sum", "mean") and step.params[1]:
                features["keepdims"] += 1
            if step.op == "matmul" and 1 in {len(shape) for shape in shapes}:
                features["matmul with a 1-D operand"] += 1
            if step.op == "matmul" and 3 in {len(shape) for shape in shapes}:
                features["batched matmul"] += 1
    every_op = {"leaf", *BINARY_OPS, *SCALAR_OPS, *UNARY_OPS, "matmul", "sum", "mean",
                "reshape", "transpose"}
    assert every_op <= set(ops_seen), f"never generated: {every_op - set(ops_seen)}"
    for feature in ["shared subexpression", "broadcasting", "reduction over an axis",
                    "keepdims", "matmul with a 1-D operand", "batched matmul"]:
        assert features[feature] >= 3, f"too few graphs with {feature}"

