"""The seccomp filter: refuse the kernel interfaces a Python/numpy child has no use for."""

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

from __future__ import annotations

import functools
import platform
import struct
import tempfile


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
        minimal = _seccomp_program()
        if minimal is None:
            return None, False, f"NO seccomp filter ({why}; no built-in filter for {platform.machine()})"
        return minimal, False, (f"minimal seccomp filter only, refusing new user namespaces "
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
