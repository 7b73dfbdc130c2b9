"""The program inside the sandbox: it hosts the student's engine and answers the grader's requests.

Copied into the sandbox's scratch folder with ``protocol.py``; it imports
nothing else of the project.  It runs the notebook cells the grader sends
(the instructor's given cells and the student's own, in notebook order), then
executes operations on real objects of the student's engine and answers with
values and handles, as ``protocol.py`` defines.

It is told nothing but what an honest engine needs: cells, operations and
operand values.  No test names, scenario code, seeds or expected values ever
reach this process, and nothing it says is trusted: the grader checks every
reply and decides every score itself.  Student code runs in this process and
can change anything here; it can only make its own answers wrong.
"""

from __future__ import annotations

import operator
import os
import sys
import traceback

# Handles the child hands out for objects the grader did not name (inputs of a
# node, say) come from above the grader's range, so the two never collide.
CHILD_HANDLES_START = 2**40


class Host:
    def __init__(self, requests, replies, protocol) -> None:
        self.requests, self.replies, self.protocol = requests, replies, protocol
        self.namespace: dict = {"__name__": "__main__"}
        self.objects: dict[int, object] = {}
        self.handle_of: dict[int, int] = {}  # id(object) -> handle; objects holds them alive
        self.next_child_handle = CHILD_HANDLES_START
        self.node_class = None

    # -- the loop

    def serve(self) -> None:
        while True:
            message = self.protocol.read_frame(self.requests)
            if message is None:
                return
            if "cell" in message:
                name, source = message["cell"]
                self.send(self._run_ops([("cell", name, source)]))
            elif "ops" in message:
                self.send(self._run_ops(message["ops"]))

    def send(self, message) -> None:
        self.replies.write(self.protocol.frame(message))
        self.replies.flush()

    def _run_ops(self, ops) -> dict:
        value = None
        for index, op in enumerate(ops):
            try:
                value = self._run(op)
            except BaseException as error:  # noqa: BLE001 - SystemExit too: the engine's failure is an answer
                return {"failed": self._describe(error), "at": index}
        try:
            return {"done": self.protocol.encode(value, self._ref)}
        except BaseException as error:  # noqa: BLE001
            return {"failed": self._describe(error), "at": len(ops) - 1}

    # -- operations

    def _run(self, op):
        kind = op[0]
        if kind == "cell":
            return self._run_cell(op[1], op[2])
        if kind == "global":
            name = op[2]
            if name not in self.namespace:
                raise NameError(f"the notebook does not define {name}")
            return self._bind(op[1], self.namespace[name])
        if kind == "call":
            target, args, kwargs = self._object(op[2]), self._values(op[3]), self._kwargs(op[4])
            return self._bind(op[1], target(*args, **kwargs))
        if kind == "method":
            target, args, kwargs = self._object(op[2]), self._values(op[4]), self._kwargs(op[5])
            return self._bind(op[1], getattr(target, op[3])(*args, **kwargs))
        if kind == "binary":
            function = getattr(operator, op[2])
            return self._bind(op[1], function(self._value(op[3]), self._value(op[4])))
        if kind == "unary":
            return self._bind(op[1], getattr(operator, op[2])(self._value(op[3])))
        if kind == "get":
            return self._bind(op[1], getattr(self._object(op[2]), op[3]))
        if kind == "set":
            setattr(self._object(op[1]), op[2], self._value(op[3]))
            return None
        if kind == "scale":
            import numpy as np

            array = getattr(self._object(op[1]), op[2])
            if type(array) is not np.ndarray:
                raise TypeError(f".{op[2]} is a {type(array).__name__}, not a numpy array")
            np.multiply(array, self._value(op[3]), out=array)
            return None
        if kind == "node":
            return self._bind(op[1], self._node_class()(op[1], *self._values(op[2])))
        if kind == "reset":
            self.objects.clear()
            self.handle_of.clear()
            return None
        raise ValueError(f"unknown operation {kind!r}")

    def _run_cell(self, name: str, source: str) -> None:
        try:
            code = compile(source, f"<cell {name}>", "exec")
        except SyntaxError:
            # IPython magics and shell escapes are not Python; grading ignores them.
            code = compile(_python_only(source), f"<cell {name}>", "exec")
        exec(code, self.namespace)

    def _node_class(self):
        if self.node_class is None:
            host = self
            base = self.namespace.get("Function")
            if not isinstance(base, type):
                raise NameError("the notebook does not define the class Function")

            class Node(base):
                """A graph node whose apply() the grader computes (it counts and checks the calls)."""

                def __init__(self, handle, *inputs):
                    super().__init__(*inputs)
                    self._grader_handle = handle

                def apply(self, *args):
                    return host.callback(self._grader_handle, args)

            self.node_class = Node
        return self.node_class

    def callback(self, handle: int, args: tuple):
        self.send({"callback": [handle, [self.protocol.encode(arg, self._ref) for arg in args]]})
        while True:
            message = self.protocol.read_frame(self.requests)
            if message is None:
                raise SystemExit(0)
            if "return" in message:
                return self._value(message["return"])
            if "raise" in message:
                raise RuntimeError(str(message["raise"]))

    # -- values and handles

    def _bind(self, handle: int, value):
        # The grader may name this result in later operations, whatever it is:
        # a plain array an engine returned by mistake, or an object it returned before.
        self.objects[handle] = value
        if self._is_object(value) and id(value) not in self.handle_of:
            self.handle_of[id(value)] = handle
        return value

    def _is_object(self, value) -> bool:
        import numpy as np

        plain = (type(None), bool, int, float, str, list, tuple)
        return not (type(value) in plain or type(value) is np.ndarray or isinstance(value, np.generic))

    def _ref(self, value):
        handle = self.handle_of.get(id(value))
        if handle is None:
            handle = self.next_child_handle
            self.next_child_handle += 1
            self.objects[handle] = value
            self.handle_of[id(value)] = handle
        tensor = self.namespace.get("Tensor")
        kind = "tensor" if isinstance(tensor, type) and isinstance(value, tensor) else "object"
        return self.protocol.Ref(handle, kind, type(value).__name__)

    def _object(self, handle):
        if handle not in self.objects:
            raise LookupError("an object the grader named is gone")
        return self.objects[handle]

    def _value(self, data):
        return self._resolve(self.protocol.decode(data))

    def _values(self, data) -> list:
        return list(self._value(data))

    def _kwargs(self, data) -> dict:
        return {key: self._resolve(value) for key, value in self.protocol.decode_kwargs(data).items()}

    def _resolve(self, value):
        if isinstance(value, self.protocol.Ref):
            return self._object(value.handle)
        if type(value) in (list, tuple):
            return type(value)(self._resolve(item) for item in value)
        return value

    # -- errors

    def _describe(self, error: BaseException) -> dict:
        try:
            text = str(error)
        except BaseException:  # noqa: BLE001 - an exception whose str() raises
            text = ""
        return self.protocol.encode_error(type(error).__name__, text, _where(error))


def _where(error: BaseException) -> str:
    """The innermost line of a notebook cell in the traceback, as "cell:line"."""
    if isinstance(error, RecursionError):
        return ""
    if isinstance(error, SyntaxError) and str(error.filename).startswith("<cell "):
        return f"{error.filename[6:-1]}:{error.lineno}"
    try:
        frames = traceback.extract_tb(error.__traceback__)
    except BaseException:  # noqa: BLE001
        return ""
    for frame in reversed(frames):
        if frame.filename.startswith("<cell ") and frame.filename.endswith(">"):
            return f"{frame.filename[6:-1]}:{frame.lineno}"
    return ""


def _python_only(source: str) -> str:
    """Comment out IPython's magics and shell escapes: they are not Python and do nothing for grading."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        lines.append(line[: len(line) - len(stripped)] + "# " + stripped if stripped[:1] in ("%", "!") else line)
    return "\n".join(lines)


def main() -> int:
    # Where the sandbox mounted numpy; the interpreter's own site-packages is hidden.
    sys.path[:0] = sys.argv[1:]
    # Requests and replies keep private descriptors; the student's prints and
    # reads get /dev/null, so they cannot garble the channel by accident.
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    import protocol

    Host(requests, replies, protocol).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
