#!/usr/bin/env python3
"""Benchmark the class command against nbgrader autograde on a class of 100, in the same run.

    .venv/bin/python benchmarks/batch.py                 # 100 submissions, nbgrader on a subset (about 5 min)
    .venv/bin/python benchmarks/batch.py --thousand      # also 1,000 correct submissions (about 10 more min)
    .venv/bin/python benchmarks/batch.py --shards 2      # only: the class unsharded, then in 2 shards merged

The class: every validity-corpus notebook (correct and wrong engines), every
tamper-corpus attack (loops, crashes, fork bombs, hostile output), damaged
files (truncated, empty, not JSON, binary) and missing uploads, topped up
with correct notebooks to 100.  Printed, in one table:

1. The class command (``grade-class``, default workers) over the whole class:
   wall time, throughput, and peak memory of its whole process tree (sampled
   from /proc every 0.1 s).
2. ``nbgrader autograde`` (one process, the course's configuration, with the
   per-cell timeout set to the trusted grader's per-request 10 s) over a
   subset of the same class: correct, wrong, damaged and missing submissions
   in the class's proportions, never the hostile ones (nbgrader runs them
   with this user's rights: fork bombs, writes to the course).  Its
   per-submission cost, extrapolated to the class, is stated as such; leaving
   out the attacks, several of which run into the timeout, makes nbgrader
   look faster than it would be on the real class.
3. The floor of the class command's work for one submission: starting the
   sandboxed child with numpy (measured), plus the instructor's engine running
   every scenario (the reference engine in this process: a lower bound for an
   engine behind the proxies).  The class command's marginal cost is measured
   as the difference between grading 40 and 20 correct submissions, per
   submission and per worker.
4. With ``--thousand``: 1,000 correct submissions, time per block of 100
   (linear?), peak memory in the first and second half (flat?), and processes
   left behind afterwards.
5. With ``--shards N`` (instead of the above): the same class graded in one
   run (the baseline), then as N shard runs (``grade-class --shard i/N``, each
   in its own copy of the course, as CI jobs would be) one after the other,
   then merged (``merge``).  A CI matrix runs the shards on N machines at once,
   so its wall time is the slowest shard plus the merge; the shards are also
   run all at once on this machine, sharing its cores.

Nothing here asserts; targets are reported as met or missed with the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402

from autograder.engine_runner import remove_tree  # noqa: E402
from autograder.course import ASSIGNMENT, NOTEBOOK, copy_course, nbgrader, release_notebook, source_notebook  # noqa: E402
from autograder.variants import (attack_notebook, instructor_bodies, load_corpus_file,  # noqa: E402
                                 submission_notebook)
from autograder.validity import corpus_notebooks  # noqa: E402
from autograder.variants import load_variants  # noqa: E402


def instructor_notebook():
    release = nbformat.read(release_notebook(ROOT), as_version=4)
    return submission_notebook(release, instructor_bodies(nbformat.read(source_notebook(ROOT), as_version=4)))


def build_class(course: Path, size: int) -> dict[str, str]:
    """Write a class of ``size`` into course/submitted; returns student -> kind."""
    kinds: dict[str, str] = {}

    def put(student: str, kind: str, notebook=None, raw: bytes | None = None) -> None:
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True, exist_ok=True)
        if notebook is not None:
            nbformat.write(notebook, folder / NOTEBOOK)
        elif raw is not None:
            (folder / NOTEBOOK).write_bytes(raw)
        kinds[student] = kind

    warnings.filterwarnings("ignore", module="nbformat")  # an attack duplicates a cell id on purpose
    notebooks, _ = corpus_notebooks(ROOT, load_variants(ROOT / "corpus" / "validity.py"))
    for name, notebook in notebooks.items():
        put(f"v_{name}", "correct" if name.startswith("correct_") or name == "instructor" else "wrong", notebook)
    attacks = load_corpus_file(ROOT / "corpus" / "tamper.py").ATTACKS
    tokens = {"COURSE_ROOT": str(course), "REPO_ROOT": str(ROOT), "MARKER": "batch-bench", "PORT": "9"}
    for attack in attacks:
        put(f"t_{attack.name}", "hostile", attack_notebook(attack, root=ROOT, tokens=tokens))
    text = release_notebook(ROOT).read_bytes()
    put("d_truncated", "damaged", raw=text[: len(text) // 2])
    put("d_empty", "damaged", raw=b"")
    put("d_not_json", "damaged", raw=b"print('hello')\n")
    put("d_binary", "damaged", raw=os.urandom(4096))
    put("m_missing_1", "missing")
    put("m_missing_2", "missing")
    correct = instructor_notebook()
    index = 0
    while len(kinds) < size:
        put(f"c_{index:04d}", "correct", correct)
        index += 1
    return kinds


class TreeMemory:
    """Peak resident memory of a process and all its descendants, sampled from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.samples = pid, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            total = sum(_rss(pid) for pid in {self.pid} | descendants(self.pid))
            self.peak = max(self.peak, total)
            self.samples.append((time.monotonic(), total))
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            try:
                children = task.read_text().split()
            except OSError:
                continue
            for child in children:
                found.add(int(child))
                todo.append(int(child))
    return found


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_class_command(course: Path, extra: list[str] = ()) -> tuple[float, int, list]:
    command = [sys.executable, "-m", "autograder", "--root", str(course), "grade-class", "--seed", "1", *extra]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    memory = TreeMemory(process.pid)
    code = process.wait()
    memory.stop()
    if code != 0:
        raise SystemExit(f"grade-class failed with exit code {code}")
    return time.perf_counter() - started, memory.peak, memory.samples


def run_nbgrader(course: Path, students: list[str]) -> float:
    """nbgrader autograde over ``students`` (one process), per-cell timeout 10 s; returns wall seconds."""
    subset = copy_course(ROOT, course.parent / "nbgrader-course", folders=("source",))
    with (subset / "nbgrader_config.py").open("a") as config:
        config.write("\nc.Execute.timeout = 10\n")
    for student in students:
        shutil.copytree(course / "submitted" / student, subset / "submitted" / student)
    nbgrader("generate_assignment", ASSIGNMENT, "--force", "--create", root=subset)
    started = time.perf_counter()
    nbgrader("autograde", ASSIGNMENT, "--force", "--create", root=subset, check=False)
    return time.perf_counter() - started


def floor_seconds() -> tuple[float, float]:
    """(sandboxed child start with numpy, every scenario on the reference engine) for one submission."""
    from autograder import sandbox
    from autograder.assignment import load_assignment
    from autograder.grader import DEFAULT_LIMITS, reference_results

    isolation = sandbox.detect_isolation()
    binds = sandbox.package_binds("numpy") if isolation.level != "none" else []
    inside = sorted({str(Path(path).parent) for _, path in binds})
    code = f"import sys; sys.path[:0] = {inside!r}; import numpy"
    starts = []
    for _ in range(5):
        with tempfile.TemporaryDirectory() as scratch:
            began = time.perf_counter()
            sandbox.run_sandboxed([sys.executable, "-E", "-s", "-c", code], scratch=Path(scratch),
                                  read_only=binds, limits=DEFAULT_LIMITS, isolation=isolation)
            starts.append(time.perf_counter() - began)
    assignment = load_assignment(source_notebook(ROOT))
    engine = []
    for seed in range(3):
        began = time.perf_counter()
        reference_results(assignment, seed)
        engine.append(time.perf_counter() - began)
    return statistics.median(starts), statistics.median(engine)


def fresh_course(parent: Path, name: str) -> Path:
    return copy_course(ROOT, parent / name)


def compare(args, work: Path, rows: list, workers: int):
    """The class of 100 under both graders, and the marginal cost against the floor (rows appended)."""
    course = fresh_course(work, "class")
    kinds = build_class(course, args.size)
    print(f"class of {len(kinds)}: " + ", ".join(f"{sum(k == kind for k in kinds.values())} {kind}"
                                                  for kind in ("correct", "wrong", "hostile", "damaged", "missing")),
          flush=True)
    seconds, peak, _ = run_class_command(course)
    rows.append(("class command, whole class", f"{seconds:.1f} s", f"{len(kinds) / seconds:.2f}/s",
                 f"{peak / 2**20:.0f} MiB", f"{workers} workers"))

    # The same mix for nbgrader: every kind, in the class's proportions.
    by_kind: dict[str, list[str]] = {}
    for student, kind in sorted(kinds.items()):
        by_kind.setdefault(kind, []).append(student)
    safe = ("correct", "wrong", "damaged", "missing")
    safe_count = sum(len(by_kind.get(kind, [])) for kind in safe)
    subset = []
    while len(subset) < args.nbgrader_subset:
        for kind in safe:
            pool = [s for s in by_kind.get(kind, []) if s not in subset]
            share = round(args.nbgrader_subset * len(by_kind.get(kind, [])) / safe_count) or 1
            subset += pool[:max(0, min(share, args.nbgrader_subset - len(subset)))]
        if not any(s not in subset for kind in safe for s in by_kind.get(kind, [])):
            break
    nb_seconds = run_nbgrader(course, subset)
    per_notebook = nb_seconds / len(subset)
    extrapolated = per_notebook * len(kinds)
    same = fresh_course(work, "same-subset")
    for student in subset:
        shutil.copytree(course / "submitted" / student, same / "submitted" / student)
    same_seconds, _, _ = run_class_command(same)
    rows.append((f"nbgrader autograde, {len(subset)} of them (no attacks)", f"{nb_seconds:.1f} s",
                 f"{1 / per_notebook:.2f}/s", "", f"{per_notebook:.2f} s per notebook"))
    rows.append((f"class command, the same {len(subset)}", f"{same_seconds:.1f} s",
                 f"{len(subset) / same_seconds:.2f}/s", "", "includes its fixed start and report"))
    rows.append(("nbgrader autograde, whole class (extrapolated)", f"{extrapolated:.0f} s", "", "",
                 "per-notebook cost of the subset x class size"))
    speedup = extrapolated / seconds
    same_speedup = nb_seconds / same_seconds

    # Marginal cost: 40 minus 20 correct submissions.
    times = {}
    for size in (20, 40):
        small = fresh_course(work, f"correct-{size}")
        notebook = instructor_notebook()
        for index in range(size):
            folder = small / "submitted" / f"c_{index:04d}" / ASSIGNMENT
            folder.mkdir(parents=True)
            nbformat.write(notebook, folder / NOTEBOOK)
        times[size], _, _ = run_class_command(small)
    marginal = (times[40] - times[20]) / 20 * workers
    start, engine = floor_seconds()
    floor = start + engine
    rows.append(("marginal cost per submission, per worker", f"{marginal:.2f} s", "", "",
                 f"(T(40) - T(20)) / 20 x {workers}; T(20) = {times[20]:.1f} s, T(40) = {times[40]:.1f} s"))
    rows.append(("floor: sandboxed child + numpy, + scenarios", f"{floor:.2f} s", "", "",
                 f"{start:.2f} s start + {engine:.2f} s reference engine"))

    return speedup, same_speedup, marginal, floor, per_notebook, subset


def run_merge(course: Path, shards: list[Path]) -> float:
    command = [sys.executable, "-m", "autograder", "--root", str(course), "merge", *map(str, shards)]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def compare_shards(args, work: Path, rows: list, workers: int) -> None:
    """The class in one run, then in ``args.shards`` shards and merged (rows appended)."""
    course = fresh_course(work, "class")
    kinds = build_class(course, args.size)
    count = args.shards
    print(f"class of {len(kinds)}, unsharded, then in {count} shards", flush=True)
    whole, _, _ = run_class_command(course)
    rows.append(("class command, whole class, one run", f"{whole:.1f} s", f"{len(kinds) / whole:.2f}/s", "",
                 f"{workers} workers (the baseline)"))
    source = ["--", str(course / "submitted")]  # every shard reads the same intake
    shards = [fresh_course(work, f"shard-{index}") for index in range(1, count + 1)]
    each = []
    for index, shard in enumerate(shards, start=1):
        seconds, _, _ = run_class_command(shard, ["--shard", f"{index}/{count}", *source])
        each.append(seconds)
        rows.append((f"  shard {index}/{count} alone", f"{seconds:.1f} s", "", "", f"{workers} workers"))
    merged = fresh_course(work, "merged")
    merge_seconds = run_merge(merged, shards)
    rows.append(("  merge", f"{merge_seconds:.1f} s", "", "", "gradebook, records, CSV, report"))
    matrix = max(each) + merge_seconds
    rows.append((f"{count} shards on {count} machines (CI matrix) + merge", f"{matrix:.1f} s",
                 f"{len(kinds) / matrix:.2f}/s", "", f"{whole / matrix:.2f}x faster than one run"))
    rows.append((f"{count} shards one after the other + merge", f"{sum(each) + merge_seconds:.1f} s", "", "",
                 f"{(sum(each) + merge_seconds) / whole:.2f}x the one run's time"))
    together = [fresh_course(work, f"together-{index}") for index in range(1, count + 1)]
    started = time.perf_counter()
    threads = [threading.Thread(target=run_class_command, args=(shard, ["--shard", f"{index}/{count}", *source]))
               for index, shard in enumerate(together, start=1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    at_once = time.perf_counter() - started
    rows.append((f"{count} shards at once on this machine", f"{at_once:.1f} s", "", "",
                 f"sharing its {os.cpu_count()} cores; {at_once / whole:.2f}x the one run's time"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--nbgrader-subset", type=int, default=12, help="submissions nbgrader autograde grades")
    parser.add_argument("--thousand", action="store_true", help="also grade 1,000 correct submissions")
    parser.add_argument("--thousand-only", action="store_true", help="only the 1,000-submission run")
    parser.add_argument("--shards", type=int, help="only: the class in one run, then in this many shards merged")
    args = parser.parse_args()
    workers = os.cpu_count() or 1
    rows = []
    work = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    speedup = same_speedup = marginal = floor = per_notebook = None
    subset = []
    try:
        if args.shards:
            compare_shards(args, work, rows, workers)
        elif not args.thousand_only:
            speedup, same_speedup, marginal, floor, per_notebook, subset = compare(args, work, rows, workers)
        thousand = []
        if args.thousand or args.thousand_only:
            big = fresh_course(work, "thousand")
            notebook = instructor_notebook()
            for index in range(1000):
                folder = big / "submitted" / f"c_{index:04d}" / ASSIGNMENT
                folder.mkdir(parents=True)
                nbformat.write(notebook, folder / NOTEBOOK)
            records = big / "reports" / ASSIGNMENT / "students"
            marks = []
            watcher_stop = threading.Event()

            def watch() -> None:
                seen = 0
                began = time.monotonic()
                while not watcher_stop.is_set():
                    count = len(list(records.glob("*/results.json"))) if records.exists() else 0
                    while count >= seen + 100:
                        seen += 100
                        marks.append((seen, time.monotonic() - began))
                    time.sleep(0.5)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            big_seconds, big_peak, samples = run_class_command(big)
            watcher_stop.set()
            watcher.join()
            half = samples[0][0] + (samples[-1][0] - samples[0][0]) / 2
            first = max(total for at, total in samples if at <= half)
            second = max(total for at, total in samples if at > half)
            left = [pid for pid in descendants(os.getpid())]
            blocks = [b - a for (_, a), (_, b) in zip([(0, 0.0)] + marks[:-1], marks)]
            thousand = [
                ("1,000 correct submissions", f"{big_seconds:.0f} s", f"{1000 / big_seconds:.2f}/s",
                 f"{big_peak / 2**20:.0f} MiB", f"{len(left)} processes left behind"),
                ("  time per block of 100", ", ".join(f"{b:.0f}" for b in blocks) + " s", "", "",
                 f"first {blocks[0]:.0f} s, last {blocks[-1]:.0f} s" if blocks else ""),
                ("  peak memory, first / second half", f"{first / 2**20:.0f} / {second / 2**20:.0f} MiB", "", "", ""),
            ]
    finally:
        remove_tree(work)  # rm -rf: an attack's folders may nest deeper than shutil.rmtree can recurse

    print()
    print("| measure | time | throughput | peak memory | note |")
    print("|---|---|---|---|---|")
    for row in rows + thousand:
        print("| " + " | ".join(row) + " |")
    print()
    if speedup is None:
        return 0
    print(f"speed-up over one nbgrader process, whole class (nbgrader extrapolated): {speedup:.1f}x "
          f"(target >= 10x: {'met' if speedup >= 10 else 'missed'})")
    print(f"speed-up over one nbgrader process, the same {len(subset)} submissions: {same_speedup:.1f}x")
    marginal_speedup = per_notebook / (marginal / workers)
    print(f"speed-up per additional correct submission (nbgrader's per-notebook cost / the class command's "
          f"marginal wall time): {marginal_speedup:.1f}x")
    ratio = marginal / floor
    print(f"marginal cost / floor: {ratio:.2f}x (target <= 2x: {'met' if ratio <= 2 else 'missed'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
