"""The validity corpus: implementations of the three exercises, and the tests each must lose.

Each Variant replaces solution regions of the instructor notebook, keyed by
the solution cell's grade_id, one string per ### BEGIN SOLUTION region in
that cell (None keeps the instructor's code for that region):
- exercise_backward: [body of backward after the given argument checks]
- exercise_add: [AddBackward.forward body, AddBackward.apply body]
- exercise_mul: [MulBackward.forward body, MulBackward.apply body]

A variant may also add code cells, as a student adds them in Jupyter
(``added_cells``: a helper, an import, a scratch cell that raises).

A wrong variant is one plausible student mistake; its ``loses`` lists every
test cell it must fail, and nothing else.  A correct variant (name starting
with ``correct_``) is another way of writing the exercise and loses nothing.

test_complex_graph_visible runs +, * and backward() together on two small
graphs (f = (x + y) * (x - y) at x = 3, y = 2, and the diamond y = x * 3,
f = y * 2 + y * 5), so any mistake that changes the values of + or *, or of
backward() on a shared intermediate, loses it too.

Every rule of the exercises has a visible check on a small example (issue 8):
test_backward_visible checks a 3,000-deep chain, apply() counted on a node
with two inputs, which tensors keep .grad over two calls, and no shared .grad
arrays; test_mul_visible checks no_grad().  So a mistake that a hidden test
catches on random inputs also loses the visible test of its exercise.
"""

from autograder.variants import Variant

# The test cells, in notebook order (for reading the sets below).
BACKWARD_VISIBLE = "test_backward_visible"
BACKWARD_VALUES = "hidden_backward_values"
BACKWARD_ORDER = "hidden_backward_order"
LINEAR_TIME = "hidden_backward_linear_time"
DEEP = "hidden_backward_deep"
ACCUMULATION = "hidden_accumulation"
INTERMEDIATE_GRADS = "hidden_intermediate_grads"
NO_SHARED_GRADIENTS = "hidden_no_shared_gradients"
ADD_VISIBLE = "test_add_visible"
ADD_VALUES = "hidden_add_values"
ADD_BROADCAST = "hidden_add_broadcast"
MUL_VISIBLE = "test_mul_visible"
MUL_VALUES = "hidden_mul_values"
MUL_BROADCAST = "hidden_mul_broadcast"
GRAPH_STRUCTURE = "hidden_graph_structure"
GRAPH_REQUIRES_GRAD = "hidden_graph_requires_grad"
GRAPH_NO_GRAD = "hidden_graph_no_grad"
COMPLEX_GRAPH = "test_complex_graph_visible"

# The first half of several wrong backward() bodies: a correct topological
# order built with an explicit stack (the mistakes are in the second half).
_TOPOLOGICAL_ORDER = """\
order, seen = [], set()
stack = [(self, False)]
while stack:
    node, expanded = stack.pop()
    if expanded:
        order.append(node)
        continue
    if id(node) in seen:
        continue
    seen.add(id(node))
    stack.append((node, True))
    if node.grad_fn is not None:
        for parent in node.grad_fn.inputs:
            if parent.requires_grad:
                stack.append((parent, False))
order.reverse()
"""

VARIANTS = [
    # ------------------------------------------------------------------
    # Wrong implementations of backward()
    # ------------------------------------------------------------------
    Variant(
        name="backward_overwrites_grad",
        description="backward() assigns each leaf's .grad instead of adding to it, so a second call forgets the first",
        bodies={"exercise_backward": [_TOPOLOGICAL_ORDER + """\
grads = {id(self): gradient}
for node in order:
    grad = grads.pop(id(node), None)
    if grad is None:
        continue
    if node.is_leaf or node.retains_grad:
        node.grad = np.array(grad, copy=True)
    if node.grad_fn is not None:
        for parent, g in zip(node.grad_fn.inputs, node.grad_fn.apply(grad)):
            if g is not None and parent.requires_grad:
                grads[id(parent)] = grads[id(parent)] + g if id(parent) in grads else g
"""]},
        loses=frozenset({BACKWARD_VISIBLE, ACCUMULATION, INTERMEDIATE_GRADS}),
    ),
    Variant(
        name="backward_per_path_recursion",
        description="backward() recursively sends each gradient down every path separately: right values, "
                    "but exponential time on shared subexpressions and one stack frame per node",
        # Values are right on small graphs (the per-path contributions add up at the
        # leaves).  Fifty doublings have 2**50 paths: the cell times out.  The
        # recursion is also one frame per node, so the 10,000-deep chain raises
        # RecursionError: losing hidden_backward_deep is a consequence of the same code.
        bodies={"exercise_backward": ["""\
def send(node, grad):
    if node.is_leaf or node.retains_grad:
        if node.grad is None:
            node.grad = np.array(grad, copy=True)
        else:
            node.grad = node.grad + grad
    if node.grad_fn is not None:
        for parent, g in zip(node.grad_fn.inputs, node.grad_fn.apply(grad)):
            if g is not None and parent.requires_grad:
                send(parent, g)

send(self, gradient)
"""]},
        loses=frozenset({BACKWARD_VISIBLE, LINEAR_TIME, DEEP}),
    ),
    Variant(
        name="backward_recursive_toposort",
        description="backward() builds a correct topological order by recursive depth-first search: "
                    "linear time, but RecursionError on graphs deeper than the recursion limit",
        bodies={"exercise_backward": ["""\
order, visited = [], set()

def visit(node):
    if id(node) in visited:
        return
    visited.add(id(node))
    if node.grad_fn is not None:
        for parent in node.grad_fn.inputs:
            if parent.requires_grad:
                visit(parent)
    order.append(node)

visit(self)
grads = {id(self): gradient}
for node in reversed(order):
    grad = grads.pop(id(node), None)
    if grad is None:
        continue
    if node.is_leaf or node.retains_grad:
        node.grad = np.array(grad, copy=True) if node.grad is None else node.grad + grad
    if node.grad_fn is not None:
        for parent, g in zip(node.grad_fn.inputs, node.grad_fn.apply(grad)):
            if g is not None and parent.requires_grad:
                grads[id(parent)] = grads[id(parent)] + g if id(parent) in grads else g
"""]},
        loses=frozenset({BACKWARD_VISIBLE, DEEP}),
    ),
    Variant(
        name="backward_propagates_first_arrival",
        description="backward() walks breadth-first and lets each intermediate pass on the first gradient "
                    "that reaches it (a visited set), dropping later contributions: the diamond gives 6, not 21",
        # Leaves add every contribution, so a leaf used twice (x + x, x - (-x)) is
        # right; a shared *intermediate* is wrong wherever it occurs:
        # - test_backward_visible: y = x ** 2 feeds y ** 3 and -y;
        # - hidden_backward_values: the chain scenario uses h = (x - y) ** 2 twice;
        # - hidden_backward_order: the diamond and the shared-at-several-depths graph;
        # - hidden_backward_linear_time: every doubling is a shared intermediate
        #   (fast, but the gradient is not 2**50);
        # - test_complex_graph_visible: the diamond y = x * 3.
        bodies={"exercise_backward": ["""\
from collections import deque

queue = deque([(self, gradient)])
visited = set()
while queue:
    node, grad = queue.popleft()
    if node.is_leaf or node.retains_grad:
        if node.grad is None:
            node.grad = np.array(grad, copy=True)
        else:
            node.grad = node.grad + grad
    if node.grad_fn is None or id(node) in visited:
        continue
    visited.add(id(node))
    for parent, g in zip(node.grad_fn.inputs, node.grad_fn.apply(grad)):
        if g is not None and parent.requires_grad:
            queue.append((parent, g))
"""]},
        loses=frozenset({BACKWARD_VISIBLE, BACKWARD_VALUES, BACKWARD_ORDER, LINEAR_TIME, COMPLEX_GRAPH}),
    ),
    Variant(
        name="backward_visited_on_push",
        description="backward()'s iterative depth-first search marks a tensor visited when it is pushed, "
                    "not when it is expanded, so the order can put a tensor before one of its consumers",
        # In x - (-x), x is pushed from the subtraction and so never below -x: x
        # comes out before -x has contributed and gets 1 instead of 2.  The same
        # happens in the shared-at-several-depths graph and in every doubling
        # z - (-z).  The visible tests (and the complex graph) happen to get a valid
        # order from the LIFO stack, so only the two hidden order tests see it.
        bodies={"exercise_backward": ["""\
order, visited = [], {id(self)}
stack = [(self, False)]
while stack:
    node, done = stack.pop()
    if done:
        order.append(node)
        continue
    stack.append((node, True))
    if node.grad_fn is not None:
        for parent in node.grad_fn.inputs:
            if parent.requires_grad and id(parent) not in visited:
                visited.add(id(parent))
                stack.append((parent, False))
order.reverse()

grads = {id(self): gradient}
for node in order:
    grad = grads.pop(id(node), None)
    if grad is None:
        continue
    if node.is_leaf or node.retains_grad:
        node.grad = np.array(grad, copy=True) if node.grad is None else node.grad + grad
    if node.grad_fn is not None:
        for parent, g in zip(node.grad_fn.inputs, node.grad_fn.apply(grad)):
            if g is not None and parent.requires_grad:
                grads[id(parent)] = grads[id(parent)] + g if id(parent) in grads else g
"""]},
        loses=frozenset({BACKWARD_ORDER, LINEAR_TIME}),
        # The random graph of the integration test catches it on most draws, not all.
        may_lose=frozenset({COMPLEX_GRAPH}),
    ),
    Variant(
        name="backward_breadth_first_order",
        description="backward() processes tensors in breadth-first order from the output, which is not a "
                    "topological order when a tensor is reached at two different depths",
        # Right when every shared tensor sits at one depth (the diamonds, x + x), wrong
        # otherwise: the shared-at-several-depths graph and the doublings (z_k feeds the
        # subtraction directly and through -z_k), and the random twin in
        # test_backward_visible (x ** 3 is used directly and under a negation).  The addition and multiplication
        # scenarios reach each leaf at one depth only, so a wrong order costs no
        # points there: it is reported where the order is tested.
        bodies={"exercise_backward": ["""\
from collections import deque

order, seen = [], {id(self)}
queue = deque([self])
while queue:
    node = queue.popleft()
    order.append(node)
    if node.grad_fn is not None:
        for parent in node.grad_fn.inputs:
            if parent.requires_grad and id(parent) not in seen:
                seen.add(id(parent))
                queue.append(parent)

grads = {id(self): gradient}
for node in order:
    grad = grads.pop(id(node), None)
    if grad is None:
        continue
    if node.is_leaf or node.retains_grad:
        node.grad = np.array(grad, copy=True) if node.grad is None else node.grad + grad
    if node.grad_fn is not None:
        for parent, g in zip(node.grad_fn.inputs, node.grad_fn.apply(grad)):
            if g is not None and parent.requires_grad:
                grads[id(parent)] = grads[id(parent)] + g if id(parent) in grads else g
"""]},
        loses=frozenset({BACKWARD_VISIBLE, BACKWARD_ORDER, LINEAR_TIME}),
        # The random graph of the integration test catches it on nearly every draw.
        may_lose=frozenset({COMPLEX_GRAPH}),
    ),
    Variant(
        name="backward_shares_grad_array",
        description="backward() stores np.asarray(grad) in .grad the first time, which is no copy: "
                    "a leaf and a retained intermediate hold one array",
        bodies={"exercise_backward": [_TOPOLOGICAL_ORDER + """\
grads = {id(self): gradient}
for node in order:
    grad = grads.pop(id(node), None)
    if grad is None:
        continue
    if node.is_leaf or node.retains_grad:
        if node.grad is None:
            node.grad = np.asarray(grad, dtype=node.dtype)
        else:
            node.grad = node.grad + grad
    if node.grad_fn is not None:
        for parent, g in zip(node.grad_fn.inputs, node.grad_fn.apply(grad)):
            if g is not None and parent.requires_grad:
                grads[id(parent)] = grads[id(parent)] + g if id(parent) in grads else g
"""]},
        loses=frozenset({BACKWARD_VISIBLE, NO_SHARED_GRADIENTS}),
    ),
    Variant(
        name="backward_grad_on_every_tensor",
        description="backward() stores .grad on every tensor it visits, not only on leaves and retain_grad() tensors",
        bodies={"exercise_backward": [_TOPOLOGICAL_ORDER + """\
grads = {id(self): gradient}
for node in order:
    grad = grads.pop(id(node), None)
    if grad is None:
        continue
    if node.grad is None:
        node.grad = np.array(grad, copy=True)
    else:
        node.grad = node.grad + grad
    if node.grad_fn is not None:
        for parent, g in zip(node.grad_fn.inputs, node.grad_fn.apply(grad)):
            if g is not None and parent.requires_grad:
                grads[id(parent)] = grads[id(parent)] + g if id(parent) in grads else g
"""]},
        loses=frozenset({BACKWARD_VISIBLE, INTERMEDIATE_GRADS}),
    ),
    Variant(
        name="backward_ignores_retain_grad",
        description="backward() stores .grad only on leaves, ignoring retains_grad set by retain_grad()",
        bodies={"exercise_backward": [_TOPOLOGICAL_ORDER + """\
grads = {id(self): gradient}
for node in order:
    grad = grads.pop(id(node), None)
    if grad is None:
        continue
    if node.is_leaf:
        if node.grad is None:
            node.grad = np.array(grad, copy=True)
        else:
            node.grad = node.grad + grad
    if node.grad_fn is not None:
        for parent, g in zip(node.grad_fn.inputs, node.grad_fn.apply(grad)):
            if g is not None and parent.requires_grad:
                grads[id(parent)] = grads[id(parent)] + g if id(parent) in grads else g
"""]},
        loses=frozenset({BACKWARD_VISIBLE, INTERMEDIATE_GRADS}),
    ),
    Variant(
        name="backward_grads_for_constants",
        description="backward() does not skip inputs that do not require grad, so constants get a .grad too",
        bodies={"exercise_backward": ["""\
order, seen = [], set()
stack = [(self, False)]
while stack:
    node, expanded = stack.pop()
    if expanded:
        order.append(node)
        continue
    if id(node) in seen:
        continue
    seen.add(id(node))
    stack.append((node, True))
    if node.grad_fn is not None:
        for parent in node.grad_fn.inputs:
            stack.append((parent, False))
order.reverse()

grads = {id(self): gradient}
for node in order:
    grad = grads.pop(id(node), None)
    if grad is None:
        continue
    if node.is_leaf or node.retains_grad:
        node.grad = np.array(grad, copy=True) if node.grad is None else node.grad + grad
    if node.grad_fn is not None:
        for parent, g in zip(node.grad_fn.inputs, node.grad_fn.apply(grad)):
            grads[id(parent)] = grads[id(parent)] + g if id(parent) in grads else g
"""]},
        loses=frozenset({BACKWARD_VISIBLE, BACKWARD_VALUES}),
    ),
    Variant(
        name="backward_ignores_gradient_argument",
        description="backward() always starts from ones, ignoring the gradient passed as backward(gradient=g)",
        bodies={"exercise_backward": [_TOPOLOGICAL_ORDER + """\
grads = {id(self): np.ones_like(self.data)}
for node in order:
    grad = grads.pop(id(node), None)
    if grad is None:
        continue
    if node.is_leaf or node.retains_grad:
        node.grad = np.array(grad, copy=True) if node.grad is None else node.grad + grad
    if node.grad_fn is not None:
        for parent, g in zip(node.grad_fn.inputs, node.grad_fn.apply(grad)):
            if g is not None and parent.requires_grad:
                grads[id(parent)] = grads[id(parent)] + g if id(parent) in grads else g
"""]},
        loses=frozenset({BACKWARD_VALUES, INTERMEDIATE_GRADS}),
    ),
    # ------------------------------------------------------------------
    # Wrong implementations of AddBackward
    # ------------------------------------------------------------------
    Variant(
        name="add_copied_from_mul",
        description="AddBackward.apply copied from MulBackward: scales each gradient by the other input's values",
        # Values of + are wrong wherever + is differentiated, including both graphs
        # of test_complex_graph_visible (x.grad = 2 + 5 = 7 instead of 6).
        bodies={"exercise_add": [None, """\
a, b = self.inputs
grad_a = unbroadcast(grad_output * b.data, self.a_shape)
grad_b = unbroadcast(grad_output * a.data, self.b_shape)
return grad_a, grad_b"""]},
        loses=frozenset({ADD_VISIBLE, ADD_VALUES, ADD_BROADCAST, COMPLEX_GRAPH}),
    ),
    Variant(
        name="add_local_derivative_only",
        description="AddBackward.apply returns the local derivative 1 (ones) instead of multiplying it "
                    "with grad_output: the chain rule is left out",
        # Right whenever the gradient arriving at + is all ones.  test_add_visible's
        # (x + y) ** 2 check and the random twin of test_complex_graph_visible (where
        # the + node receives x - y, no longer 1) catch it, as do the hidden tests.
        bodies={"exercise_add": [None, """\
return (unbroadcast(np.ones_like(grad_output), self.a_shape),
        unbroadcast(np.ones_like(grad_output), self.b_shape))"""]},
        loses=frozenset({ADD_VISIBLE, ADD_VALUES, ADD_BROADCAST, COMPLEX_GRAPH}),
    ),
    Variant(
        name="add_no_unbroadcast",
        description="AddBackward.apply returns grad_output for both inputs without undoing broadcasting",
        # A number added to x is a constant that gets no gradient, so hidden_add_values
        # (same shapes, numbers) is kept; only broadcast tensors get a wrong shape.
        bodies={"exercise_add": [None, """\
return grad_output, grad_output"""]},
        loses=frozenset({ADD_VISIBLE, ADD_BROADCAST}),
    ),
    Variant(
        name="add_grad_fn_never_set",
        description="AddBackward.forward marks the result as requiring grad and builds the node, "
                    "but never assigns it to out.grad_fn",
        # The sum becomes a leaf that requires grad: nothing flows back through +,
        # so every gradient through + is missing (complex graph: x.grad = 5, not 6).
        # hidden_graph_no_grad is kept: inside no_grad() nothing is recorded anyway.
        bodies={"exercise_add": ["""\
out = Tensor(a.data + b.data)
if is_grad_enabled() and (a.requires_grad or b.requires_grad):
    out.requires_grad = True
    grad_fn = AddBackward(a, b)
return out""", None]},
        loses=frozenset({ADD_VISIBLE, ADD_VALUES, ADD_BROADCAST, GRAPH_STRUCTURE, GRAPH_REQUIRES_GRAD,
                         COMPLEX_GRAPH}),
    ),
    Variant(
        name="add_requires_grad_from_first_input",
        description="AddBackward.forward records the node only when the first input requires grad, "
                    "so number + x and constant + x lose x's gradient",
        # hidden_add_values has 1.5 + x, whose x gets no gradient from that term.
        bodies={"exercise_add": ["""\
out = Tensor(a.data + b.data)
if is_grad_enabled() and a.requires_grad:
    out.requires_grad = True
    out.grad_fn = AddBackward(a, b)
return out""", None]},
        loses=frozenset({ADD_VISIBLE, ADD_VALUES, GRAPH_REQUIRES_GRAD}),
    ),
    # ------------------------------------------------------------------
    # Wrong implementations of MulBackward
    # ------------------------------------------------------------------
    Variant(
        name="mul_swapped_operands",
        description="MulBackward scales each input's gradient by its own value instead of the other's",
        bodies={"exercise_mul": [None, """\
grad_a = unbroadcast(grad_output * self.a_data, self.a_data.shape)
grad_b = unbroadcast(grad_output * self.b_data, self.b_data.shape)
return grad_a, grad_b"""]},
        loses=frozenset({"test_mul_visible", "hidden_mul_values", "hidden_mul_broadcast",
                         "test_complex_graph_visible"}),
    ),
    Variant(
        name="mul_no_unbroadcast",
        description="MulBackward.apply scales by the other operand but does not undo broadcasting",
        # Only broadcast tensors get a gradient of the wrong shape: a number times x is
        # a constant without gradient, so test_mul_visible and hidden_mul_values pass.
        bodies={"exercise_mul": [None, """\
return grad_output * self.b_data, grad_output * self.a_data"""]},
        loses=frozenset({MUL_VISIBLE, MUL_BROADCAST}),
    ),
    Variant(
        name="mul_records_add_node",
        description="MulBackward.forward copied from AddBackward.forward and still records an AddBackward node",
        # The node passes gradients through unchanged, so every gradient through * is
        # wrong; requires_grad and recording under no_grad() are right.
        bodies={"exercise_mul": ["""\
out = Tensor(a.data * b.data)
if is_grad_enabled() and (a.requires_grad or b.requires_grad):
    out.requires_grad = True
    out.grad_fn = AddBackward(a, b)
return out""", None]},
        loses=frozenset({MUL_VISIBLE, MUL_VALUES, MUL_BROADCAST, GRAPH_STRUCTURE, COMPLEX_GRAPH}),
    ),
    # ------------------------------------------------------------------
    # Wrong recording in both operations
    # ------------------------------------------------------------------
    Variant(
        name="no_grad_ignored",
        description="+ and * record the node whenever an input requires grad, without asking is_grad_enabled()",
        bodies={
            "exercise_add": ["""\
out = Tensor(a.data + b.data)
if a.requires_grad or b.requires_grad:
    out.requires_grad = True
    out.grad_fn = AddBackward(a, b)
return out""", None],
            "exercise_mul": ["""\
out = Tensor(a.data * b.data)
if a.requires_grad or b.requires_grad:
    out.requires_grad = True
    out.grad_fn = MulBackward(a, b)
return out""", None],
        },
        loses=frozenset({MUL_VISIBLE, GRAPH_NO_GRAD}),
    ),
    Variant(
        name="backward_applies_once_per_input",
        description="calls grad_fn.apply(grad) once per input of a node instead of once per node (right values)",
        bodies={"exercise_backward": [_TOPOLOGICAL_ORDER + """\
grads = {id(self): gradient}
for node in order:
    grad = grads.pop(id(node), None)
    if grad is None:
        continue
    if node.is_leaf or node.retains_grad:
        node.grad = np.array(grad, copy=True) if node.grad is None else node.grad + grad
    if node.grad_fn is not None:
        for index, parent in enumerate(node.grad_fn.inputs):
            if not parent.requires_grad:
                continue
            g = node.grad_fn.apply(grad)[index]
            grads[id(parent)] = grads[id(parent)] + g if id(parent) in grads else g
"""]},
        loses=frozenset({BACKWARD_VISIBLE, LINEAR_TIME}),
    ),
    Variant(
        name="backward_overwrites_retained_grad",
        description="leaves accumulate, but a retain_grad() tensor's .grad is overwritten on every backward()",
        bodies={"exercise_backward": [_TOPOLOGICAL_ORDER + """\
grads = {id(self): gradient}
for node in order:
    grad = grads.pop(id(node), None)
    if grad is None:
        continue
    if node.is_leaf:
        node.grad = np.array(grad, copy=True) if node.grad is None else node.grad + grad
    elif node.retains_grad:
        node.grad = np.array(grad, copy=True)
    if node.grad_fn is not None:
        for parent, g in zip(node.grad_fn.inputs, node.grad_fn.apply(grad)):
            if g is not None and parent.requires_grad:
                grads[id(parent)] = grads[id(parent)] + g if id(parent) in grads else g
"""]},
        loses=frozenset({BACKWARD_VISIBLE, INTERMEDIATE_GRADS}),
    ),
    Variant(
        name="backward_copies_only_for_leaves",
        description="backward() copies the first gradient a leaf keeps, but a retain_grad() tensor keeps the "
                    "array it was handed, which the node below it passes on unchanged to the next one",
        bodies={"exercise_backward": [_TOPOLOGICAL_ORDER + """\
grads = {id(self): gradient}
for node in order:
    grad = grads.pop(id(node), None)
    if grad is None:
        continue
    if node.is_leaf:
        node.grad = np.array(grad, copy=True) if node.grad is None else node.grad + grad
    elif node.retains_grad:
        node.grad = grad if node.grad is None else node.grad + grad
    if node.grad_fn is not None:
        for parent, g in zip(node.grad_fn.inputs, node.grad_fn.apply(grad)):
            if g is not None and parent.requires_grad:
                grads[id(parent)] = grads[id(parent)] + g if id(parent) in grads else g
"""]},
        loses=frozenset({NO_SHARED_GRADIENTS}),
    ),
    Variant(
        name="backward_skips_the_start",
        description="backward() gives .grad to the leaves and retained tensors it reaches, but not to the "
                    "tensor it was called on: x.backward(g) on a leaf leaves x.grad None",
        bodies={"exercise_backward": [_TOPOLOGICAL_ORDER + """\
grads = {id(self): gradient}
for node in order:
    grad = grads.pop(id(node), None)
    if grad is None:
        continue
    if node is not self and (node.is_leaf or node.retains_grad):
        node.grad = np.array(grad, copy=True) if node.grad is None else node.grad + grad
    if node.grad_fn is not None:
        for parent, g in zip(node.grad_fn.inputs, node.grad_fn.apply(grad)):
            if g is not None and parent.requires_grad:
                grads[id(parent)] = grads[id(parent)] + g if id(parent) in grads else g
"""]},
        loses=frozenset({INTERMEDIATE_GRADS}),
    ),
    Variant(
        name="backward_counts_consumers_not_uses",
        description="Kahn's algorithm that counts each consumer of a tensor once, although y - y uses y twice "
                    "and sends two contributions: y is released before a consumer further down has sent its share",
        bodies={"exercise_backward": ["""\
# Count the distinct consumers of each tensor (the mistake: y - y is one consumer but two uses).
consumers = {}
reached = {id(self)}
stack = [self]
while stack:
    node = stack.pop()
    if node.grad_fn is None:
        continue
    for parent in node.grad_fn.inputs:
        if not parent.requires_grad:
            continue
        consumers.setdefault(id(parent), set()).add(id(node))
        if id(parent) not in reached:
            reached.add(id(parent))
            stack.append(parent)
waiting = {key: len(users) for key, users in consumers.items()}

pending = {id(self): gradient}
ready = [self]
while ready:
    node = ready.pop()
    grad = pending.pop(id(node), None)
    if grad is not None and (node.is_leaf or node.retains_grad):
        node.grad = np.array(grad, copy=True) if node.grad is None else node.grad + grad
    if node.grad_fn is None:
        continue
    shares = node.grad_fn.apply(grad) if grad is not None else [None] * len(node.grad_fn.inputs)
    for parent, share in zip(node.grad_fn.inputs, shares):
        if not parent.requires_grad:
            continue
        if share is not None:
            pending[id(parent)] = share if id(parent) not in pending else pending[id(parent)] + share
        waiting[id(parent)] -= 1
        if waiting[id(parent)] == 0:
            ready.append(parent)
"""]},
        loses=frozenset({BACKWARD_VISIBLE, BACKWARD_ORDER}),
        # The random graph of +, * and - sometimes has a node that uses one tensor twice (3 draws in 20).
        may_lose=frozenset({COMPLEX_GRAPH}),
    ),
    Variant(
        name="mul_divides_the_output",
        description="MulBackward computes each input's gradient from the output divided by that input "
                    "(z / a for b): right everywhere except where an input is exactly zero",
        # Random inputs are never exactly zero; only the scenario with zeros sees it.
        bodies={"exercise_mul": [None, """\
out = self.a_data * self.b_data
grad_a = unbroadcast(grad_output * (out / self.a_data), self.a_data.shape)
grad_b = unbroadcast(grad_output * (out / self.b_data), self.b_data.shape)
return grad_a, grad_b"""]},
        loses=frozenset({MUL_VALUES}),
    ),
    # ------------------------------------------------------------------
    # Correct implementations in other styles: they must score 100%
    # ------------------------------------------------------------------
    Variant(
        name="correct_copy_method",
        description="the instructor's order, storing gradients with grad.copy(): a 0-d gradient may stay a "
                    "numpy scalar, which counts as a 0-d array",
        bodies={"exercise_backward": [_TOPOLOGICAL_ORDER + """\
grads = {id(self): gradient}
for node in order:
    grad = grads.pop(id(node), None)
    if grad is None:
        continue
    if node.is_leaf or node.retains_grad:
        node.grad = grad.copy() if node.grad is None else node.grad + grad
    if node.grad_fn is not None:
        for parent, g in zip(node.grad_fn.inputs, node.grad_fn.apply(grad)):
            if g is not None and parent.requires_grad:
                grads[id(parent)] = grads[id(parent)] + g if id(parent) in grads else g
"""]},
        loses=frozenset(),
    ),
    Variant(
        name="correct_kahn_dependency_counts",
        description="Kahn's algorithm: count each tensor's consumers, process a tensor once all of them have sent "
                    "their gradient",
        bodies={"exercise_backward": ["""\
# Count, for every tensor that requires grad, how many graph edges consume it.
consumers = {}
reached = {id(self)}
stack = [self]
while stack:
    node = stack.pop()
    if node.grad_fn is None:
        continue
    for parent in node.grad_fn.inputs:
        if not parent.requires_grad:
            continue
        consumers[id(parent)] = consumers.get(id(parent), 0) + 1
        if id(parent) not in reached:
            reached.add(id(parent))
            stack.append(parent)

# Release a tensor once every consumer has handed over its share.
pending = {id(self): gradient}
ready = [self]
while ready:
    node = ready.pop()
    grad = pending.pop(id(node), None)
    if grad is not None and (node.is_leaf or node.retains_grad):
        if node.grad is None:
            node.grad = np.array(grad, copy=True)
        else:
            node.grad = node.grad + grad
    if node.grad_fn is None:
        continue
    shares = node.grad_fn.apply(grad) if grad is not None else [None] * len(node.grad_fn.inputs)
    for parent, share in zip(node.grad_fn.inputs, shares):
        if not parent.requires_grad:
            continue
        if share is not None:
            pending[id(parent)] = share if id(parent) not in pending else pending[id(parent)] + share
        consumers[id(parent)] -= 1
        if consumers[id(parent)] == 0:
            ready.append(parent)
"""]},
        loses=frozenset(),
    ),
    Variant(
        name="correct_dfs_frame_index",
        description="iterative depth-first post-order with one (tensor, next input index) frame per stack entry; "
                    "gradients kept in a dict keyed by the tensors themselves",
        bodies={"exercise_backward": ["""\
def inputs_of(t):
    return [p for p in t.grad_fn.inputs if p.requires_grad] if t.grad_fn is not None else []

post_order = []
on_graph = {id(self)}
frames = [[self, inputs_of(self), 0]]
while frames:
    frame = frames[-1]
    node, parents, index = frame
    if index < len(parents):
        frame[2] += 1
        parent = parents[index]
        if id(parent) not in on_graph:
            on_graph.add(id(parent))
            frames.append([parent, inputs_of(parent), 0])
    else:
        frames.pop()
        post_order.append(node)

grad_of = {self: gradient}   # Tensor has no __eq__, so it hashes by identity
for node in reversed(post_order):
    if node not in grad_of:
        continue
    grad = grad_of.pop(node)
    if node.is_leaf or node.retains_grad:
        node.grad = np.array(grad, dtype=node.dtype) if node.grad is None else node.grad + grad
    if node.grad_fn is not None:
        for parent, share in zip(node.grad_fn.inputs, node.grad_fn.apply(grad)):
            if share is None or not parent.requires_grad:
                continue
            grad_of[parent] = grad_of[parent] + share if parent in grad_of else share
"""]},
        loses=frozenset(),
    ),
    Variant(
        name="correct_height_ordering",
        description="orders tensors by height (longest path down to a leaf), computed without recursion: "
                    "a consumer is always higher than what it consumed, so descending height is a valid order",
        bodies={"exercise_backward": ["""\
# Height of a leaf is 0; of a result, 1 + the largest height among its inputs.
height = {}
tensors = {}
stack = [self]
while stack:
    node = stack[-1]
    if id(node) in height:
        stack.pop()
        continue
    parents = [p for p in node.grad_fn.inputs if p.requires_grad] if node.grad_fn is not None else []
    missing = [p for p in parents if id(p) not in height]
    if missing:
        stack.extend(missing)
    else:
        height[id(node)] = 1 + max((height[id(p)] for p in parents), default=-1)
        tensors[id(node)] = node
        stack.pop()

pending = {id(self): gradient}
for key in sorted(height, key=height.get, reverse=True):
    node = tensors[key]
    grad = pending.pop(key, None)
    if grad is None:
        continue
    if node.is_leaf or node.retains_grad:
        node.grad = np.array(grad) if node.grad is None else node.grad + grad
    if node.grad_fn is not None:
        for parent, share in zip(node.grad_fn.inputs, node.grad_fn.apply(grad)):
            if share is not None and parent.requires_grad:
                pending[id(parent)] = pending[id(parent)] + share if id(parent) in pending else share
"""]},
        loses=frozenset(),
    ),
    Variant(
        name="correct_tape_replay",
        description="records a tape (every tensor after its inputs, as a forward pass would have run them) "
                    "and replays it backwards, gradients in a list indexed by tape position",
        bodies={"exercise_backward": ["""\
# 1. The tape: tensors in the order a forward pass computes them.
tape, slot = [], {}
todo = [self]
while todo:
    node = todo[-1]
    if id(node) in slot:
        todo.pop()
        continue
    waiting = []
    if node.grad_fn is not None:
        waiting = [p for p in node.grad_fn.inputs if p.requires_grad and id(p) not in slot]
    if waiting:
        todo.extend(waiting)
    else:
        slot[id(node)] = len(tape)
        tape.append(node)
        todo.pop()

# 2. Replay it from the end: everything that consumed a tensor comes later on the tape.
grads = [None] * len(tape)
grads[slot[id(self)]] = gradient
for position in range(len(tape) - 1, -1, -1):
    node, grad = tape[position], grads[position]
    grads[position] = None
    if grad is None:
        continue
    if node.is_leaf or node.retains_grad:
        if node.grad is None:
            node.grad = np.copy(grad)
        else:
            node.grad = np.add(node.grad, grad)
    if node.grad_fn is None:
        continue
    for parent, share in zip(node.grad_fn.inputs, node.grad_fn.apply(grad)):
        if share is None or not parent.requires_grad:
            continue
        j = slot[id(parent)]
        grads[j] = share if grads[j] is None else grads[j] + share
"""]},
        loses=frozenset(),
    ),
    Variant(
        name="correct_record_helper_inline_reduction",
        description="+ and * record through the given _record helper, and undo broadcasting with np.sum "
                    "written inline instead of unbroadcast",
        bodies={
            "exercise_add": ["""\
return _record(a.data + b.data, AddBackward, a, b)""", """\
def reduce_to(grad, shape):
    while grad.ndim > len(shape):
        grad = np.sum(grad, axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = np.sum(grad, axis=axis, keepdims=True)
    return grad

return reduce_to(grad_output, self.a_shape), reduce_to(grad_output, self.b_shape)"""],
            "exercise_mul": ["""\
return _record(a.data * b.data, MulBackward, a, b)""", """\
grads = []
for own, other in ((self.a_data, self.b_data), (self.b_data, self.a_data)):
    grad = grad_output * other
    extra = grad.ndim - own.ndim
    if extra:
        grad = np.sum(grad, axis=tuple(range(extra)))
    stretched = tuple(i for i, size in enumerate(own.shape) if size == 1 and grad.shape[i] != 1)
    if stretched:
        grad = np.sum(grad, axis=stretched, keepdims=True)
    grads.append(grad)
return tuple(grads)"""],
        },
        loses=frozenset(),
    ),
    # Correct submissions that use cells the student added: they run where they stand, as in Jupyter.
    Variant(
        name="correct_helper_cell",
        description="backward() calls a topological-order helper the student defined in a cell of their own, "
                    "added above the exercise",
        added_cells=(("check_helper", """\
def topological_order(root):
    \"\"\"Every tensor that root depends on and that requires grad, consumers before what they consume.\"\"\"
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            if node.grad_fn is not None:
                stack.extend((p, False) for p in node.grad_fn.inputs if p.requires_grad)
    return order[::-1]
"""),),
        bodies={"exercise_backward": ["""\
grads = {id(self): gradient}
for node in topological_order(self):
    grad = grads.pop(id(node), None)
    if grad is None:
        continue
    if node.is_leaf or node.retains_grad:
        node.grad = np.array(grad, copy=True) if node.grad is None else node.grad + grad
    if node.grad_fn is not None:
        for parent, g in zip(node.grad_fn.inputs, node.grad_fn.apply(grad)):
            if g is not None and parent.requires_grad:
                grads[id(parent)] = grads[id(parent)] + g if id(parent) in grads else g
"""]},
    ),
    Variant(
        name="correct_import_cell",
        description="Kahn's algorithm on a deque, with collections imported in a cell the student added "
                    "below the given imports",
        added_cells=(("imports", "from collections import defaultdict, deque\n"),),
        bodies={"exercise_backward": ["""\
uses = defaultdict(int)
seen = {id(self)}
todo = deque([self])
while todo:
    node = todo.popleft()
    for parent in node.grad_fn.inputs if node.grad_fn is not None else ():
        if parent.requires_grad:
            uses[id(parent)] += 1
            if id(parent) not in seen:
                seen.add(id(parent))
                todo.append(parent)

pending = {id(self): gradient}
ready = deque([self])
while ready:
    node = ready.popleft()
    grad = pending.pop(id(node), None)
    if grad is not None and (node.is_leaf or node.retains_grad):
        node.grad = np.array(grad, copy=True) if node.grad is None else node.grad + grad
    if node.grad_fn is None:
        continue
    shares = node.grad_fn.apply(grad) if grad is not None else [None] * len(node.grad_fn.inputs)
    for parent, share in zip(node.grad_fn.inputs, shares):
        if not parent.requires_grad:
            continue
        if share is not None:
            pending[id(parent)] = share if id(parent) not in pending else pending[id(parent)] + share
        uses[id(parent)] -= 1
        if uses[id(parent)] == 0:
            ready.append(parent)
"""]},
    ),
    Variant(
        name="correct_scratch_cell_that_raises",
        description="the instructor's solution, plus the student's scratch cells left in: one prints a "
                    "gradient, one below the exercise raises AttributeError",
        added_cells=(
            ("exercise_backward", """\
# trying it out
t = Tensor([1.0, 2.0], requires_grad=True)
(t ** 2).sum().backward()
print(t.grad)
t.grad.shape_of_it
"""),
            ("test_add_visible", "w = Tensor([3.0], requires_grad=True)\nprint(w + w)\n"),
        ),
    ),
]
