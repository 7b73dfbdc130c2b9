"""The student's engine as the grader sees it: proxies whose every use is a request to the sandbox.

A scenario ``scenario_<name>(tt, rng)`` runs here, in the grading process,
with ``tt`` a ``RemoteEngine``.  ``tt.Tensor(...)``, operators, ``backward()``
and the rest become operations sent to the engine host in the sandbox
(``engine_host.py``); reading ``.data``, ``.grad``, ``.grad_fn`` or any other
attribute fetches the value.  Operations that need no answer are queued and
sent with the next read, so a 10,000-operation chain costs one round trip.

The same scenario code runs unchanged on ``tinytorch`` (the reference, here)
and on the student's engine in their own Jupyter kernel.

Every decision stays here: replies are decoded strictly (``protocol.decode``),
identity is the grader's proxy table, a node's ``apply`` that the scenario
defines runs here when the student's ``backward`` calls it, and every clock is
the grader's.  A reply that is not of the contract's forms is the engine's
wrong answer, never an exception in the grader.
"""

from __future__ import annotations

import builtins
import time

from . import protocol
from .protocol import BadValue, Ref
from .sandbox import Session, SessionEnded, SessionTimeout

# The grader's handles; the child numbers the objects it introduces from
# engine_host.CHILD_HANDLES_START up.
FIRST_HANDLE = 1
# Replies make objects in the grading process: proxies for the handles the
# child introduces, and a class per remote type name.  Both are bounded, so a
# child that answers with endless new handles or names costs its own scenario,
# not the grader's memory.  An honest engine has about ten classes and
# introduces a few objects per read.
MAX_TYPE_NAMES = 64
MAX_CHILD_OBJECTS = 20_000


class EngineLost(BaseException):
    """The engine's process can no longer answer: it timed out, died or broke the contract.

    Its text is a predicate ("did not finish within 10 s", "ended its process
    (exit code 0)") that messages put after "your engine" or a cell's name.

    A BaseException so that no ``except Exception`` in scenario code can
    swallow it: the grader must replace the process.
    """


class EngineError(Exception):
    """The student's engine raised an exception while doing what the grader asked."""

    def __init__(self, type_name: str, message: str, where: str) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name, self.text, self.where = type_name, message, where


_ERROR_CLASSES: dict[str, type] = {}
# Builtin errors a scenario may catch, all constructible from one message.
MIRRORED_ERRORS = frozenset({
    "ValueError", "TypeError", "AttributeError", "KeyError", "IndexError", "LookupError", "RuntimeError",
    "NotImplementedError", "ArithmeticError", "ZeroDivisionError", "FloatingPointError", "OverflowError",
    "NameError", "AssertionError", "RecursionError",
})


def error_class(type_name: str) -> type:
    """EngineError, also of the builtin exception type the engine raised, under the same name.

    So ``except ValueError`` in a scenario, ``getattr(x, name, default)`` and
    ``hasattr`` behave as they do on an engine in the same process.
    """
    if type_name not in MIRRORED_ERRORS:
        return EngineError  # names from the child never key anything that outlives the submission
    if type_name not in _ERROR_CLASSES:
        _ERROR_CLASSES[type_name] = type(type_name, (EngineError, getattr(builtins, type_name)), {})
    return _ERROR_CLASSES[type_name]


class UnreadableReply(Exception):
    """The engine answered with something that is not a value of the contract."""


class Connection:
    """Requests to one engine host, with the grader's deadlines."""

    def __init__(self, session: Session, request_seconds: float, deadline: float) -> None:
        self.session = session
        self.request_seconds = request_seconds
        self.deadline = deadline  # the submission's whole budget
        self.pending: list = []
        self.next_handle = FIRST_HANDLE
        self.proxies: dict[int, object] = {}
        self.nodes: dict[int, object] = {}
        self.classes: dict[tuple[str, str], type] = {}
        self.child_objects = 0  # proxies made for handles the child introduced, this scenario
        self.answering = False  # a node's apply() runs here for the engine's backward()
        self.lost: EngineLost | None = None

    # -- sending

    def new_handle(self) -> int:
        handle = self.next_handle
        self.next_handle += 1
        return handle

    def defer(self, op: list) -> None:
        self._check_alive()
        self.pending.append(op)

    def read(self, op: list):
        """Send what is queued and ``op``, and return ``op``'s value (proxies for objects)."""
        self._check_alive()
        ops, self.pending = self.pending + [op], []
        return self._wrap(self.exchange({"ops": ops}))

    def flush(self) -> None:
        """Send what is queued; raise the engine's error if an operation failed."""
        if self.pending:
            ops, self.pending = self.pending, []
            self.exchange({"ops": ops})

    def run_cell(self, name: str, source: str) -> EngineError | None:
        """Run one notebook cell; the error it raised, if any."""
        try:
            self.exchange({"cell": [name, source]})
        except EngineError as error:
            return error
        return None

    def exchange(self, message: dict):
        """One request and its reply, answering the engine's callbacks meanwhile."""
        self._check_alive()
        if self.answering:
            # The engine waits for the node's answer and reads nothing else meanwhile.
            raise RuntimeError("a scenario's node cannot use the engine inside apply()")
        deadline = min(time.monotonic() + self.request_seconds, self.deadline)
        try:
            self.session.send(protocol.frame(message), deadline)
            while True:
                reply = self._receive(deadline)
                if isinstance(reply, dict) and "callback" in reply:
                    self.session.send(protocol.frame(self._answer(reply["callback"])), deadline)
                    continue
                return self._outcome(reply)
        except SessionTimeout:
            self._lose(f"did not finish within {self.request_seconds:g} s" if time.monotonic() < self.deadline
                       else "ran out of the submission's time budget")
        except SessionEnded as ended:
            self._lose(f"ended its process ({ended.reason})")
        except BadValue:
            self._lose("wrote something that is not an answer to the grader")

    def _receive(self, deadline: float):
        self.session.receive(protocol.frame_ready, deadline)
        return protocol.take_frame(self.session.inbox)

    def _outcome(self, reply):
        if not isinstance(reply, dict):
            raise BadValue("not a reply")
        if "done" in reply:
            return reply["done"]
        if "failed" in reply:
            type_name, message, where = protocol.decode_error(reply["failed"])
            # getattr(x, name, default) and hasattr must behave as on a local engine.
            raise error_class(type_name)(type_name, message, where)
        raise BadValue("not a reply")

    def _answer(self, callback) -> dict:
        """Run a grader-side node's apply() for the student's backward; the answer to send back."""
        try:
            handle, args = callback
            node = self.nodes[handle]
            values = [self._wrap(arg) for arg in args]
        except (TypeError, ValueError, KeyError, UnreadableReply):
            return {"raise": "the grader could not read the arguments of apply()"}
        self.answering = True
        try:
            result = node.apply(*values)
            return {"return": protocol.encode(result, self._ref)}
        except Exception as error:  # noqa: BLE001 - the scenario's node refused; the engine sees why
            return {"raise": f"{type(error).__name__}: {error}"}
        finally:
            self.answering = False

    def _lose(self, why: str) -> None:
        self.lost = EngineLost(why)
        raise self.lost

    def _check_alive(self) -> None:
        if self.lost is not None:
            raise EngineLost(str(self.lost))

    # -- values

    def encode(self, value):
        return protocol.encode(value, self._ref)

    def _ref(self, value) -> Ref:
        handle = getattr(value, "_handle", None) if isinstance(value, (RemoteObject, RemoteFunction)) else None
        if handle is None:
            raise BadValue(f"a {type(value).__name__} cannot be sent to the engine")
        return Ref(handle)

    def _wrap(self, data):
        """Decode a reply's value; objects become this connection's proxies."""
        try:
            value = protocol.decode(data)
        except BadValue as error:
            raise UnreadableReply(str(error)) from None
        return self._proxies_for(value)

    def _proxies_for(self, value):
        if isinstance(value, Ref):
            return self.proxy(value.handle, value.kind, value.type_name)
        if type(value) in (list, tuple):
            return type(value)(self._proxies_for(item) for item in value)
        return value

    def proxy(self, handle: int, kind: str, type_name: str):
        known = self.proxies.get(handle)
        if known is None:
            self.child_objects += 1
            if self.child_objects > MAX_CHILD_OBJECTS:
                raise UnreadableReply("more objects than any test reads")
            known = self._proxy_class(kind, type_name)(self, handle)
            self.proxies[handle] = known
        return known

    def _proxy_class(self, kind: str, type_name: str) -> type:
        """A proxy class carrying the remote class's name, so ``type(x).__name__`` reads the same."""
        key = (kind, type_name)
        if key not in self.classes:
            if len(self.classes) >= MAX_TYPE_NAMES:
                raise UnreadableReply("more class names than any engine has")
            base = RemoteTensor if kind == "tensor" else RemoteObject
            self.classes[key] = type(type_name, (base,), {"__slots__": ()})
        return self.classes[key]

    def new_proxy(self, cls):
        handle = self.new_handle()
        proxy = cls(self, handle)
        self.proxies[handle] = proxy
        return proxy


# --------------------------------------------------------------------------
# Proxies


class RemoteObject:
    """An object of the student's engine; attribute reads are requests."""

    __slots__ = ("_conn", "_handle", "__weakref__")

    def __init__(self, conn: Connection, handle: int) -> None:
        object.__setattr__(self, "_conn", conn)
        object.__setattr__(self, "_handle", handle)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)  # numpy and copy probe for protocols; the engine has none to offer
        return self._conn.read(["get", self._conn.new_handle(), self._handle, protocol.check_name(name)])

    def __setattr__(self, name: str, value) -> None:
        self._conn.defer(["set", self._handle, protocol.check_name(name), self._conn.encode(value)])

    def __getitem__(self, index):
        # A read, as an attribute is: a scenario indexes what it wants to look at (a node's apply() result).
        return self._conn.read(["binary", self._conn.new_handle(), "getitem", self._conn.encode(self),
                                self._conn.encode(index)])

    def __call__(self, *args, **kwargs):
        return self._result(self._call_result_class(), ["call", None, self._handle, self._conn.encode(list(args)),
                                                        protocol.encode_kwargs(kwargs, self._conn._ref)])

    def _call_result_class(self) -> type:
        return RemoteObject

    def __enter__(self):
        self._method(RemoteObject, "__enter__")
        return self

    def __exit__(self, *exc_info) -> bool:
        # As in one process, __exit__ runs whatever happened in the block: an
        # error of a queued operation in the block must not skip it (the child
        # stops a batch at its first error), or no_grad() would stay on for
        # every later scenario.  So the block's operations go first, alone.
        error = None
        try:
            self._conn.flush()
        except EngineError as raised:
            error = raised
        self._method(RemoteObject, "__exit__", None, None, None)
        try:
            self._conn.flush()
        except EngineError:
            if error is None:
                raise
        if error is not None:
            raise error  # the block's own error says more than a failing __exit__
        return False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of the student's engine>"

    def _method(self, cls, name: str, *args, **kwargs):
        return self._result(cls, ["method", None, self._handle, name, self._conn.encode(list(args)),
                                  protocol.encode_kwargs(kwargs, self._conn._ref)])

    def _result(self, cls, op: list):
        proxy = self._conn.new_proxy(cls)
        op[1] = proxy._handle
        self._conn.defer(op)
        return proxy


class RemoteTensor(RemoteObject):
    """A tensor of the student's engine: operators and methods are queued, reads wait for the value."""

    __slots__ = ()

    def _binary(self, name: str, left, right):
        return self._result(RemoteTensor, ["binary", None, name, self._conn.encode(left), self._conn.encode(right)])

    def __add__(self, other): return self._binary("add", self, other)
    def __radd__(self, other): return self._binary("add", other, self)
    def __sub__(self, other): return self._binary("sub", self, other)
    def __rsub__(self, other): return self._binary("sub", other, self)
    def __mul__(self, other): return self._binary("mul", self, other)
    def __rmul__(self, other): return self._binary("mul", other, self)
    def __truediv__(self, other): return self._binary("truediv", self, other)
    def __rtruediv__(self, other): return self._binary("truediv", other, self)
    def __pow__(self, other): return self._binary("pow", self, other)
    def __matmul__(self, other): return self._binary("matmul", self, other)

    def __neg__(self):
        return self._result(RemoteTensor, ["unary", None, "neg", self._conn.encode(self)])

    def sum(self, *args, **kwargs): return self._method(RemoteTensor, "sum", *args, **kwargs)
    def mean(self, *args, **kwargs): return self._method(RemoteTensor, "mean", *args, **kwargs)
    def reshape(self, *args, **kwargs): return self._method(RemoteTensor, "reshape", *args, **kwargs)
    def detach(self): return self._method(RemoteTensor, "detach")
    def backward(self, *args, **kwargs):
        self._method(RemoteObject, "backward", *args, **kwargs)
        if self._conn.nodes:
            # backward() is where the engine calls back the scenario's own
            # nodes, and the scenario may look at those calls next: wait for it.
            self._conn.flush()

    def zero_grad(self): self._method(RemoteObject, "zero_grad")
    def retain_grad(self): self._method(RemoteObject, "retain_grad")

    def __bool__(self):
        raise TypeError("a tensor has no truth value in a scenario; compare its .data")


class RemoteFunction:
    """Base of graph nodes a scenario defines (``class CountingNode(tt.Function)``).

    The node is created in the student's engine as a subclass of its own
    ``Function`` with these inputs; when the student's ``backward`` calls its
    ``apply``, the call comes back here, so the grader sees every call.
    """

    _conn: Connection  # set on the per-connection subclass RemoteEngine makes

    def __init__(self, *inputs) -> None:
        self._handle = self._conn.new_handle()
        self.inputs = inputs
        self._conn.nodes[self._handle] = self
        self._conn.proxies[self._handle] = self
        self._conn.defer(["node", self._handle, self._conn.encode(list(inputs))])

    def apply(self, *grad_outputs):
        raise NotImplementedError


class _Global(RemoteObject):
    """An engine name (Tensor, no_grad, ...): calling it is queued like any other operation."""

    __slots__ = ("_name",)

    def _call_result_class(self) -> type:
        return RemoteTensor if self._name == "Tensor" else RemoteObject


class RemoteEngine:
    """The ``tt`` a scenario sees when it runs against the student's engine.

    Each scenario gets a fresh one: the engine host forgets the previous
    scenario's objects, and an engine name is looked up when first used, so a
    name the notebook lacks costs only the scenarios that use it.
    """

    def __init__(self, conn: Connection, names) -> None:
        # Operations a failed scenario left queued must not run in this one.
        conn.pending = []
        conn.proxies.clear()
        conn.nodes.clear()
        conn.child_objects = 0
        conn.defer(["reset"])
        self._conn = conn
        self._names = frozenset(names)

    def __getattr__(self, name: str):
        if name.startswith("_") or name not in self._names:
            raise AttributeError(name)
        if name == "Function":
            value = type("Function", (RemoteFunction,), {"_conn": self._conn})
        else:
            value = self._conn.new_proxy(_Global)
            object.__setattr__(value, "_name", name)
            self._conn.defer(["global", value._handle, name])
        setattr(self, name, value)
        return value

    def scale_grad_in_place(self, tensor, factor: float) -> None:
        """Multiply ``tensor.grad`` in place, as an optimizer step would."""
        self._conn.defer(["scale", tensor._handle, "grad", self._conn.encode(float(factor))])
