"""Commands per level: what to start, with which environment, rlimits and
descriptors, for bubblewrap, unshare and none (a _Plan)."""

from __future__ import annotations

import os
import resource
import shlex
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .cgroup import _cgroup_pids, _kill_pid
from .host import _SYSTEM_DIRS, _is_under, _python_layout, _system_roots, _tool
from .identity import _Identity
from .limits import Limits
from .mounts import (INSIDE_SCRATCH, _INSIDE_GIVEN, _bwrap_args, _mount_plan, _unshare_root_dir,
                     _unshare_script)
from .seccomp import _SECCOMP_LAUNCHER, _seccomp_filter


def _rlimit_pairs(limits: Limits, nproc: int) -> list[tuple[int, int, int]]:
    return [
        (resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1),  # SIGXCPU first, SIGKILL 1 s later
        (resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
        (resource.RLIMIT_FSIZE, limits.file_size_bytes, limits.file_size_bytes),
        (resource.RLIMIT_NPROC, nproc, nproc),
        (resource.RLIMIT_CORE, 0, 0),  # core files would land in scratch
        # Every descriptor can pin kernel memory (a pipe holds up to 1 MiB)
        # and in-flight SCM_RIGHTS are counted against this limit too.
        (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
        # POSIX message queues are kernel memory outside RLIMIT_AS.
        (resource.RLIMIT_MSGQUEUE, 0, 0),
    ]


def _prlimit_args(limits: Limits, nproc: int) -> list[str]:
    names = {resource.RLIMIT_CPU: "cpu", resource.RLIMIT_AS: "as",
             resource.RLIMIT_FSIZE: "fsize", resource.RLIMIT_NPROC: "nproc",
             resource.RLIMIT_CORE: "core", resource.RLIMIT_NOFILE: "nofile",
             resource.RLIMIT_MSGQUEUE: "msgqueue"}
    args = [_tool("prlimit") or "prlimit"]
    args += [f"--{names[res]}={soft}:{hard}" for res, soft, hard in _rlimit_pairs(limits, nproc)]
    return args + ["--"]


def _setpriv_args(uid: int) -> list[str]:
    return [_tool("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


def _seccomp_launcher_args(program: bytes) -> list[str]:
    python = _inside_argv([sys.executable])[0]
    return [python, "-I", "-S", "-B", "-c", _SECCOMP_LAUNCHER, program.hex()]


def _venv_base(python: str) -> str | None:
    """The base interpreter behind a venv's python, from its pyvenv.cfg."""
    cfg = Path(os.path.abspath(python)).parent.parent / "pyvenv.cfg"
    try:
        text = cfg.read_text()
    except OSError:
        return None
    keys = dict(line.partition("=")[::2] for line in text.splitlines())
    keys = {k.strip(): v.strip() for k, v in keys.items()}
    home = keys.get("home")
    if not home:
        return None
    version = ".".join(keys.get("version", "").split(".")[:2])
    for name in (os.path.basename(python), f"python{version}", "python3"):
        candidate = os.path.join(home, name)
        if os.path.isfile(candidate):
            return os.path.realpath(candidate)
    return None


def _inside_argv(argv: Sequence[str]) -> list[str]:
    """Point argv[0] at the re-mounted interpreter when it is the host's."""
    argv = list(argv)
    head = argv[0]
    if "/" not in head or any(_is_under(os.path.normpath(head), d) for d in _SYSTEM_DIRS):
        return argv   # found through PATH inside, or visible as is
    # A venv's python is a symlink to, or (--copies) a copy of, the base
    # interpreter; the venv itself (possibly inside the repo) is not visible,
    # the base interpreter is.
    real = _venv_base(head) or os.path.realpath(head)
    py = _python_layout()
    if py.needs_bind and _is_under(real, py.host_prefix):
        argv[0] = py.inside_prefix + real[len(py.host_prefix):]
    elif any(_is_under(real, d) for d in _system_roots()):
        argv[0] = real
    return argv


def _child_env(home: str, path: str, lib_dir: str | None) -> dict[str, str]:
    env = {
        "PATH": path,
        "HOME": home,
        "TMPDIR": home,  # the only writable place; there is no /tmp inside
        "LANG": "C.UTF-8",
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        # One thread per BLAS/OpenMP pool: every thread counts against the
        # process cap and the CPU limit.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
        "VECLIB_MAXIMUM_THREADS": "1",
    }
    if lib_dir:
        env["LD_LIBRARY_PATH"] = lib_dir
    return env


def _child_path(level: str) -> str:
    py = _python_layout()
    first = py.host_bin if level == "none" else f"{py.inside_prefix}/bin"
    return f"{first}:/usr/local/bin:/usr/bin:/bin"


_libc_prctl: Callable[..., int] | None = None


def _load_prctl() -> Callable[..., int] | None:
    global _libc_prctl
    if _libc_prctl is None:
        try:
            import ctypes
            _libc_prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (ImportError, OSError, AttributeError):
            return None
    return _libc_prctl


@dataclass
class _Plan:
    cmd: list[str]
    env: dict[str, str]
    cwd: str
    preexec: Callable[[], None] | None
    pass_fds: tuple[int, ...] = ()            # handed to the child, closed here after spawn
    info_fd: int | None = None                # read end of bwrap's --info-fd
    init_on_stdout: bool = False              # the same report, as stdout's first line
    sweep: Callable[[], None] | None = None   # extra tree kill for level none


def _make_preexec(cgroup_fd: int | None, rlimits: list[tuple[int, int, int]],
                  pdeathsig: bool) -> Callable[[], None]:
    prctl = _load_prctl() if pdeathsig else None
    setrlimit, write = resource.setrlimit, os.write

    def preexec() -> None:
        # Runs between fork and exec: only syscalls, no imports or locks.
        if cgroup_fd is not None:
            try:
                write(cgroup_fd, b"0")
            except OSError:
                pass
        for res, soft, hard in rlimits:
            setrlimit(res, (soft, hard))
        if prctl is not None:
            prctl(1, signal.SIGKILL, 0, 0, 0)   # PR_SET_PDEATHSIG
    return preexec


def _plan_namespaced(level: str, argv: Sequence[str], scratch: Path, binds: Sequence[tuple[Path, str]],
                     limits: Limits, ident: _Identity) -> _Plan:
    py = _python_layout()
    env = _child_env(INSIDE_SCRATCH, _child_path(level), py.lib_dir)
    plan = _mount_plan(scratch, binds, ident, limits.scratch_bytes)
    seccomp, full_filter, _ = _seccomp_filter()
    tail = _prlimit_args(limits, ident.nproc)
    if ident.uid is not None:
        tail += _setpriv_args(ident.uid)
    if level == "unshare" and full_filter:
        # In the chroot the kernel already refuses new user namespaces, so
        # only the full filter is worth the launcher's interpreter start.
        tail += _seccomp_launcher_args(seccomp)
    tail += _inside_argv(argv)
    if level == "bubblewrap":
        if any(m.op == "given" for m in plan):
            # Before prlimit: the caller's files are not bound by the child's
            # limits (RLIMIT_FSIZE, NOFILE); after the mounts, under seccomp.
            q = shlex.quote
            cp = q(_tool("cp") or "/bin/cp")   # not through the child's PATH
            tail = ["/bin/sh", "-c", f"{cp} -a {q(_INSIDE_GIVEN)}/. {q(INSIDE_SCRATCH)}/ && exec \"$@\"",
                    "sandbox-copy-in", *tail]
        pass_fds: list[int] = []
        data_fds = {m.dst: _data_pipe(m.src.encode(), pass_fds) for m in plan if m.op == "file"}
        seccomp_fd = _data_pipe(seccomp, pass_fds) if seccomp else None
        # bwrap reports the host pid of the namespace's init here; its own exit
        # comes slightly before the kernel has finished killing the namespace.
        info_r, info_w = os.pipe()
        pass_fds.append(info_w)
        cmd = _bwrap_args(plan, ident, data_fds, seccomp_fd, info_w) + tail
        # No preexec_fn: lets subprocess use vfork, and bwrap's
        # --die-with-parent already covers a dying grader.
        return _Plan(cmd, env, str(scratch), None, tuple(pass_fds), info_r)
    root = _unshare_root_dir()
    cmd = [_tool("unshare") or "unshare", "--mount", "--pid", "--fork", "--kill-child",
           "--net", "--ipc", "--uts", "--cgroup", "--",
           "/bin/sh", "-c", _unshare_script(plan, root), "sandbox-setup",
           _tool("unshare") or "unshare", f"--root={root}", f"--wd={INSIDE_SCRATCH}", "--", *tail]
    # unshare's --kill-child covers its own child; pdeathsig covers unshare
    # itself should the grader die.
    return _Plan(cmd, env, str(scratch), _make_preexec(None, [], True), init_on_stdout=True)


def _data_pipe(data: bytes, pass_fds: list[int]) -> int:
    if len(data) > 60_000:   # must fit the pipe buffer: nobody reads before exec
        raise ValueError("inline sandbox data too large")
    r, w = os.pipe()
    try:
        os.write(w, data)
    finally:
        os.close(w)
    pass_fds.append(r)
    return r


def _plan_none(argv: Sequence[str], scratch: Path, limits: Limits, ident: _Identity,
               cgroup_fd: int | None, cgroup: Path | None) -> _Plan:
    env = _child_env(str(scratch), _child_path("none"), None)
    rlimits = _rlimit_pairs(limits, min(ident.nproc, resource.getrlimit(resource.RLIMIT_NPROC)[1]))
    # Without privileges a hard limit can only go down; a caller already
    # below open_files keeps its own (lower) cap instead of failing to start.
    nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if os.geteuid() != 0 and nofile_hard != resource.RLIM_INFINITY:
        rlimits = [(res, min(soft, nofile_hard), min(hard, nofile_hard)) if res == resource.RLIMIT_NOFILE
                   else (res, soft, hard) for res, soft, hard in rlimits]
    preexec = _make_preexec(cgroup_fd, rlimits, True)

    def sweep() -> None:
        # Without a pid namespace a double-forked, setsid'd child has left our
        # process group; only its cgroup still knows it.
        if cgroup is not None:
            for _ in range(3):
                for pid in _cgroup_pids(cgroup):
                    _kill_pid(pid)

    return _Plan(list(argv), env, str(scratch), preexec, sweep=sweep)
