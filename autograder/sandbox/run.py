"""The public entry points: run an argv to completion (run_sandboxed) or talk
with it (session); package_binds makes installed packages importable inside."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
from pathlib import Path
from typing import Iterator, Sequence

from .cgroup import _cgroup_create, _cgroup_remove
from .host import _SYSTEM_DIRS, INSIDE_PYTHON, _is_under
from .identity import _identity
from .launch import _plan_namespaced, _plan_none
from .limits import LEVELS, Isolation, Limits, SandboxResult
from .supervision import Session, _close, _finish, _kill_tree, _normalise_returncode, _Run, _spawn, _watch


def _check_inputs(scratch: Path, read_only: Sequence[tuple[Path, str]]) -> tuple[Path, list[tuple[Path, str]]]:
    scratch = Path(scratch).resolve()
    if not scratch.is_dir():
        raise NotADirectoryError(f"scratch is not a directory: {scratch}")
    binds = []
    for host, inside in read_only:
        host = Path(host).resolve()
        if not host.exists():
            raise FileNotFoundError(f"read_only source does not exist: {host}")
        inside = os.path.normpath(str(inside))
        if not inside.startswith("/") or inside == "/":
            raise ValueError(f"read_only destination must be an absolute path below /: {inside!r}")
        if any(_is_under(inside, d) for d in (*_SYSTEM_DIRS, "/proc", "/dev", "/etc", INSIDE_PYTHON)):
            # Those are read-only mounts already; a mount point cannot be made there.
            raise ValueError(f"read_only destination inside a system directory: {inside!r}")
        binds.append((host, inside))
    return scratch, binds


def _hand_over_scratch(scratch: Path, uid: int | None) -> None:
    if uid is None:
        return
    # Files the caller copied in are root's; the child's fresh uid must be
    # able to replace them.
    os.lchown(scratch, uid, uid)
    for dirpath, dirnames, filenames in os.walk(scratch):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, uid)


def run_sandboxed(argv: list[str], *, scratch: Path, stdin: bytes = b"",
                  read_only: Sequence[tuple[Path, str]] = (), limits: Limits = Limits(),
                  isolation: Isolation) -> SandboxResult:
    """Run argv with scratch as its working directory, under `isolation`.

    `isolation` is required: the caller picks it (usually detect_isolation())
    and decides whether that level is good enough.

    argv[0] may be the grader's own interpreter (sys.executable, or a venv's
    python, symlinked or copied): inside namespaces it is rewritten to the
    re-mounted base interpreter.
    At level "none" read_only binds are not mounted (the child sees the host
    filesystem as is).  Raises only for bad arguments; whatever the child does
    is reported in the result.
    """
    with _launched(argv, scratch, read_only, limits, isolation, stdin) as (run, iso, scratch):
        try:
            _watch(run, scratch)
            _finish(run)
        finally:
            _close(run)
    return _result(run, iso)


@contextlib.contextmanager
def session(argv: list[str], *, scratch: Path, read_only: Sequence[tuple[Path, str]] = (),
            limits: Limits = Limits(), isolation: Isolation) -> Iterator[Session]:
    """Start argv like run_sandboxed, and hand back a Session to talk with it.

    Leaving the block kills the child's whole tree, whatever state it is in.
    """
    with _launched(argv, scratch, read_only, limits, isolation, None) as (run, _, scratch):
        try:
            yield Session(run, scratch)
        finally:
            if not run.gone:
                _kill_tree(run)
            _finish(run)
            _close(run)
            _reap(run)


def _reap(run) -> None:
    """Collect the killed outer process, so that no zombie is left per session."""
    try:
        run.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass   # stuck in the kernel: subprocess reaps it later, as it would have anyway


@contextlib.contextmanager
def _launched(argv: Sequence[str], scratch: Path, read_only: Sequence[tuple[Path, str]], limits: Limits,
              isolation: Isolation, stdin: bytes | None) -> Iterator[tuple[_Run, Isolation, Path]]:
    """Validate, plan and spawn; the cgroup of level none lives as long as the block."""
    if not argv:
        raise ValueError("argv must not be empty")
    iso = isolation
    if iso.level not in LEVELS:
        raise ValueError(f"unknown isolation level {iso.level!r}")
    scratch, binds = _check_inputs(scratch, read_only)
    ident = _identity(iso.level, limits)
    # Namespaced levels need no cgroup: the private uid (or user namespace)
    # makes RLIMIT_NPROC exact and the pid namespace guarantees teardown.
    # Joining a v1 cgroup also costs ~15 ms per run (an RCU grace period).
    cgroup = _cgroup_create(limits.max_processes + 1) if iso.level == "none" else None
    cgroup_fd = os.open(cgroup / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) if cgroup else None
    try:
        _hand_over_scratch(scratch, ident.uid)
        if iso.level == "none":
            plan = _plan_none(argv, scratch, limits, ident, cgroup_fd, cgroup)
        else:
            plan = _plan_namespaced(iso.level, argv, scratch, binds, limits, ident)
        run = _spawn(plan, stdin, limits, scratch)
        run.plan_level = iso.level
        yield run, iso, scratch
    finally:
        if cgroup_fd is not None:
            os.close(cgroup_fd)
        _cgroup_remove(cgroup)


def _result(run: _Run, iso: Isolation) -> SandboxResult:
    return SandboxResult(
        returncode=_normalise_returncode(run.proc.returncode, iso.level),
        stdout=bytes(run.out.data),
        stderr=bytes(run.err.data),
        timed_out=run.reason == "wall time",
        output_truncated=run.out.truncated or run.err.truncated,
        killed_reason=run.reason,
        wall_seconds=run.ended_at - run.start,
        isolation=iso,
    )


def package_binds(*names: str, inside_root: str = "/opt/site") -> list[tuple[Path, str]]:
    """read_only entries that make installed packages importable inside.

    Manylinux wheels keep their bundled shared libraries in a sibling
    "<name>.libs" directory (numpy.libs holds OpenBLAS), found through an
    $ORIGIN-relative RUNPATH, so that directory travels along.  The child must
    put inside_root on sys.path itself.
    """
    binds: list[tuple[Path, str]] = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"cannot locate package {name!r}")
        origin = Path(spec.origin).resolve()
        top = origin.parent if spec.submodule_search_locations else origin
        binds.append((top, f"{inside_root}/{top.name}"))
        libs = top.parent / f"{name}.libs"
        if libs.is_dir():
            binds.append((libs, f"{inside_root}/{libs.name}"))
    return binds
