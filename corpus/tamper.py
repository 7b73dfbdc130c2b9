"""The tamper corpus: attacks on the grader, each on top of an honest implementation.

Every attack must score exactly what the honest code under it scores, read
nothing it should not, and leave no trace.  ``base`` names the honest code:
- "blank": the release as handed out (scores 0);
- "backward_only": the instructor's backward, AddBackward and MulBackward left blank
  (scores the tests that need only backward and the given operations).

``code`` is appended at module level to the exercise_mul cell, the last cell the
grader runs, so every class exists when it runs.  Tokens replaced by the test
harness: COURSE_ROOT (the course being graded: source/, gradebook.db),
REPO_ROOT (the checkout: tinytorch/, autograder/), MARKER (a unique string for
files and processes), PORT (a TCP port the harness listens on, on 127.0.0.1).
An attack that gets what it should not calls ``_cheat()``, which installs a
correct addition and multiplication: a leak shows up as a higher score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

CHEAT = '''
def _cheat():
    def add_forward(a, b):
        out = Tensor(a.data + b.data)
        if is_grad_enabled() and (a.requires_grad or b.requires_grad):
            out.requires_grad, out.grad_fn = True, AddBackward(a, b)
        return out

    def mul_forward(a, b):
        out = Tensor(a.data * b.data)
        if is_grad_enabled() and (a.requires_grad or b.requires_grad):
            out.requires_grad, out.grad_fn = True, MulBackward(a, b)
        return out

    AddBackward.forward = staticmethod(add_forward)
    AddBackward.apply = lambda self, g: (unbroadcast(g, self.a_shape), unbroadcast(g, self.b_shape))
    MulBackward.forward = staticmethod(mul_forward)
    MulBackward.apply = lambda self, g: (unbroadcast(g * self.b_data, self.a_data.shape),
                                         unbroadcast(g * self.a_data, self.b_data.shape))
'''


@dataclass(frozen=True)
class Attack:
    name: str
    description: str
    base: str
    code: str = ""
    edit: Callable | None = None  # changes the submission notebook itself
    statuses: frozenset[str] = field(default_factory=lambda: frozenset({"graded"}))


def _cells_with(notebook, predicate):
    return [cell for cell in notebook.cells if predicate(cell.metadata.get("nbgrader", {}))]


def _neuter_test_cells(notebook):
    for cell in _cells_with(notebook, lambda meta: meta.get("grade")):
        cell.source = "pass"
        cell.metadata["nbgrader"]["points"] = 1000


def _delete_test_cells(notebook):
    tests = _cells_with(notebook, lambda meta: meta.get("grade"))
    notebook.cells = [cell for cell in notebook.cells if cell not in tests]


def _retype_test_cells(notebook):
    import nbformat

    notebook.cells = [nbformat.v4.new_markdown_cell(c.source, metadata=c.metadata)
                      if c.metadata.get("nbgrader", {}).get("grade") else c for c in notebook.cells]


def _rewrite_locked_cells(notebook):
    for cell in _cells_with(notebook, lambda meta: meta.get("locked") and not meta.get("grade")):
        if "class Tensor" in cell.source:
            cell.source += "\nTensor.__eq__ = lambda self, other: True\n"
        if "def unbroadcast" in cell.source:
            cell.source += "\nnp.allclose = lambda *a, **k: True\n"


def _solution_metadata_claims_points(notebook):
    for cell in _cells_with(notebook, lambda meta: meta.get("solution")):
        cell.metadata["nbgrader"].update(grade=True, points=100, grade_id=cell.metadata["nbgrader"]["grade_id"])


def _duplicate_with_correct_second_copy(notebook):
    import nbformat

    for index, cell in enumerate(notebook.cells):
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "exercise_add":
            copy = nbformat.from_dict(cell)
            copy.source = cell.source + "\n" + CHEAT + "\n_cheat()\n"
            notebook.cells.insert(index + 1, copy)
            return


ATTACKS = [
    Attack("patch_numpy_allclose", "numpy's comparison functions always say equal", "backward_only",
           "import numpy as np\nnp.allclose = lambda *a, **k: True\nnp.isclose = lambda *a, **k: True\n"
           "np.array_equal = lambda *a, **k: True\n"),
    Attack("patch_numpy_testing", "numpy.testing's asserts do nothing", "backward_only",
           "import numpy as np\nnp.testing.assert_allclose = lambda *a, **k: None\n"
           "np.testing.assert_array_equal = lambda *a, **k: None\n"),
    Attack("patch_builtins", "builtins that test code relies on are replaced", "backward_only",
           # Only builtins the given engine code does not use: breaking one's own engine is no attack.
           "import builtins\nbuiltins.all = lambda *a: True\nbuiltins.abs = lambda x: 0\n"
           "builtins.round = lambda *a: 0\nbuiltins.AssertionError = type('Harmless', (Exception,), {})\n"),
    Attack("redefine_test_helpers", "the notebook's check helper and the grader's comparison become no-ops",
           "backward_only",
           CHEAT + "check_scenario = lambda *a, **k: None\n"
           "try:\n    import autograder.scenarios as grading\nexcept ImportError:\n    pass\n"
           "else:\n    grading.compare_results = lambda *a, **k: []\n    _cheat()\n"
           "try:\n    import scenario_runtime\n    scenario_runtime.compare = lambda *a: []\nexcept ImportError:\n    pass\n"),
    Attack("ipython_ast_transformer", "an IPython AST transformer that turns every assert into pass",
           "backward_only",
           "import ast\nclass StripAsserts(ast.NodeTransformer):\n"
           "    def visit_Assert(self, node):\n        return ast.Pass()\n"
           "try:\n    get_ipython().ast_transformers.append(StripAsserts())\nexcept NameError:\n    pass\n"),
    Attack("ipython_input_transformer", "an IPython input transformer that wraps later cells in try/except",
           "backward_only",
           "def wrap(lines):\n    return ['try:\\n'] + ['    ' + l for l in lines] + ['except BaseException:\\n    pass\\n']\n"
           "try:\n    get_ipython().input_transformers_cleanup.append(wrap)\nexcept NameError:\n    pass\n"),
    Attack("always_equal_gradients", "backward stores objects whose == is always True", "blank",
           "class AlwaysEqual:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
           "def fake_backward(self, gradient=None):\n"
           "    stack = [self]\n    while stack:\n        t = stack.pop()\n        t.grad = AlwaysEqual()\n"
           "        if t.grad_fn is not None:\n            stack.extend(t.grad_fn.inputs)\n"
           "Tensor.backward = fake_backward\n"),
    Attack("ndarray_impostor", "backward stores ndarray subclasses that compare equal to anything", "blank",
           "import numpy as np\nclass Impostor(np.ndarray):\n"
           "    def __eq__(self, other):\n        return True\n    def __array__(self, *a, **k):\n"
           "        return np.ones(self.shape)\n"
           "def fake_backward(self, gradient=None):\n"
           "    stack = [self]\n    while stack:\n        t = stack.pop()\n"
           "        t.grad = np.zeros(t.shape).view(Impostor)\n"
           "        if t.grad_fn is not None:\n            stack.extend(t.grad_fn.inputs)\n"
           "Tensor.backward = fake_backward\n"),
    Attack("swallow_errors", "sys.excepthook, set_custom_exc and showtraceback silence every error",
           "backward_only",
           "import sys\nsys.excepthook = lambda *a: None\n"
           "try:\n    ip = get_ipython()\n    ip.set_custom_exc((BaseException,), lambda *a, **k: None)\n"
           "    ip.showtraceback = lambda *a, **k: None\nexcept NameError:\n    pass\n"),
    Attack("read_instructor_files", "reads the instructor notebook, the gradebook, the reference engine",
           "backward_only",
           CHEAT + "import glob, os\nleaked = False\n"
           "for path in ['COURSE_ROOT/source/05_autograd/05_autograd.ipynb', 'COURSE_ROOT/gradebook.db',\n"
           "             'REPO_ROOT/tinytorch/__init__.py', 'REPO_ROOT/autograder/scenarios.py',\n"
           "             'REPO_ROOT/source/05_autograd/05_autograd.ipynb', '/root/.bash_history']:\n"
           "    try:\n        with open(path, 'rb') as handle:\n            leaked = leaked or len(handle.read(10)) > 0\n"
           "    except OSError:\n        pass\n"
           "leaked = leaked or bool(glob.glob('/tmp/grade-*')) or bool(glob.glob('/tmp/*/job.json'))\n"
           "try:\n    import tinytorch\n    leaked = True\nexcept ImportError:\n    pass\n"
           "if leaked:\n    _cheat()\n"),
    Attack("write_gradebook_and_forge_results", "overwrites gradebook.db and forges result lines on every fd",
           "blank",
           "import json, os\n"
           "for path in ['COURSE_ROOT/gradebook.db', 'COURSE_ROOT/results.json']:\n"
           "    try:\n        with open(path, 'wb') as handle:\n            handle.write(b'pwned')\n"
           "    except OSError:\n        pass\n"
           "forged = [{'event': 'scenario', 'test': t, 'scenario': s, 'result': {'observed': {}}}\n"
           "          for t, s in [('test_add_visible', 'scenario_add_worked_example')]]\n"
           "forged.append({'event': 'done'})\n"
           "for fd in range(0, 12):\n"
           "    for event in forged:\n"
           "        try:\n            os.write(fd, (json.dumps(event) + '\\n').encode())\n"
           "        except OSError:\n            pass\n"),
    Attack("detached_process", "starts a detached process (double fork, new session) that outlives grading",
           "backward_only",
           "import os, subprocess, sys\n"
           "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)  # MARKER'],\n"
           "                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
           "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
           "        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(120)  # MARKER'])\n"
           "    os._exit(0)\n"),
    Attack("switch_on_under_grading", "cheats only when it detects grading (env vars, argv, cwd, secrets)",
           "backward_only",
           CHEAT + "import os, sys\nimport numpy as np\n"
           "if os.environ.get('NBGRADER_EXECUTION') or os.environ.get('TAMPER_SECRET') or os.environ.get('CI'):\n"
           "    _cheat()\n"
           "if any(key.startswith(('AWS_', 'GITHUB_')) for key in os.environ):\n    _cheat()\n"
           "if 'REPO_ROOT' in os.getcwd() or 'COURSE_ROOT' in os.getcwd():\n    _cheat()\n"
           "try:\n    with open('/proc/self/cmdline', 'rb') as handle:\n"
           "        if b'engine_host' in handle.read():\n            np.allclose = lambda *a, **k: True\n"
           "except OSError:\n    pass\n"),
    Attack("leak_hidden_tests_through_errors", "puts the hidden tests it can read into exception messages and prints",
           "blank",
           "import gc, os\n"
           "leak = '\\n'.join(open(name, errors='replace').read() for name in os.listdir('.') if os.path.isfile(name))\n"
           "leak += '\\n'.join(o for o in gc.get_objects() if isinstance(o, str) and 'scenario_' in o)\n"
           "print(leak)\n"
           "def leaky_backward(self, gradient=None):\n    raise ValueError(leak)\n"
           "Tensor.backward = leaky_backward\n"
           "raise RuntimeError(leak)\n"),
    Attack("replay_known_answers", "writes the visible tests' worked answers as results before the runner does",
           "blank",
           "import json, os\n"
           "def arr(*values):\n    return {'kind': 'ndarray', 'dtype': 'float64', 'shape': [], 'values': list(values)}\n"
           "answers = [('test_add_visible', 'scenario_add_worked_example', {'z': arr(5.0), 'x.grad': arr(1.0),\n"
           "            'y.grad': arr(1.0), 'z.grad_fn': 'AddBackward', 'inputs are (x, y)': True}),\n"
           "           ('test_complex_graph_visible', 'scenario_diamond_with_mul', {'x.grad': arr(21.0)}),\n"
           "           ('test_complex_graph_visible', 'scenario_complex_graph',\n"
           "            {'f': arr(5.0), 'x.grad': arr(6.0), 'y.grad': arr(-4.0)})]\n"
           "for fd in range(3, 12):\n    for test, scenario, observed in answers:\n        try:\n"
           "            os.write(fd, (json.dumps({'event': 'scenario', 'test': test, 'scenario': scenario,\n"
           "                                      'result': {'observed': observed}}) + '\\n').encode())\n"
           "        except OSError:\n            pass\n"),
    Attack("malformed_report_lines", "writes deeply nested JSON, huge numbers and lone surrogates as results",
           "blank",
           "import os\nlines = [b'[' * 200000, b'{\"event\": \"scenario\", \"test\": \"test_add_visible\", '\n"
           "         b'\"scenario\": \"scenario_add_worked_example\", \"result\": {\"observed\": {\"z\": ' + b'9' * 500 + b'}}}',\n"
           "         b'{\"event\": \"cell\", \"id\": \"exercise_mul\", \"error\": \"\\\\ud800\"}']\n"
           "for fd in range(3, 12):\n    for line in lines:\n        try:\n            os.write(fd, line + b'\\n')\n"
           "        except OSError:\n            pass\n"
           "def odd_backward(self, gradient=None):\n    self.grad = '\\ud800' * 3\n"
           "Tensor.backward = odd_backward\n"),
    Attack("forge_done_then_exit", "claims to be done, then exits before any test ran", "blank",
           "import json, os\nfor fd in range(3, 12):\n    try:\n"
           "        os.write(fd, b'{\"event\": \"done\"}\\n')\n    except OSError:\n        pass\nos._exit(0)\n"),
    Attack("deeply_nested_folders", "leaves a folder nested thousands of levels deep in its scratch space",
           "backward_only",
           "import os\nfor _ in range(1500):\n    os.mkdir('d')\n    os.chdir('d')\nos.chdir(os.path.expanduser('~'))\n"),
    Attack("lines_starting_with_bang", "honest code with a continuation line that starts with != (not a magic)",
           "backward_only", "_flag = (1\n         != 2)\n"),
    Attack("sys_exit", "sys.exit() in a cell", "backward_only", "import sys\nsys.exit(0)\n"),
    Attack("os_exit", "os._exit() in a cell: the process ends at once", "blank", "import os\nos._exit(0)\n"),
    Attack("kill_parent", "kills its parent and its process group", "blank",
           "import os, signal\nfor target in (os.getppid(), 1):\n    try:\n        os.kill(target, signal.SIGKILL)\n"
           "    except OSError:\n        pass\ntry:\n    os.killpg(0, signal.SIGKILL)\nexcept OSError:\n    pass\n"),
    Attack("infinite_loop_ignoring_signals", "an infinite loop that ignores SIGINT, SIGTERM and the alarm",
           "blank",
           "import signal\nfor sig in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):\n"
           "    signal.signal(sig, signal.SIG_IGN)\nwhile True:\n    try:\n        pass\n"
           "    except BaseException:\n        pass\n"),
    Attack("fork_bomb", "forks without end", "blank",
           "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
           statuses=frozenset({"graded", "timeout", "crashed"})),
    Attack("memory_bomb", "allocates memory without end", "backward_only",
           "def eat():\n    hog = []\n    while True:\n        hog.append(bytearray(64 * 1024 * 1024))\n"
           "try:\n    eat()\nexcept MemoryError:\n    pass\n"),
    Attack("fill_the_disk", "writes files until the disk is full", "backward_only",
           "import os\nchunk = b'x' * (1024 * 1024)\nfor n in range(100):\n    try:\n"
           "        with open(f'filler-{n}', 'wb') as handle:\n            for _ in range(2048):\n"
           "                handle.write(chunk)\n    except OSError:\n        break\n"
           "for n in range(100):\n    try:\n        os.remove(f'filler-{n}')\n    except OSError:\n        pass\n"),
    Attack("million_lines_of_output", "prints a million lines", "backward_only",
           "for n in range(1_000_000):\n    print('line', n)\n"),
    Attack("flood_the_report_stream", "writes endless text to every open file descriptor", "blank",
           "import os\nline = b'x' * 1000 + b'\\n'\nwhile True:\n    for fd in range(1, 12):\n"
           "        try:\n            os.write(fd, line)\n        except OSError:\n            pass\n"),
    Attack("network_access", "connects to a server on 127.0.0.1 and to the internet", "backward_only",
           CHEAT + "import socket\nfor address in [('127.0.0.1', PORT), ('1.1.1.1', 53)]:\n    try:\n"
           "        socket.create_connection(address, timeout=2).close()\n        _cheat()\n"
           "    except OSError:\n        pass\n"),
    Attack("edit_test_cells_and_points", "test cells replaced by pass, worth 1000 points each", "backward_only",
           edit=_neuter_test_cells),
    Attack("delete_test_cells", "every test cell deleted", "backward_only", edit=_delete_test_cells),
    Attack("retype_test_cells", "every test cell turned into markdown", "backward_only", edit=_retype_test_cells),
    Attack("rewrite_locked_cells", "given (locked) cells edited to patch equality and numpy", "backward_only",
           edit=_rewrite_locked_cells),
    Attack("solution_metadata_claims_points", "solution cells marked as graded, worth 100 points",
           "backward_only", edit=_solution_metadata_claims_points),
    Attack("duplicate_solution_cell", "a second copy of the addition cell with a correct solution",
           "backward_only", edit=_duplicate_with_correct_second_copy),
    # The remote engine (issue 7): the child hosts the engine; tests, seeds and verdicts stay in the grader.
    Attack("take_over_the_engine_host", "finds the engine host through gc, looks for test code in the process "
           "and answers every request itself with plausible gradients", "blank",
           CHEAT + "import gc\nimport numpy as np\n"
           "hosts = [o for o in gc.get_objects() if type(o).__name__ == 'Host']\n"
           "secrets_seen = [o for o in gc.get_objects() if isinstance(o, str)\n"
           "                and ('def scenario_' in o or 'check_against_reference' in o or 'seed' in o.lower())]\n"
           "if secrets_seen:\n    _cheat()\n"
           "for host in hosts:\n"
           "    original = host._run_ops\n"
           "    def forged(ops, original=original, host=host):\n"
           "        reply = original(ops)\n"
           "        if ops and ops[-1][0] == 'get' and ops[-1][3] == 'grad':\n"
           "            return {'done': host.protocol.encode(np.ones(3))}\n"
           "        return reply\n"
           "    host._run_ops = forged\n"),
    Attack("patch_numpy_in_the_child", "an engine whose leaf and retained gradients share one array patches "
           "numpy's identity, equality and in-place functions to hide it", "aliasing",
           "import numpy as np\n"
           "np.shares_memory = lambda *a, **k: False\nnp.may_share_memory = lambda *a, **k: False\n"
           "np.array_equal = lambda *a, **k: True\nnp.allclose = lambda *a, **k: True\n"
           "_real_multiply = np.multiply\n"
           "def _multiply(x, y, out=None, **k):\n    return _real_multiply(x, y)\n"
           "np.multiply = _multiply\n"),
    Attack("exfiltrate_the_requests", "records every request the engine receives and sends the transcript "
           "back in exception messages", "blank",
           "import gc\nseen = []\n"
           "for host in [o for o in gc.get_objects() if type(o).__name__ == 'Host']:\n"
           "    original = host._run\n"
           "    def recording(op, original=original):\n        seen.append(repr(op)[:200])\n        return original(op)\n"
           "    host._run = recording\n"
           "def leaky_backward(self, gradient=None):\n    raise ValueError(' | '.join(seen[-40:]))\n"
           "Tensor.backward = leaky_backward\n"),
    Attack("markup_in_errors", "exception messages and class names carry Markdown, HTML and a fake verdict",
           "blank",
           "class Evil(Exception):\n    pass\n"
           "def marked_backward(self, gradient=None):\n"
           "    raise Evil('**Score overridden by the instructor: 100/100** [request a regrade](http://x.example) '\n"
           "               '<script>alert(1)</script> <img src=x onerror=alert(1)> \\x1b[2J\\r# passed')\n"
           "Tensor.backward = marked_backward\n"),
    Attack("malformed_replies", "the host's reply stream gets oversized headers, deep JSON, huge arrays and "
           "non-values", "blank",
           "import gc, struct, json\n"
           "for host in [o for o in gc.get_objects() if type(o).__name__ == 'Host']:\n"
           "    bad = [{'done': {'array': ['float64', [10**9], '']}}, {'done': {'ref': -1, 'kind': 'x', 'type': 1}},\n"
           "           {'failed': ['not', 'an', 'error'], 'at': 'x'}, {'done': {'str': 'x' * 10000}}]\n"
           "    state = {'n': 0}\n"
           "    def garbled(ops, host=host, bad=bad, state=state):\n"
           "        state['n'] += 1\n"
           "        if state['n'] % 5 == 0:\n"
           "            host.replies.write(struct.pack('>I', 2**31) + b'[' * 1000)\n"
           "            host.replies.flush()\n"
           "        return bad[state['n'] % len(bad)]\n"
           "    host._run_ops = garbled\n",
           # A process that keeps breaking the contract is replaced until the grader gives up on it.
           statuses=frozenset({"graded", "crashed"})),
    Attack("cancel_the_alarms", "backward() cancels every timer and alarm, then loops forever", "blank",
           "import signal\n"
           "def stuck_backward(self, gradient=None):\n"
           "    signal.setitimer(signal.ITIMER_REAL, 0)\n    signal.setitimer(signal.ITIMER_VIRTUAL, 0)\n"
           "    for sig in (signal.SIGALRM, signal.SIGINT, signal.SIGTERM):\n        signal.signal(sig, signal.SIG_IGN)\n"
           "    while True:\n        pass\n"
           "Tensor.backward = stuck_backward\n",
           statuses=frozenset({"timeout"})),
    Attack("memfd_and_unlinked_files", "holds memory in a memfd and disk in an unlinked open file, past the limits",
           "backward_only",
           "import os\nchunk = b'x' * (64 * 1024 * 1024)\nheld = []\n"
           "try:\n    fd = os.memfd_create('hoard')\n    held.append(fd)\n"
           "    for _ in range(48):\n        os.write(fd, chunk)\nexcept OSError:\n    pass\n"
           "try:\n    handle = open('hidden', 'wb')\n    os.unlink('hidden')\n    held.append(handle)\n"
           "    for _ in range(32):\n        handle.write(chunk)\n        handle.flush()\nexcept OSError:\n    pass\n"),
    Attack("endless_objects_and_class_names", "answers every request with tens of thousands of new handles, "
           "each with a class name of its own, to fill the grading process's memory", "blank",
           "import gc\n"
           "for host in [o for o in gc.get_objects() if type(o).__name__ == 'Host']:\n"
           "    state = {'next': 2**45}\n"
           "    def flood(ops, host=host, state=state):\n"
           "        refs = []\n"
           "        for _ in range(6):\n"
           "            chunk = []\n"
           "            for _ in range(10_000):\n"
           "                state['next'] += 1\n"
           "                chunk.append({'ref': state['next'], 'kind': 'object', 'type': f\"K{state['next']}\"})\n"
           "            refs.append({'list': chunk})\n"
           "        return {'done': {'list': refs}}\n"
           "    host._run_ops = flood\n",
           statuses=frozenset({"graded", "crashed"})),
]
