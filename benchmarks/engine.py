#!/usr/bin/env python3
"""Benchmark tinytorch against PyTorch eager (CPU) and a hand-written numpy floor.

    .venv/bin/python benchmarks/engine.py                    # the full run, 1-2 minutes
    .venv/bin/python benchmarks/engine.py --repeats 3 --skip-long-chain   # a quick look
    OPENBLAS_NUM_THREADS=2 .venv/bin/python benchmarks/engine.py   # BLAS and torch on 2 threads

What is measured (see benchmarks/README.md for the figures and the targets):

1. Per-op overhead: a 10,000-op chain on shape-(4,) float32 tensors, where
   the arithmetic itself is negligible and what remains is the cost of
   recording and walking the graph.  Forward, backward, and freeing the graph
   are timed separately.
2. A 1,000,000-op chain of the same kind, once, to show that depth is no
   problem for either engine (no recursion) and how the cost per op holds up
   at that scale.
3. A 100-op chain on (256, 256) float32 tensors, alternating matmul and an
   elementwise op, then a sum and backward: the work is real here, so the
   engine's overhead should vanish next to the same computation written by
   hand in numpy (forward and backward, no graph), which is the floor.
4. Memory: bytes per op that a 100,000-op graph keeps alive.

Timings are process CPU time (``--clock wall`` for wall-clock time), medians
over several repeats, with the engines interleaved so that background load
hits them alike.  The machine may be shared: compare the ratios of one run
rather than absolute times across runs.  Nothing here asserts on time; the
targets are reported as met or missed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

# One BLAS thread for numpy and torch alike, unless the caller asks for more
# (OPENBLAS_NUM_THREADS=2 ...).  It must be fixed before numpy loads OpenBLAS.
# On a shared 2-core machine, multi-threaded BLAS mostly measures the
# neighbours' load; a single thread gives steadier ratios.
THREADS_FROM_CALLER = "OPENBLAS_NUM_THREADS" in os.environ
BLAS_THREADS = int(os.environ.setdefault("OPENBLAS_NUM_THREADS", "1"))

import numpy as np  # noqa: E402

# Make ``import tinytorch`` work from a plain checkout, without installing it.
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import tinytorch  # noqa: E402

try:
    import torch
except ImportError:
    torch = None

OVERHEAD_CHAIN = 10_000
LONG_CHAIN = 1_000_000
MEMORY_CHAIN = 100_000
MATMUL_CHAIN = 100  # 50 matmuls, 50 elementwise ops
MATMUL_SIZE = 256
DTYPE = np.float32  # both engines, everywhere: PyTorch's default dtype

# Process CPU time by default: on a shared machine it leaves out the time
# other jobs hold the CPU, and with every engine single-threaded it is the
# work done.  --clock wall switches to wall-clock time.
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}

# Targets: tinytorch / reference at most this.
TARGET_OVERHEAD = 1.0  # per-op forward + backward, against PyTorch
TARGET_FLOOR = 1.3  # (256, 256) chain, against hand-written numpy
TARGET_MEMORY = 1.0  # bytes per op, against PyTorch

BLAS_ENVIRONMENT = [
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
]


# ------------------------------------------------------------------ engines
class Tinytorch:
    name = "tinytorch"

    @staticmethod
    def tensor(array: np.ndarray, requires_grad: bool = False):
        return tinytorch.Tensor(array.copy(), requires_grad=requires_grad)

    @staticmethod
    def gradient(tensor) -> np.ndarray:
        return tensor.grad


class Torch:
    name = "torch"

    @staticmethod
    def tensor(array: np.ndarray, requires_grad: bool = False):
        return torch.tensor(array, requires_grad=requires_grad)

    @staticmethod
    def gradient(tensor) -> np.ndarray:
        return tensor.grad.numpy()


def available_engines() -> list:
    return [Tinytorch, Torch] if torch is not None else [Tinytorch]


# -------------------------------------------------------- chains of small ops
def chain_leaves(engine):
    """x (input), scale (a constant) and bias (a parameter), all of shape (4,)."""
    x = engine.tensor(np.full(4, 0.5, dtype=DTYPE), requires_grad=True)
    scale = engine.tensor(np.full(4, 2 / 3, dtype=DTYPE))
    bias = engine.tensor(np.zeros(4, dtype=DTYPE), requires_grad=True)
    return x, scale, bias


def build_chain(x, scale, bias, length: int):
    """The op mix of every small-op benchmark; the same code drives both engines.

    Each round applies w -> tanh(w * 2/3 + 0) * 1.5, whose slope is about 1
    near 0: values and gradients stay normal float32 numbers however long the
    chain (subnormal numbers would make the arithmetic itself slow).
    """
    w = x
    for _ in range(length // 4):
        w = w * scale  # a constant tensor
        w = w + bias  # a parameter: its gradient collects one term per round
        w = w.tanh()
        w = w * 1.5  # a Python scalar
    return w


def time_small_op_chain(engine, length: int, clock) -> dict:
    """Seconds for forward, backward and freeing one chain of ``length`` ops."""
    x, scale, bias = chain_leaves(engine)
    gc.collect()
    start = clock()
    w = build_chain(x, scale, bias, length)
    built = clock()
    w.sum().backward()
    walked = clock()
    del w
    freed = clock()
    return {"forward": built - start, "backward": walked - built, "free": freed - walked}


def median_times(run, engines, repeats: int) -> dict:
    """Run ``run(engine)`` ``repeats`` times per engine, interleaved; median of each field."""
    samples = {engine.name: [] for engine in engines}
    for _ in range(repeats):
        for engine in engines:
            samples[engine.name].append(run(engine))
    return {
        name: {field: statistics.median(s[field] for s in runs) for field in runs[0]}
        for name, runs in samples.items()
    }


# -------------------------------------------------- (256, 256) matmul chain
def matmul_chain_inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    size = MATMUL_SIZE
    x = rng.standard_normal((size, size)).astype(DTYPE)
    # Scaled so that activations neither explode nor vanish over 50 layers.
    weights = [
        (rng.standard_normal((size, size)) * (1.5 / np.sqrt(size))).astype(DTYPE)
        for _ in range(MATMUL_CHAIN // 2)
    ]
    return x, weights


def matmul_chain_engine(engine, x_array, weight_arrays, clock):
    """h = act(h @ W) fifty times, act alternating tanh and relu; then sum and backward."""
    x = engine.tensor(x_array)
    weights = [engine.tensor(w, requires_grad=True) for w in weight_arrays]
    start = clock()
    h = x
    for layer, w in enumerate(weights):
        h = h @ w
        h = h.tanh() if layer % 2 == 0 else h.relu()
    h.sum().backward()
    elapsed = clock() - start
    return elapsed, [engine.gradient(w) for w in weights]


def matmul_chain_by_hand(x, weights, clock):
    """The same computation in plain numpy, with the backward pass written out."""
    start = clock()
    layer_inputs = []  # what each weight's gradient needs
    activation_saves = []  # what each activation's derivative needs
    h = x
    for layer, w in enumerate(weights):
        layer_inputs.append(h)
        z = h @ w
        if layer % 2 == 0:
            h = np.tanh(z)
            activation_saves.append(h)
        else:
            h = np.maximum(z, 0)
            activation_saves.append(z > 0)
    h.sum()

    grad_h = np.ones_like(h)
    grads = [None] * len(weights)
    for layer in reversed(range(len(weights))):
        if layer % 2 == 0:
            grad_z = grad_h * (1 - activation_saves[layer] ** 2)
        else:
            grad_z = grad_h * activation_saves[layer]
        grads[layer] = layer_inputs[layer].T @ grad_z
        if layer > 0:  # the input x needs no gradient
            grad_h = grad_z @ weights[layer].T
    elapsed = clock() - start
    return elapsed, grads


def time_matmul_chain(repeats: int, clock) -> dict:
    x, weights = matmul_chain_inputs()
    runners = {"numpy by hand": lambda: matmul_chain_by_hand(x, weights, clock)}
    for engine in available_engines():
        runners[engine.name] = lambda engine=engine: matmul_chain_engine(engine, x, weights, clock)

    # Same numbers from every runner, or the comparison would be meaningless.
    # Compared as whole matrices: float32 rounding differs between BLAS
    # libraries and grows over 50 layers, so single elements may differ more.
    _, expected = runners["numpy by hand"]()
    for name, runner in runners.items():
        _, grads = runner()
        for got, want in zip(grads, expected):
            relative_error = np.linalg.norm(got - want) / np.linalg.norm(want)
            if relative_error > 1e-2:
                raise AssertionError(f"{name} computes different gradients ({relative_error:.1e})")

    samples = {name: [] for name in runners}
    for _ in range(repeats):
        for name, runner in runners.items():
            gc.collect()
            samples[name].append(runner()[0])
    return {name: statistics.median(times) for name, times in samples.items()}


# ------------------------------------------------------------------- memory
def resident_bytes() -> int | None:
    """This process's resident set size, from /proc (Linux) or psutil."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss


def rss_bytes_per_op(engine_name: str) -> float | None:
    """Resident-memory growth per op while a MEMORY_CHAIN-op graph is alive.

    Runs in this (fresh) process: a warm-up chain first makes the engine do
    its one-time allocations, then the graph is built and the growth of the
    resident set is divided by its number of ops.  Same method for both
    engines, so the two figures are comparable.
    """
    engine = {"tinytorch": Tinytorch, "torch": Torch}[engine_name]
    x, scale, bias = chain_leaves(engine)
    warm_up = build_chain(x, scale, bias, 1_000)
    del warm_up
    gc.collect()
    before = resident_bytes()
    if before is None:
        return None
    w = build_chain(x, scale, bias, MEMORY_CHAIN)
    after = resident_bytes()
    del w
    return (after - before) / MEMORY_CHAIN


def measure_rss_in_fresh_process(engine_name: str) -> float | None:
    """A new interpreter per engine, so neither inherits the other's freed memory."""
    command = [sys.executable, __file__, "--rss-probe", engine_name]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)["bytes_per_op"]


def tracemalloc_bytes_per_op() -> float:
    """Bytes per op that Python's allocators (numpy's data included) hold for a tinytorch graph."""
    x, scale, bias = chain_leaves(Tinytorch)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    w = build_chain(x, scale, bias, MEMORY_CHAIN)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del w
    return (after - before) / MEMORY_CHAIN


# ------------------------------------------------------------ environment
def blas_description() -> list[str]:
    lines = []
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        lines.append(f"numpy BLAS: {blas['name']} {blas.get('version', '')}")
        if "openblas configuration" in blas:
            lines.append(f"  {blas['openblas configuration']}")
    except (TypeError, KeyError):  # numpy too old for mode="dicts"
        lines.append("numpy BLAS: see numpy.show_config()")
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        lines.append(
            f"  threadpoolctl not installed; OpenBLAS reads OPENBLAS_NUM_THREADS={BLAS_THREADS} "
            f"at start-up"
        )
    else:
        for pool in threadpool_info():
            lines.append(
                f"  threadpool {pool['internal_api']} ({pool.get('architecture', '?')}): "
                f"{pool['num_threads']} threads"
            )
    for variable in BLAS_ENVIRONMENT:
        value = os.environ.get(variable, "(unset)")
        if variable == "OPENBLAS_NUM_THREADS" and not THREADS_FROM_CALLER:
            value += " (set by this script)"
        lines.append(f"  {variable}={value}")
    return lines


def print_environment() -> None:
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"torch {torch.__version__ if torch else 'not installed'}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} logical CPUs, {cpu_model()}")
    for line in blas_description():
        print(line)
    if torch is not None:
        torch_blas = "MKL" if torch.backends.mkl.is_available() else "see torch.__config__.show()"
        print(f"torch: {torch.get_num_threads()} intra-op threads (torch.set_num_threads), "
              f"{torch.get_num_interop_threads()} inter-op threads, BLAS {torch_blas}")
    print(f"dtype: {np.dtype(DTYPE).name} on both engines")
    print()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# ------------------------------------------------------------------- report
class Table:
    """Rows of tinytorch against a reference, with the ratio and the target verdict."""

    HEADER = ("benchmark", "tinytorch", "reference", "ref. is", "unit", "ratio", "target")

    def __init__(self) -> None:
        self.rows = []

    def add(self, what, tinytorch_value, reference_value, reference, unit, target=None):
        measured = tinytorch_value is not None and reference_value
        ratio = tinytorch_value / reference_value if measured else None
        if target is None:
            verdict = ""
        elif ratio is None:
            verdict = f"not measured (<= {target:g}x)"
        elif ratio <= target:
            verdict = f"met (<= {target:g}x)"
        else:
            verdict = f"MISSED (<= {target:g}x)"
        ratio_text = f"{ratio:.2f}x" if ratio is not None else "n/a"
        self.rows.append(
            (what, format_number(tinytorch_value), format_number(reference_value),
             reference, unit, ratio_text, verdict)
        )

    def print(self) -> None:
        print("| " + " | ".join(self.HEADER) + " |")
        print("|" + "|".join(["---"] * len(self.HEADER)) + "|")
        for row in self.rows:
            print("| " + " | ".join(row) + " |")


def format_number(value) -> str:
    if value is None:
        return "n/a"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def add_overhead_rows(table: Table, repeats: int, clock) -> None:
    engines = available_engines()
    for engine in engines:  # warm-up: first calls pay for imports and caches
        time_small_op_chain(engine, 1_000, clock)
    seconds = median_times(
        lambda engine: time_small_op_chain(engine, OVERHEAD_CHAIN, clock), engines, repeats
    )
    # microseconds per op, by engine and phase
    per_op = {
        name: {phase: value / OVERHEAD_CHAIN * 1e6 for phase, value in phases.items()}
        for name, phases in seconds.items()
    }
    tiny, reference = per_op["tinytorch"], per_op.get("torch")
    label = f"{OVERHEAD_CHAIN:,}-op chain, (4,)"
    for phase in ("forward", "backward"):
        table.add(f"{label}: {phase}", tiny[phase], phase_value(reference, phase),
                  "torch", "us/op")
    table.add(
        f"{label}: forward + backward",
        tiny["forward"] + tiny["backward"],
        phase_value(reference, "forward", "backward"),
        "torch", "us/op", TARGET_OVERHEAD,
    )
    table.add(f"{label}: freeing the graph", tiny["free"], phase_value(reference, "free"),
              "torch", "us/op")


def phase_value(times: dict | None, *phases: str) -> float | None:
    """The sum of some phases of one engine's times; None for an engine that did not run."""
    if times is None:
        return None
    return sum(times[phase] for phase in phases)


def add_long_chain_rows(table: Table, clock, notes: list[str]) -> None:
    seconds = {}
    for engine in available_engines():
        try:
            seconds[engine.name] = time_small_op_chain(engine, LONG_CHAIN, clock)
        except (RecursionError, RuntimeError, MemoryError) as error:
            notes.append(f"{engine.name} failed the {LONG_CHAIN:,}-op chain: {error!r}")
    tiny, reference = seconds.get("tinytorch"), seconds.get("torch")
    for phase in ("forward", "backward"):
        table.add(f"{LONG_CHAIN:,}-op chain, (4,): {phase} (1 run)",
                  phase_value(tiny, phase), phase_value(reference, phase), "torch", "s")


def add_matmul_rows(table: Table, repeats: int, clock) -> None:
    seconds = time_matmul_chain(repeats, clock)
    label = f"{MATMUL_CHAIN}-op matmul chain, ({MATMUL_SIZE}, {MATMUL_SIZE}): fwd + bwd"
    tiny = seconds["tinytorch"] * 1e3
    table.add(label, tiny, seconds["numpy by hand"] * 1e3, "numpy by hand", "ms", TARGET_FLOOR)
    if "torch" in seconds:
        table.add(label, tiny, seconds["torch"] * 1e3, "torch", "ms")


def add_memory_rows(table: Table) -> None:
    label = f"{MEMORY_CHAIN:,}-op graph kept alive"
    tiny_rss = measure_rss_in_fresh_process("tinytorch")
    torch_rss = measure_rss_in_fresh_process("torch") if torch is not None else None
    table.add(f"{label}, RSS growth", tiny_rss, torch_rss, "torch", "bytes/op", TARGET_MEMORY)
    table.add(f"{label}, tracemalloc", tracemalloc_bytes_per_op(), None, "-", "bytes/op")


def print_method(repeats: int, clock_name: str, notes: list[str]) -> None:
    lines = [
        f"time: {'process CPU time' if clock_name == 'cpu' else 'wall-clock time'}; "
        f"medians of {repeats} repeats, engines interleaved; gc enabled and collected "
        "before each repeat.",
        "small-op chains: w*c (constant), w+b (parameter), tanh, w*1.5, repeated; "
        "forward = building the chain, backward = w.sum().backward(), freeing = dropping "
        "the last reference (not part of the target).",
        f"matmul chain: h = act(h @ W_i) for {MATMUL_CHAIN // 2} weights, act alternating "
        "tanh and relu, then sum and backward; gradients for the weights only; every "
        "runner's gradients are checked against the hand-written ones first.",
        f"memory: growth of the resident set while a {MEMORY_CHAIN:,}-op graph of the "
        "small-op mix is alive (before backward), each engine in a fresh interpreter "
        "after a warm-up chain; tracemalloc counts what Python and numpy allocate "
        "(tinytorch only: torch's C++ allocations are invisible to it).",
    ]
    if torch is None:
        lines.append("PyTorch is not installed: the torch columns are n/a.")
    print("Method:")
    for line in lines + notes:
        print(f"- {line}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7, help="repeats per timing (median)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="cpu: process CPU time (default); wall: wall-clock time")
    parser.add_argument("--skip-long-chain", action="store_true",
                        help="skip the 1,000,000-op chain")
    parser.add_argument("--rss-probe", choices=["tinytorch", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    clock = CLOCKS[args.clock]

    if torch is not None:
        torch.set_num_threads(BLAS_THREADS)  # the same as numpy's BLAS
    if args.rss_probe:  # we are the fresh interpreter of measure_rss_in_fresh_process
        print(json.dumps({"bytes_per_op": rss_bytes_per_op(args.rss_probe)}))
        return 0

    print_environment()
    started = time.perf_counter()
    table = Table()
    notes = []
    add_overhead_rows(table, args.repeats, clock)
    if not args.skip_long_chain:
        add_long_chain_rows(table, clock, notes)
    add_matmul_rows(table, args.repeats, clock)
    add_memory_rows(table)

    table.print()
    print()
    print_method(args.repeats, args.clock, notes)
    print(f"Total time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
