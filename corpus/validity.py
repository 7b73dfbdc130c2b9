"""The validity corpus: implementations of the three exercises, and the tests each must lose.

Each Variant replaces solution regions of the instructor notebook, keyed by
the solution cell's grade_id, one string per ### BEGIN SOLUTION region in
that cell (None keeps the instructor's code for that region):
- exercise_backward: [body of backward after the given argument checks]
- exercise_add: [AddBackward.forward body, AddBackward.apply body]
- exercise_mul: [MulBackward.forward body, MulBackward.apply body]
"""

from autograder.corpus import Variant

VARIANTS = [
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
]
