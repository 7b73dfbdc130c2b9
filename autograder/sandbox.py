"""Run an untrusted argv in an isolated child process with hard resource limits.

Generic on purpose: nothing here knows about grading.  The caller hands over a
scratch directory, an argv and some read-only binds; it gets back the exit
status and the (capped) output.  How strongly the child is isolated depends on
what the machine offers; `detect_isolation()` says which level is in use and
`docs/sandbox.md` explains what each level does and does not protect.

The work is a pipeline of small steps:

    validate inputs -> pick an identity -> mount plan -> render for the
    mechanism (bwrap args / unshare shell script / plain rlimits) ->
    supervise (feed stdin, drain output with caps, watch wall clock and disk)
    -> tear down the whole tree -> SandboxResult
"""

from __future__ import annotations

import contextlib
import functools
import glob
import importlib.util
import json
import os
import platform
import resource
import secrets
import select
import selectors
import shlex
import shutil
import site
import signal
import struct
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

__all__ = [
    "Limits",
    "Isolation",
    "SandboxResult",
    "detect_isolation",
    "probe_isolation",
    "run_sandboxed",
    "session",
    "Session",
    "SessionEnded",
    "SessionTimeout",
    "package_binds",
    "INSIDE_SCRATCH",
    "INSIDE_PYTHON",
    "LEVELS",
]

LEVELS = ("bubblewrap", "unshare", "none")

INSIDE_SCRATCH = "/work"
# The host interpreter usually lives somewhere we must not expose wholesale
# (pyenv under /root, a venv inside the repo), so its prefix is re-mounted here.
INSIDE_PYTHON = "/opt/python"

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Just enough of /etc for the dynamic loader and time zones; the rest of /etc
# can hold host configuration that is none of the child's business.
_ETC_ENTRIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives")

# Per-run uids when we are root: RLIMIT_NPROC counts processes per real uid
# across the whole host, so a shared uid (e.g. 65534) would let concurrent
# sandboxes eat each other's process budget.  A fresh uid makes it exact.
# The range must belong to nobody else.  systemd (UIDS-GIDS.md) hands out
# 524288..1879048191 to containers (nspawn --private-users=pick) and, since
# v257, 2147352576..2147418111 as its "foreign" range; SSSD's automatic AD id
# mapping and FreeIPA's random id ranges both stay below 2000200000 by
# default; 2**31 and up breaks code that treats uid_t as signed.  What is
# left is 2000200000..2147352575; we use 2001000000..2146999999, and
# _fresh_uid still skips any uid that /etc/passwd names or a process holds.
_UID_BASE = 2_001_000_000
_UID_SPAN = 146_000_000
# Inside an unprivileged user namespace the uid number is cosmetic.
_USERNS_UID = 65534

_DISK_POLL_SECONDS = 0.1
# Charging every file at least one block makes "a million empty files" hit the
# disk budget too (inodes are disk as well).
_MIN_ENTRY_BYTES = 4096
_PROBE_WALL_SECONDS = 10.0


# --------------------------------------------------------------------------
# Public data


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 60.0        # whole run, hard
    cpu_seconds: int = 60
    memory_bytes: int = 2 * 1024**3   # address space / memory cap
    max_processes: int = 32
    file_size_bytes: int = 16 * 1024**2   # largest file the child may write
    scratch_bytes: int = 64 * 1024**2     # total disk the child may fill, if the mechanism allows
    output_bytes: int = 1024**2           # stdout and stderr each are capped here; the child is killed past it
    open_files: int = 64                  # RLIMIT_NOFILE: descriptors (pipes, sockets, ...) pin kernel memory

    def __post_init__(self) -> None:
        for name in ("wall_seconds", "cpu_seconds", "memory_bytes", "max_processes",
                     "file_size_bytes", "scratch_bytes", "output_bytes", "open_files"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive")


@dataclass(frozen=True)
class Isolation:
    level: str          # "bubblewrap" | "unshare" | "none"
    detail: str         # human text: what is isolated (namespaces, uid, rlimits, ...)
    how_to_enable: str  # human text for when level is weak/none


@dataclass(frozen=True)
class SandboxResult:
    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    output_truncated: bool
    killed_reason: str | None   # "wall time", "output limit", "disk limit"
    wall_seconds: float
    isolation: Isolation


# --------------------------------------------------------------------------
# Host facts (computed once per process)


@dataclass(frozen=True)
class _PythonLayout:
    host_prefix: str
    inside_prefix: str
    needs_bind: bool
    hidden: tuple[str, ...]      # inside paths of site-packages dirs to mask
    lib_dir: str | None          # inside dir holding libpython, if relocated
    host_bin: str


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@functools.lru_cache(maxsize=None)
def _system_roots() -> tuple[str, ...]:
    return tuple(os.path.realpath(d) for d in _SYSTEM_DIRS if os.path.isdir(d))


@functools.lru_cache(maxsize=None)
def _python_layout() -> _PythonLayout:
    exe = os.path.realpath(sys.executable)
    prefix = os.path.realpath(sys.base_prefix)
    needs_bind = not any(_is_under(prefix, d) for d in _system_roots())
    inside = INSIDE_PYTHON if needs_bind else prefix
    hidden: list[str] = []
    # The interpreter's own site-packages holds whatever the grader installed;
    # the child gets a stdlib-only Python and receives packages explicitly
    # through read_only binds.  Masking it also skips slow .pth start-up hooks.
    paths = sysconfig.get_paths(scheme="posix_prefix", vars={"base": prefix, "platbase": prefix})
    # site.getsitepackages also knows distribution layouts (Debian's dist-packages).
    for candidate in [*site.getsitepackages([prefix]), paths["purelib"], paths["platlib"]]:
        real = os.path.realpath(candidate)
        if os.path.isdir(real) and _is_under(real, prefix):
            inner = inside + real[len(prefix):]
            if inner not in hidden:
                hidden.append(inner)
    lib_dir = None
    if needs_bind and glob.glob(os.path.join(prefix, "lib", "libpython*.so*")):
        # pyenv builds carry an absolute RUNPATH to the host prefix, which does
        # not exist inside; LD_LIBRARY_PATH wins over RUNPATH.
        lib_dir = inside + "/lib"
    return _PythonLayout(prefix, inside, needs_bind, tuple(hidden), lib_dir, os.path.dirname(exe))


@functools.lru_cache(maxsize=None)
def _tool(name: str) -> str | None:
    # Looked up in system dirs only: PATH of the grader may contain a venv or
    # user bin we do not want to trust with root privileges.
    found = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    return os.path.realpath(found) if found else None


def _tool_version(path: str | None) -> str:
    if not path:
        return "?"
    try:
        out = subprocess.run([path, "--version"], capture_output=True, timeout=5, env={}).stdout
        return out.decode(errors="replace").strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


# --------------------------------------------------------------------------
# pids cgroup (optional extra cap; absent on many CI runners)


@functools.lru_cache(maxsize=None)
def _pids_cgroup_base() -> tuple[Path | None, str]:
    """Directory under which per-run pids cgroups can be made, and why (not)."""
    if os.geteuid() != 0:
        return None, "no pids cgroup (not root)"
    v1 = Path("/sys/fs/cgroup/pids")
    v2 = Path("/sys/fs/cgroup")
    try:
        if (v1 / "cgroup.procs").exists():
            base = v1 / "autograder-sandbox"
            base.mkdir(exist_ok=True)
            _reap_stale_cgroups(base)
            return base, f"pids cgroup v1 ({v1})"
        controllers = (v2 / "cgroup.controllers").read_text().split()
        if "pids" not in controllers:
            return None, "no pids cgroup (pids controller not available)"
        # v2 only lets processes live in leaves below a parent with +pids in
        # subtree_control.  Turning the controller on for the whole host is
        # not our call, so use it only where the root already delegates it.
        if "pids" not in (v2 / "cgroup.subtree_control").read_text().split():
            return None, "no pids cgroup (v2 root does not enable the pids controller)"
        base = v2 / "autograder-sandbox"
        base.mkdir(exist_ok=True)
        if "pids" not in (base / "cgroup.subtree_control").read_text().split():
            (base / "cgroup.subtree_control").write_text("+pids")
        _reap_stale_cgroups(base)
        return base, f"pids cgroup v2 ({v2})"
    except OSError as exc:
        return None, f"no pids cgroup ({exc.strerror or exc})"


def _reap_stale_cgroups(base: Path) -> None:
    for child in base.glob("run-*"):
        try:
            child.rmdir()
        except OSError:
            pass


def _cgroup_create(max_pids: int) -> Path | None:
    base, _ = _pids_cgroup_base()
    if base is None:
        return None
    path = base / f"run-{os.getpid()}-{secrets.token_hex(6)}"
    try:
        path.mkdir()
        (path / "pids.max").write_text(str(max_pids))
        return path
    except OSError:
        _cgroup_remove(path)
        return None


def _cgroup_pids(path: Path) -> list[int]:
    try:
        return [int(p) for p in (path / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _cgroup_remove(path: Path | None) -> None:
    if path is None:
        return
    # Killed tasks leave the cgroup asynchronously; give them a moment.
    for _ in range(100):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            for pid in _cgroup_pids(path):
                _kill_pid(pid)
            time.sleep(0.01)


def _kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------
# seccomp: refuse the kernel interfaces a Python/numpy child has no use for
#
# As root, bwrap runs the child in the host user namespace with a fresh uid; an
# unprivileged process may still create its own user namespace and then mount
# tmpfs at will (memory outside RLIMIT_AS) and reach much more kernel surface.
# So CLONE_NEWUSER is refused; clone3 gets ENOSYS so libc falls back to clone,
# whose flags a filter can inspect (clone3 passes them behind a pointer).
#
# The full filter is built with libseccomp (through the pyseccomp ctypes
# binding) and exported as classic BPF: libseccomp knows every architecture's
# syscall numbers, which a hand-kept table would have to track.  Without the
# binding only the tiny hand-assembled user-namespace filter below is used,
# and Isolation.detail says so.

_SECCOMP_ARCH = {
    # machine: (AUDIT_ARCH, clone, unshare, clone3, reject nr >= this)
    "x86_64": (0xC000003E, 56, 272, 435, 0x40000000),   # x32 ABI numbers sit above 2**30
    "aarch64": (0xC00000B7, 220, 97, 435, None),
}


def _seccomp_program() -> bytes | None:
    spec = _SECCOMP_ARCH.get(platform.machine())
    if spec is None:
        return None
    arch, nr_clone, nr_unshare, nr_clone3, nr_ceiling = spec
    ld_abs, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    clone_newuser = 0x10000000
    prog = [
        (ld_abs, 0, 0, 4),              # 0: A = arch
        (jeq, 1, 0, arch),              # 1: native arch -> 3
        (ret, 0, 0, eperm),             # 2: foreign ABI: refuse everything
        (ld_abs, 0, 0, 0),              # 3: A = syscall nr
        (jge, 0, 1, nr_ceiling or 0xFFFFFFFF),  # 4
        (ret, 0, 0, eperm),             # 5
        (jeq, 0, 1, nr_clone3),         # 6
        (ret, 0, 0, enosys),            # 7
        (jeq, 1, 0, nr_unshare),        # 8 -> 10
        (jeq, 0, 3, nr_clone),          # 9 -> 10 / 13
        (ld_abs, 0, 0, 16),             # 10: A = low 32 bits of args[0] (flags)
        (jset, 0, 1, clone_newuser),    # 11
        (ret, 0, 0, eperm),             # 12
        (ret, 0, 0, allow),             # 13
    ]
    return b"".join(struct.pack("=HBBI", *insn) for insn in prog)


# What the full filter refuses with EPERM, by reason.  Names that do not exist
# on the running architecture (iopl on aarch64, ...) are skipped.  None of these
# is needed by CPython, numpy/OpenBLAS or the tools the sandbox runs inside
# (cp, prlimit, setpriv); the list follows Docker's default profile where that
# profile relies on the missing capabilities, and adds what leaks past rlimits.
_REFUSED_SYSCALLS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # Keyrings are not namespaced: a key outlives the run and is readable by
    # the next sandbox that happens to share the uid, or by the host.
    ("kernel keyrings", ("add_key", "keyctl", "request_key")),
    # Memory that RLIMIT_AS does not see: memfd pages live in an fd, SysV
    # segments and queues stay in the IPC namespace after shmdt/close.
    ("memory outside the address-space limit",
     ("memfd_create", "memfd_secret", "shmget", "msgget", "semget")),
    ("access to other processes", ("ptrace", "process_vm_readv", "process_vm_writev",
                                   "process_madvise", "kcmp", "pidfd_getfd")),
    # Large, frequently exploited kernel surface with no use here.
    ("kernel attack surface", ("bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
                               "io_uring_enter", "io_uring_register", "fanotify_init",
                               "lookup_dcookie", "open_by_handle_at", "name_to_handle_at")),
    ("mounts and namespaces", ("mount", "umount2", "pivot_root", "chroot", "setns", "fsopen",
                               "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
                               "mount_setattr")),
    # Capability-guarded today; refusing them outright keeps a kernel bug in
    # the capability checks from mattering.
    ("host administration", ("reboot", "kexec_load", "kexec_file_load", "init_module",
                             "finit_module", "delete_module", "create_module", "get_kernel_syms",
                             "query_module", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd",
                             "syslog", "sethostname", "setdomainname", "settimeofday",
                             "clock_settime", "clock_adjtime", "adjtimex", "vhangup", "nfsservctl",
                             "_sysctl", "sysfs", "ustat", "uselib")),
    ("port I/O and segment tables", ("iopl", "ioperm", "modify_ldt")),
    ("NUMA placement of shared memory", ("mbind", "set_mempolicy", "set_mempolicy_home_node",
                                         "migrate_pages", "move_pages")),
)
_CLONE_NEWUSER = 0x10000000
_PER_LINUX = 0   # the only personality allowed: others change exec and mmap semantics


def _libseccomp_program() -> tuple[bytes, int]:
    """The full filter as classic BPF, and how many calls it refuses outright."""
    import errno
    import pyseccomp as sc   # ImportError, or RuntimeError without libseccomp.so.2

    eperm = sc.ERRNO(errno.EPERM)
    filt = sc.SyscallFilter(sc.ALLOW)
    # Other ABIs of this CPU (int 0x80, x32) reach the same kernel code under
    # other numbers; refusing them whole is what the hand-made filter did too.
    filt.set_attr(sc.Attr.ACT_BADARCH, eperm)
    refused = 0
    for _, names in _REFUSED_SYSCALLS:
        for name in names:
            nr = sc.resolve_syscall(sc.Arch.NATIVE, name)
            if nr >= 0:
                filt.add_rule(eperm, nr)
                refused += 1
    filt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for name in ("clone", "unshare"):
        filt.add_rule(eperm, name, sc.Arg(0, sc.MASKED_EQ, _CLONE_NEWUSER, _CLONE_NEWUSER))
    # libseccomp cannot AND two tests of one argument, so even the query
    # (0xffffffff) is refused; nothing in the child needs it.
    filt.add_rule(eperm, "personality", sc.Arg(0, sc.NE, _PER_LINUX))
    with tempfile.TemporaryFile() as fh:
        filt.export_bpf(fh)
        fh.seek(0)
        return fh.read(), refused


@functools.lru_cache(maxsize=None)
def _seccomp_filter() -> tuple[bytes | None, bool, str]:
    """BPF program for the namespaced levels, whether it is the full one, and
    what it does, for Isolation.detail."""
    try:
        program, refused = _libseccomp_program()
    except (ImportError, RuntimeError, OSError, ValueError) as exc:
        why = f"libseccomp through pyseccomp unavailable ({exc})"
        if _seccomp_program() is None:
            return None, False, f"NO seccomp filter ({why}; no built-in filter for {platform.machine()})"
        return _seccomp_program(), False, (f"minimal seccomp filter only, refusing new user namespaces "
                                           f"({why}; install pyseccomp for the full filter)")
    groups = ", ".join(reason for reason, _ in _REFUSED_SYSCALLS)
    return program, True, (f"libseccomp filter refusing {refused} system calls with EPERM ({groups}), "
                           f"new user namespaces and personality changes; clone3 gets ENOSYS; "
                           f"foreign ABIs refused")


# The unshare level has no bwrap to load the filter, and no stock tool does
# (setpriv learnt --seccomp-filter only in util-linux 2.39), so the interpreter
# mounted inside anyway loads it and then execs the child.  It runs after
# setpriv, so no_new_privs is already set, and it fails closed.
_SECCOMP_LAUNCHER = """\
import ctypes, os, sys
prog = bytes.fromhex(sys.argv[1])
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
fprog = Fprog(len(prog) // 8, prog)
prctl = ctypes.CDLL(None, use_errno=True).prctl
prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
if prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:   # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
    sys.stderr.write("sandbox: cannot load the seccomp filter: %s\\n" % os.strerror(ctypes.get_errno()))
    sys.exit(126)
try:
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as exc:
    sys.stderr.write("sandbox: cannot run %s: %s\\n" % (sys.argv[2], exc.strerror))
    sys.exit(127)
"""


def _seccomp_launcher_args(program: bytes) -> list[str]:
    python = _inside_argv([sys.executable])[0]
    return [python, "-I", "-S", "-B", "-c", _SECCOMP_LAUNCHER, program.hex()]


# --------------------------------------------------------------------------
# Identity: who the child is


@dataclass(frozen=True)
class _Identity:
    uid: int | None        # host uid to switch to (None: keep ours)
    inside_uid: int        # what the child sees as its uid
    nproc: int             # RLIMIT_NPROC value


def _fresh_uid() -> int:
    # The range is chosen to be nobody's, but a host may still have put a user
    # there; a clash with a live process would merge the RLIMIT_NPROC counts
    # and let each signal the other.  NSS is not asked: a directory lookup can
    # block on the network, and the range avoids the directory defaults.
    named = _ids_named_in("/etc/passwd", 2) | _ids_named_in("/etc/group", 2)
    for _ in range(64):
        uid = _UID_BASE + secrets.randbelow(_UID_SPAN)
        if uid not in named and not _uid_has_process(uid):
            return uid
    raise RuntimeError(f"no free sandbox uid in {_UID_BASE}..{_UID_BASE + _UID_SPAN - 1}")


def _ids_named_in(path: str, column: int) -> set[int]:
    ids: set[int] = set()
    try:
        with open(path, "rb") as fh:
            for line in fh:
                fields = line.split(b":")
                if len(fields) > column and fields[column].isdigit():
                    ids.add(int(fields[column]))
    except OSError:
        pass
    return ids


def _uid_has_process(uid: int) -> bool:
    # /proc/PID belongs to the process's effective uid (root for the rare
    # non-dumpable ones): a stat per process, ten times cheaper than reading
    # every status file.
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    return True
            except OSError:
                continue
    return False


def _tasks_of_uid(uid: int) -> int:
    """Threads currently owned by uid (what RLIMIT_NPROC counts)."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as fh:
                status = fh.read()
        except OSError:
            continue
        owner = threads = None
        for line in status.splitlines():
            if line.startswith(b"Uid:"):
                owner = int(line.split()[1])
            elif line.startswith(b"Threads:"):
                threads = int(line.split()[1])
        if owner == uid:
            count += threads or 1
    return count


def _identity(level: str, limits: Limits) -> _Identity:
    root = os.geteuid() == 0
    if level == "none":
        # No uid change: the interpreter may sit in a directory only the caller
        # can traverse (pyenv under a 0700 /root).  For root RLIMIT_NPROC is not
        # enforced at all; otherwise its count is shared with everything else
        # the user runs, so the best we can do is "what exists now + budget".
        me = os.getuid()
        nproc = limits.max_processes if root else _tasks_of_uid(me) + limits.max_processes
        return _Identity(None, me, nproc)
    if root:
        uid = _fresh_uid()
        return _Identity(uid, uid, limits.max_processes)
    # A fresh user namespace has its own RLIMIT_NPROC count (Linux >= 5.14),
    # provided the limit is set inside it, after bwrap created it.
    return _Identity(None, _USERNS_UID, limits.max_processes)


# --------------------------------------------------------------------------
# Mount plan (shared by bwrap and unshare renderers)


@dataclass(frozen=True)
class _Mount:
    op: str   # "ro-bind" | "bind" | "symlink" | "dir" | "file" | "mask" | "proc" | "dev" | "scratch" | "given"
    dst: str
    src: str = ""
    size: int = 0     # "scratch": tmpfs bytes
    inodes: int = 0   # "scratch": tmpfs inodes, where the mechanism can set them


# The caller's scratch folder, read-only, as the source of the copy into the
# scratch tmpfs (bubblewrap only; the unshare script copies from the host path).
_INSIDE_GIVEN = "/run/sandbox-input"
_PAGE = 4096


def _given_usage(scratch: Path) -> tuple[int, int]:
    """tmpfs bytes and inodes that a copy of scratch takes."""
    used = entries = 0
    stack = [str(scratch)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                entries += 1
                st = entry.stat(follow_symlinks=False)
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:   # tmpfs charges whole pages; a long symlink target takes one too
                    used += max(-(-st.st_size // _PAGE), 1) * _PAGE
    return used, entries


def _mount_plan(scratch: Path, binds: Sequence[tuple[Path, str]], ident: _Identity,
                scratch_bytes: int = Limits.scratch_bytes) -> list[_Mount]:
    plan: list[_Mount] = []
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            plan.append(_Mount("symlink", d, os.readlink(d)))
        elif os.path.isdir(d):
            plan.append(_Mount("ro-bind", d, d))
    for name in _ETC_ENTRIES:
        host = f"/etc/{name}"
        if os.path.exists(host):
            plan.append(_Mount("ro-bind", host, host))
    uid = ident.inside_uid
    plan += [
        _Mount("file", "/etc/passwd",
               f"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
               f"sandbox:x:{uid}:{uid}:sandbox:{INSIDE_SCRATCH}:/bin/sh\n"),
        _Mount("file", "/etc/group", f"root:x:0:\nsandbox:x:{uid}:\n"),
        _Mount("file", "/etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n"),
        _Mount("proc", "/proc"),
        _Mount("dev", "/dev"),
    ]
    py = _python_layout()
    if py.needs_bind:
        _add_mount(plan, _Mount("ro-bind", py.inside_prefix, py.host_prefix))
    plan += [_Mount("mask", hidden) for hidden in py.hidden]
    # The child writes only into a size-capped tmpfs: unlike a folder scan, the
    # cap also sees files that were unlinked while still open, and nothing the
    # child writes reaches the host disk.  The caller's files are copied in
    # (cp -a: any number of files, symlinks and modes kept, ownership too as
    # root) rather than bound, so that they are the child's to change and
    # count against the same cap.  One inode per 4 KiB of budget keeps the old
    # "every entry costs a block" rule where the mechanism can set nr_inodes.
    given_bytes, given_entries = _given_usage(scratch)
    _add_mount(plan, _Mount("scratch", INSIDE_SCRATCH, str(scratch), size=given_bytes + scratch_bytes,
                            inodes=given_entries + 1 + scratch_bytes // _MIN_ENTRY_BYTES))
    if given_entries:
        _add_mount(plan, _Mount("given", _INSIDE_GIVEN, str(scratch)))
    for host, inside in binds:
        _add_mount(plan, _Mount("ro-bind", inside, str(host)))
    return plan


def _add_mount(plan: list[_Mount], mount: _Mount) -> None:
    # Parents created implicitly by bwrap come out mode 0700 (unreadable for
    # the child), so every missing ancestor gets an explicit 0755 directory,
    # also inside the scratch tmpfs; inside read-only mounts they must exist.
    made = {m.dst for m in plan if m.op == "dir"}
    mounted = [m.dst for m in plan if m.op not in ("dir", "file", "bind", "scratch")]
    parts = mount.dst.strip("/").split("/")[:-1]
    for i in range(1, len(parts) + 1):
        parent = "/" + "/".join(parts[:i])
        if parent not in made and not any(_is_under(parent, m) for m in mounted):
            plan.append(_Mount("dir", parent))
            made.add(parent)
    plan.append(mount)


def _bwrap_args(plan: list[_Mount], ident: _Identity, data_fds: dict[str, int],
                seccomp_fd: int | None, info_fd: int) -> list[str]:
    args = [_tool("bwrap") or "bwrap", "--info-fd", str(info_fd),
            "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--hostname", "sandbox",
            "--die-with-parent", "--new-session"]
    if ident.uid is None:
        args += ["--unshare-user", "--uid", str(ident.inside_uid), "--gid", str(ident.inside_uid)]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    for m in plan:
        if m.op == "symlink":
            args += ["--symlink", m.src, m.dst]
        elif m.op == "ro-bind":
            args += ["--ro-bind", m.src, m.dst]
        elif m.op == "bind":
            args += ["--bind", m.src, m.dst]
        elif m.op == "scratch":
            # bwrap cannot set nr_inodes (see docs/sandbox.md).  As root the
            # tmpfs belongs to root: world-writable until the copy step hands
            # it to the child's uid (cp -a copies the owner of scratch itself).
            perms = "0777" if ident.uid is not None else "0755"
            args += ["--size", str(m.size), "--perms", perms, "--tmpfs", m.dst]
        elif m.op == "given":
            args += ["--ro-bind", m.src, m.dst]
        elif m.op == "dir":
            args += ["--dir", m.dst]
        elif m.op == "file":
            args += ["--ro-bind-data", str(data_fds[m.dst]), m.dst]
        elif m.op == "mask":
            args += ["--tmpfs", m.dst, "--remount-ro", m.dst]
        elif m.op == "proc":
            args += ["--proc", m.dst]
        elif m.op == "dev":
            # Device nodes stay writable on a read-only mount; the tmpfs that
            # holds them (and /dev/shm) must not become a memory sink.
            args += ["--dev", m.dst, "--remount-ro", m.dst]
    # In a user namespace the root tmpfs belongs to the child's uid.
    args += ["--remount-ro", "/", "--chdir", INSIDE_SCRATCH, "--"]
    return args


def _unshare_root_dir() -> str:
    # Only a mount point: every run mounts its own tmpfs over it in a private
    # mount namespace, so concurrent runs never see each other's root.
    path = Path(tempfile.gettempdir(), "autograder-sandbox-root")
    path.mkdir(mode=0o700, exist_ok=True)
    return str(path)


_INIT_HEADER = b"sandbox-init:"
_DEV_NODES = ("null", "zero", "full", "random", "urandom")
_DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
              ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"))


def _unshare_script(plan: list[_Mount], root: str) -> str:
    """Shell script building the plan under `root` in a fresh mount namespace.

    Every command is an exec (~2 ms here), so directories and files living in
    the root tmpfs are created in one batch before the mounts.
    """
    q = shlex.quote

    def t(dst: str) -> str:
        return q(os.path.normpath(root + dst))

    mount_points = [m.dst for m in plan if m.op in ("ro-bind", "bind", "mask", "proc", "scratch")]
    dirs: list[str] = []
    files: list[str] = []
    steps: list[str] = []
    for m in plan:
        nested = any(_is_under(m.dst, p) and m.dst != p for p in mount_points)
        if m.op in ("ro-bind", "bind") and not os.path.isdir(m.src):
            if nested:   # the parent only exists once the outer mount is in place
                steps.append(f"mkdir -p {t(os.path.dirname(m.dst))} && touch {t(m.dst)}")
            else:
                dirs.append(t(os.path.dirname(m.dst)))
                files.append(t(m.dst))
        elif m.op in ("dir", "ro-bind", "bind", "mask", "proc", "dev", "scratch"):
            if not nested:
                dirs.append(t(m.dst))
            elif m.op != "mask":   # masks cover directories that exist
                steps.append(f"mkdir -p {t(m.dst)}")
        if m.op == "symlink":
            steps.append(f"ln -s {q(m.src)} {t(m.dst)}")
        elif m.op in ("ro-bind", "bind"):
            opts = "ro,nosuid,nodev" if m.op == "ro-bind" else "nosuid,nodev"
            steps.append(f"mount --bind -o {opts} {q(m.src)} {t(m.dst)}")
        elif m.op == "file":
            dirs.append(t(os.path.dirname(m.dst)))
            steps.append(f"printf %s {q(m.src)} > {t(m.dst)}")
        elif m.op == "scratch":
            # cp -a runs as root here, so the tmpfs and the copies take the
            # owner of the caller's scratch, i.e. the child's uid; it runs even
            # for an empty scratch for the sake of that owner.  ("given" is for
            # bwrap only: this script sees the host path.)
            steps.append(f"mount -t tmpfs -o size={m.size},nr_inodes={m.inodes},mode=0755,nosuid,nodev "
                         f"sandbox-scratch {t(m.dst)} && cp -a {q(m.src)}/. {t(m.dst)}/")
        elif m.op == "mask":
            steps.append(f"mount -t tmpfs -o ro,size=4k,mode=0755 sandbox-mask {t(m.dst)}")
        elif m.op == "proc":
            steps.append(f"mount -t proc -o nosuid,nodev,noexec proc {t(m.dst)}")
        elif m.op == "dev":
            # Nodes are bind mounts onto files of the root tmpfs, which turns
            # read-only at the end, so /dev cannot become a memory sink.
            files += [t(f"{m.dst}/{node}") for node in _DEV_NODES]
            steps += [f"mount --bind /dev/{node} {t(f'{m.dst}/{node}')}" for node in _DEV_NODES]
            steps += [f"ln -s {target} {t(f'{m.dst}/{name}')}" for name, target in _DEV_LINKS]
    lines = [
        "set -eu",
        # Same report as bwrap's --info-fd, as the first line of stdout (the
        # child cannot write before it): the host pid of the namespace's init,
        # i.e. this shell.  /proc is still the host's here, and `read` is a
        # builtin, so /proc/self is the shell itself.
        "read -r init_pid _ < /proc/self/stat",
        f"printf '%s{{\"child-pid\": %s}}\\n' {_INIT_HEADER.decode()} \"$init_pid\"",
        "umask 022",
        "child_path=$PATH",
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        f"mount -t tmpfs -o mode=0755,size=1m,nosuid,nodev sandbox-root {q(root)}",
        "mkdir -p " + " ".join(dict.fromkeys(d for d in dirs if d != q(root))),
    ]
    if files:
        lines.append("touch " + " ".join(dict.fromkeys(files)))
    lines += steps
    lines += [
        f"mount -o remount,ro {q(root)}",
        # chroot (done by the unshare --root that follows), not pivot_root: the
        # kernel refuses CLONE_NEWUSER to chrooted processes, which keeps the
        # child out of nested user namespaces, and a capability-less uid has
        # no way out of a chroot.
        # This shell stays behind as pid 1 and reaps; stdin must be handed over
        # explicitly because sh gives background jobs /dev/null.
        "PATH=$child_path",
        "exec 3<&0",
        "\"$@\" <&3 3<&- &",
        "wait $!",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Commands per level


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


# --------------------------------------------------------------------------
# Supervision: feed, drain, watch, kill
#
# One thread, one selector: stdin, stdout, stderr and a pidfd for the exit.
# Threads would cost milliseconds each to start, and polling Popen.wait()
# adds up to 50 ms of latency per run.


def _scratch_over_budget(run: _Run, scratch: Path) -> bool:
    """Whether the child's writable area is past its budget.

    At level none that area is the host folder, scanned.  Under bubblewrap it
    is a tmpfs whose size bwrap caps but whose number of files it cannot: a
    child could fill kernel memory with empty files, so they are counted
    (through the namespace's root, as the init sees it) and capped at one per
    4 KiB of budget, the rule the unshare level gives its tmpfs as nr_inodes.
    """
    if run.plan_level == "none":
        return _disk_usage(scratch, run.disk_budget) > run.disk_budget
    if run.plan_level != "bubblewrap" or run.ns_init_pid is None:
        return False
    try:
        usage = os.statvfs(f"/proc/{run.ns_init_pid}/root{INSIDE_SCRATCH}")
    except OSError:
        return False   # not mounted yet, or already gone
    return usage.f_files - usage.f_ffree > run.disk_budget // _MIN_ENTRY_BYTES


def _disk_usage(root: Path, budget: int) -> int:
    """Bytes used under root, stopping early once past budget."""
    total = 0
    stack = [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += max(st.st_blocks * 512, _MIN_ENTRY_BYTES)
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    if total > budget:
                        return total
        except OSError:
            # A directory we cannot list could hide anything; count it as full.
            return budget + 1
    return total


@dataclass
class _Capture:
    cap: int
    data: bytearray = field(default_factory=bytearray)
    truncated: bool = False

    def add(self, chunk: bytes) -> bool:
        """Keep what fits; True the first time the cap is exceeded."""
        if self.truncated:
            return False   # keep draining so the dying tree never blocks on us
        room = self.cap - len(self.data)
        self.data += chunk[:room]
        self.truncated = len(chunk) > room
        return self.truncated


def _init_pid(info: bytes) -> int | None:
    try:
        pid = json.loads(info)["child-pid"]
    except (ValueError, KeyError, TypeError):
        return None   # not complete yet
    return pid if isinstance(pid, int) and pid > 0 else None


def _note_init(run: _Run, info: bytes) -> None:
    """Remember the namespace's init (its pid for /proc, a pidfd to await its end)."""
    pid = _init_pid(info)
    if pid is not None:
        run.ns_init_pid = pid
        run.ns_init = _pidfd(pid)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


@dataclass
class _Run:
    """State of one supervised child, shared by the small steps below."""
    plan: _Plan
    proc: subprocess.Popen
    start: float
    sel: selectors.BaseSelector
    out: _Capture
    err: _Capture
    pending: bytearray               # bytes still to write to the child's stdin
    close_stdin: bool                # close stdin once pending is written (one-shot runs)
    pidfd: int | None
    inbox: bytearray | None = None   # interactive runs: stdout not yet taken by the caller
    info: bytearray = field(default_factory=bytearray)
    ns_init: int | None = None       # pidfd of the namespace's init, once known
    ns_init_pid: int | None = None
    header: bytearray | None = None  # stdout bytes before the init report's newline
    reason: str | None = None
    ended_at: float | None = None    # when the main process was reaped
    give_up_at: float | None = None  # stop waiting for EOF / for a stuck kill
    deadline: float = float("inf")   # wall-clock limit of the whole run
    next_disk: float = 0.0           # when to poll scratch usage next
    disk_budget: int = 0
    plan_level: str = ""

    @property
    def gone(self) -> bool:
        """The child has exited or is being killed: nothing more will come from it."""
        return self.ended_at is not None or self.reason is not None


def _spawn(plan: _Plan, stdin: bytes | None, limits: Limits, scratch: Path) -> _Run:
    """Start the plan.  ``stdin=None`` keeps stdin open for an interactive session."""
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            plan.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=plan.env, cwd=plan.cwd, start_new_session=True, close_fds=True, umask=0o022,
            pass_fds=plan.pass_fds, preexec_fn=plan.preexec)
    finally:
        for fd in plan.pass_fds:
            os.close(fd)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    if stdin is None:
        os.set_blocking(proc.stdin.fileno(), False)
    elif stdin:
        os.set_blocking(proc.stdin.fileno(), False)
        sel.register(proc.stdin, selectors.EVENT_WRITE, "in")
    else:
        proc.stdin.close()
    pidfd = _pidfd(proc.pid)
    if pidfd is not None:
        sel.register(pidfd, selectors.EVENT_READ, "exit")
    if plan.info_fd is not None:
        sel.register(plan.info_fd, selectors.EVENT_READ, "info")
    run = _Run(plan, proc, start, sel, _Capture(limits.output_bytes), _Capture(limits.output_bytes),
               bytearray(stdin or b""), close_stdin=stdin is not None, pidfd=pidfd,
               inbox=bytearray() if stdin is None else None)
    if plan.init_on_stdout:
        run.header = bytearray()
    run.deadline = start + limits.wall_seconds
    run.next_disk = start + _DISK_POLL_SECONDS
    run.disk_budget = _disk_usage(scratch, 1 << 62) + limits.scratch_bytes
    return run


def _kill_tree(run: _Run) -> None:
    # The outer process is a session leader; for the namespaced levels its
    # death tears down the pid namespace and everything in it.  At level none
    # the group may outlive its leader, hence no returncode check there.
    if run.proc.returncode is None or run.plan.sweep:
        try:
            os.killpg(run.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if run.plan.sweep:
        run.plan.sweep()


def _stop(run: _Run, why: str) -> None:
    run.reason = run.reason or why
    _kill_tree(run)


def _pump(run: _Run, key: selectors.SelectorKey) -> None:
    """Move bytes for one ready channel."""
    if key.data == "exit":
        run.sel.unregister(key.fileobj)   # the next poll() reaps
    elif key.data == "info":
        chunk = os.read(key.fd, 4096)
        run.info += chunk
        if run.ns_init is None:
            _note_init(run, bytes(run.info))
        if not chunk or run.ns_init is not None:
            run.sel.unregister(key.fd)
    elif key.data == "in":
        try:
            del run.pending[:os.write(key.fd, run.pending[:65536])]
        except BlockingIOError:
            return
        except OSError:
            run.pending.clear()   # the child closed stdin or died
        if not run.pending:
            run.sel.unregister(key.fileobj)
            if run.close_stdin:
                key.fileobj.close()
    else:
        try:
            chunk = os.read(key.fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            run.sel.unregister(key.fileobj)
            return
        if key.data == "out" and run.header is not None:
            chunk = _take_header(run, chunk)
        if chunk and key.data == "out" and run.inbox is not None:
            # An interactive caller takes replies as they come; what it has not
            # taken yet is bounded like a one-shot run's whole output.
            run.inbox += chunk
            if len(run.inbox) > run.out.cap:
                _stop(run, "output limit")
        elif chunk and (run.out if key.data == "out" else run.err).add(chunk):
            _stop(run, "output limit")


def _take_header(run: _Run, chunk: bytes) -> bytes:
    """Split the init report off the front of stdout; return the rest."""
    run.header += chunk
    line, newline, rest = run.header.partition(b"\n")
    if not newline:
        if len(run.header) > 4096:   # not our report after all: hand it all over
            rest, run.header = bytes(run.header), None
            return rest
        return b""
    run.header = None
    if line.startswith(_INIT_HEADER):
        _note_init(run, bytes(line[len(_INIT_HEADER):]))
        return bytes(rest)
    return bytes(line + newline + rest)


def _watch(run: _Run, scratch: Path, *, done: Callable[[], bool] | None = None,
           until: float = float("inf")) -> None:
    """Event loop: until the child is gone and its output drained.

    An interactive caller passes ``done`` (what it waits for, e.g. a whole
    reply in the inbox) and ``until`` (its own deadline): the loop then also
    returns as soon as either holds, and the run goes on.
    """
    budget = run.disk_budget
    while True:
        if done is not None and done():
            return
        now = time.monotonic()
        if run.ended_at is None and run.proc.poll() is not None:
            run.ended_at = now
            if run.plan.sweep:   # level none: descendants may outlive the main process
                _kill_tree(run)
            run.give_up_at = now + 2.0   # escaped writers may keep the pipes open
        if run.ended_at is not None:
            if not any(k.data in ("out", "err") for k in run.sel.get_map().values()):
                break
        elif now >= run.deadline:
            _stop(run, "wall time")
            run.deadline = float("inf")
            run.give_up_at = now + 30.0   # a tree stuck in the kernel must not hang the grader
        elif now >= run.next_disk:
            if _scratch_over_budget(run, scratch):
                _stop(run, "disk limit")
            run.next_disk = now + _DISK_POLL_SECONDS
        if run.give_up_at is not None and now >= run.give_up_at:
            break
        if now >= until:
            return
        timeout = min(run.deadline, run.next_disk, run.give_up_at or float("inf"), until) - now
        if run.pidfd is None:
            timeout = min(timeout, 0.01)
        for key, _ in run.sel.select(max(timeout, 0)):
            _pump(run, key)
    if run.reason is None and run.plan_level == "none" and _disk_usage(scratch, budget) > budget:
        run.reason = "disk limit"   # filled the disk faster than we polled


def _await_namespace_end(run: _Run) -> None:
    # The outer process (bwrap after a normal exit, bwrap or unshare after a
    # kill) can be reaped a moment before the kernel has finished killing the
    # rest of the namespace; returning earlier would let a detached
    # grandchild outlive the run by a few milliseconds.
    fd = run.plan.info_fd
    if run.ns_init is None and fd is not None and fd in run.sel.get_map():
        os.set_blocking(fd, False)   # the run was too quick for the loop to read it
        try:
            run.info += os.read(fd, 4096)
        except OSError:
            pass
        _note_init(run, bytes(run.info))
    if run.ns_init is not None:
        select.select([run.ns_init], [], [], 10)


def _close(run: _Run) -> None:
    for key in list(run.sel.get_map().values()):
        run.sel.unregister(key.fileobj)
    run.sel.close()
    for f in (run.proc.stdin, run.proc.stdout, run.proc.stderr):
        if not f.closed:
            f.close()
    for fd in (run.pidfd, run.ns_init, run.plan.info_fd):
        if fd is not None:
            os.close(fd)


def _supervise(plan: _Plan, *, stdin: bytes, limits: Limits, scratch: Path) -> _Run:
    run = _spawn(plan, stdin, limits, scratch)
    try:
        _watch(run, scratch)
        _finish(run)
    finally:
        _close(run)
    return run


def _finish(run: _Run) -> None:
    run.ended_at = run.ended_at or time.monotonic()
    _await_namespace_end(run)


def _normalise_returncode(rc: int | None, level: str) -> int | None:
    # Namespaced runs report a signal death as 128+N (the reaper's exit code);
    # make it -N like subprocess does at level none.
    if rc is not None and level != "none" and 128 < rc < 128 + signal.NSIG:
        return -(rc - 128)
    return rc


# --------------------------------------------------------------------------
# Public entry points


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
                  isolation: Isolation | None = None) -> SandboxResult:
    """Run argv with scratch as its working directory, under `isolation`.

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


class SessionEnded(Exception):
    """The sandboxed child is gone (exited, crashed or killed for a limit)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SessionTimeout(Exception):
    """The caller's deadline passed before what it waited for arrived."""


class Session:
    """A sandboxed child the caller talks with over the child's stdin and stdout.

    The caller owns every clock: ``send`` and ``receive`` take a deadline, and
    the run's own wall-clock, output and disk limits hold as in a one-shot run.
    Whatever the child does (stop reading, flood, exit, ignore signals) ends
    in SessionTimeout or SessionEnded, never in a hang.
    """

    def __init__(self, run: _Run, scratch: Path) -> None:
        self._run = run
        self._scratch = scratch

    @property
    def inbox(self) -> bytearray:
        """What the child wrote to stdout and the caller has not taken yet; take by deleting."""
        return self._run.inbox

    def send(self, data: bytes, deadline: float) -> None:
        run = self._run
        if run.gone:
            raise SessionEnded(self._end_reason())
        if not run.pending:
            run.sel.register(run.proc.stdin, selectors.EVENT_WRITE, "in")
        run.pending += data
        _watch(run, self._scratch, done=lambda: not run.pending or run.gone, until=deadline)
        if run.pending and run.gone:
            raise SessionEnded(self._end_reason())
        if run.pending:
            raise SessionTimeout()

    def receive(self, ready: Callable[[bytearray], bool], deadline: float) -> None:
        """Wait until ``ready(self.inbox)`` holds."""
        run = self._run
        _watch(run, self._scratch, done=lambda: ready(run.inbox) or run.gone, until=deadline)
        if ready(run.inbox):
            return
        if run.gone:
            raise SessionEnded(self._end_reason())
        raise SessionTimeout()

    def _end_reason(self) -> str:
        run = self._run
        if run.reason:
            return run.reason
        code = _normalise_returncode(run.proc.poll(), run.plan_level)
        return f"exit code {code}" if code is None or code >= 0 else f"killed by signal {-code}"


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


@contextlib.contextmanager
def _launched(argv: Sequence[str], scratch: Path, read_only: Sequence[tuple[Path, str]], limits: Limits,
              isolation: Isolation | None, stdin: bytes | None) -> Iterator[tuple[_Run, Isolation, Path]]:
    """Validate, plan and spawn; the cgroup of level none lives as long as the block."""
    if not argv:
        raise ValueError("argv must not be empty")
    iso = isolation or detect_isolation()
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


# --------------------------------------------------------------------------
# Detection


_PROBE_SCRIPT = 'echo "sandbox-probe uid=$(id -u)"'
_probe_lock = threading.Lock()
_probe_cache: dict[str, Isolation] = {}


def _missing_tools(level: str) -> list[str]:
    need = {"bubblewrap": ["bwrap", "prlimit"], "unshare": ["unshare", "prlimit", "setpriv"]}[level]
    if level == "bubblewrap" and os.geteuid() == 0:
        need.append("setpriv")
    missing = [t for t in need if not _tool(t)]
    # The tools run inside the sandbox too, so they must come from bound dirs.
    missing += [f"{t} (not under {', '.join(_SYSTEM_DIRS)})" for t in need
                if _tool(t) and not any(_is_under(_tool(t), d) for d in _system_roots())]
    return missing


def _try_level(level: str) -> tuple[bool, str]:
    missing = _missing_tools(level)
    if missing:
        return False, f"missing: {', '.join(missing)}"
    if level == "unshare" and os.geteuid() != 0:
        return False, "needs root (mount namespaces are built with mount(8))"
    candidate = Isolation(level, "", "")
    with tempfile.TemporaryDirectory(prefix="sandbox-probe-") as tmp:
        try:
            res = run_sandboxed(["/bin/sh", "-c", _PROBE_SCRIPT], scratch=Path(tmp),
                                limits=Limits(wall_seconds=_PROBE_WALL_SECONDS), isolation=candidate)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            return False, f"could not start: {exc}"
    text = res.stdout.decode(errors="replace")
    if res.returncode != 0 or "sandbox-probe uid=" not in text:
        why = (res.stderr.decode(errors="replace").strip() or f"exit code {res.returncode}")
        return False, why.splitlines()[-1][:300]
    if "uid=0" in text.split():
        return False, "child still ran as root"
    return True, ""


def _describe(level: str) -> str:
    py = _python_layout()
    root = os.geteuid() == 0
    disk = (f"disk: RLIMIT_FSIZE per file + scratch usage polled every {_DISK_POLL_SECONDS}s "
            f"(each entry counts >= {_MIN_ENTRY_BYTES} B)")
    rlimits = "rlimits cpu/as/fsize/nproc/core/nofile/msgqueue"
    if level == "none":
        cgroup_base, cgroup_text = _pids_cgroup_base()
        if root:
            who = "ROOT (uid 0: RLIMIT_NPROC is not enforced for root)"
            cap = "process cap: " + (cgroup_text if cgroup_base else "NONE (no pids cgroup, root ignores RLIMIT_NPROC)")
        else:
            who = f"the calling user (uid {os.getuid()})"
            cap = ("process cap: RLIMIT_NPROC = caller's current tasks + max_processes "
                   "(shared with the caller's other processes)")
        caught = "via the pids cgroup" if cgroup_base else "only while still in the process group"
        return (f"no namespaces: the child sees the whole host filesystem and network and runs as {who}; "
                f"scrubbed environment, new session, {rlimits}; {cap}; read_only binds are not applied; "
                f"detached descendants killed {caught}; no seccomp filter; {disk}")
    fs = (f"filesystem: read-only {', '.join(d for d in _SYSTEM_DIRS if os.path.exists(d))}, a minimal /etc, "
          f"fresh /proc, read-only /dev with null/zero/full/random/urandom, "
          + (f"interpreter {py.host_prefix} at {py.inside_prefix}" if py.needs_bind
             else f"interpreter under {py.host_prefix}")
          + (" with its site-packages masked" if py.hidden else "")
          + f", read_only binds, scratch at {INSIDE_SCRATCH} (HOME, TMPDIR): a tmpfs of scratch_bytes "
          f"plus a copy of the caller's files, the only writable place; "
          f"nothing else of the host (/root, /home, /tmp, repos) is visible")
    if root:
        who = (f"fresh uid per run ({_UID_BASE}..{_UID_BASE + _UID_SPAN - 1}, unnamed in /etc/passwd, "
               f"no live process), no capabilities, no_new_privs")
        cap = "process cap: RLIMIT_NPROC, exact per sandbox because the uid is private"
    else:
        who = f"uid {_USERNS_UID} in a new user namespace, no capabilities"
        cap = "process cap: RLIMIT_NPROC set inside the user namespace (per sandbox on Linux >= 5.14)"
    teardown = "whole tree killed with the pid namespace"
    _, full_filter, seccomp = _seccomp_filter()
    if level == "bubblewrap":
        mode = "as root, no user namespace" if root else "unprivileged, user namespace"
        disk = ("disk: RLIMIT_FSIZE per file, scratch tmpfs size (ENOSPC; unlinked files count); "
                "tmpfs inodes not capped by bwrap")
        return (f"{_tool_version(_tool('bwrap'))} ({mode}): new mount/pid/net/ipc/uts/cgroup namespaces, "
                f"new session, dies with its parent; {who}; {seccomp}; {fs}; {rlimits}; {cap}; "
                f"{teardown}; {disk}")
    if not full_filter:
        seccomp = f"no seccomp filter at this level ({seccomp.split('(', 1)[-1].rstrip(')')})"
    disk = (f"disk: RLIMIT_FSIZE per file, scratch tmpfs size and inodes (one per {_MIN_ENTRY_BYTES} B "
            f"of budget; ENOSPC; unlinked files count)")
    return (f"{_tool_version(_tool('unshare'))} as root: new mount/pid/net (loopback down)/ipc/uts/cgroup "
            f"namespaces, chroot into a private tmpfs root (the kernel refuses nested user namespaces "
            f"to chrooted processes), new session; {who}; {seccomp} (loaded by a Python launcher); "
            f"{fs}; {rlimits}; {cap}; {teardown}; {disk}")


_INSTALL_BWRAP = "apt-get update && apt-get install -y bubblewrap"


def probe_isolation(level: str) -> Isolation:
    """Isolation for exactly `level` if it works here; level "none" otherwise.

    The probe really starts a trivial sandboxed process; the answer is cached.
    Never raises.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown isolation level {level!r}")
    with _probe_lock:
        if level in _probe_cache:
            return _probe_cache[level]
    try:
        iso = _probe_uncached(level)
    except Exception as exc:   # detection must never take the grader down
        iso = Isolation("none", f"probe for {level} crashed: {exc!r}", f"install bubblewrap: {_INSTALL_BWRAP}")
    with _probe_lock:
        _probe_cache.setdefault(level, iso)
        return _probe_cache[level]


def _probe_uncached(level: str) -> Isolation:
    if level == "none":
        return Isolation("none", _describe("none"),
                         f"Install bubblewrap ({_INSTALL_BWRAP}); if it is installed but fails, "
                         f"unprivileged user namespaces are disabled: enable them "
                         f"(sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu >= 23.10 "
                         f"kernel.apparmor_restrict_unprivileged_userns=0) or run the grader as root.")
    ok, why = _try_level(level)
    if ok:
        how = "" if level == "bubblewrap" else f"bubblewrap is preferred: {_INSTALL_BWRAP}"
        return Isolation(level, _describe(level), how)
    base = _probe_uncached("none")
    return Isolation("none", f"{level} unavailable ({why}); {base.detail}", base.how_to_enable)


def detect_isolation() -> Isolation:
    """Best working level: bubblewrap, then unshare, then none.  Never raises; cached."""
    with _probe_lock:
        if "best" in _probe_cache:
            return _probe_cache["best"]
    failures = []
    best = None
    for level in ("bubblewrap", "unshare"):
        iso = probe_isolation(level)
        if iso.level == level:
            best = iso if not failures else \
                Isolation(iso.level, iso.detail + "; " + "; ".join(failures), iso.how_to_enable)
            break
        failures.append(iso.detail.split(";")[0])
    if best is None:
        none = probe_isolation("none")
        best = Isolation("none", "; ".join(failures + [none.detail]), none.how_to_enable)
    with _probe_lock:
        return _probe_cache.setdefault("best", best)
