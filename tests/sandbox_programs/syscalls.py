"""Make each system call named on stdin (JSON {name: number}); print errno per name.

Where it matters, the arguments are ones under which the call succeeds for an
ordinary unprivileged process, so that EPERM there can only come from seccomp.
Strings become char pointers.
"""
import ctypes
import json
import sys

ARGS = {
    "keyctl": (0, -3, 0),                    # KEYCTL_GET_KEYRING_ID of the session keyring
    "add_key": ("user", "sandbox-probe", "x", 1, -3),
    "request_key": ("user", "sandbox-probe", 0, 0),
    "memfd_create": ("probe", 0),
    "memfd_secret": (0,),
    "shmget": (0, 4096, 0o1600),             # IPC_PRIVATE, IPC_CREAT | 0600
    "msgget": (0, 0o1600),
    "semget": (0, 1, 0o1600),
    "userfaultfd": (1,),                     # UFFD_USER_MODE_ONLY: allowed unprivileged
    "ptrace": (0, 0, 0, 0),                  # PTRACE_TRACEME
    "personality": (0x0040000,),             # ADDR_NO_RANDOMIZE
    "unshare": (0x10000000,),                # CLONE_NEWUSER
    "io_uring_setup": (1, 0),
    "set_mempolicy": (0, 0, 0),              # MPOL_DEFAULT
    "mbind": (0, 0, 0, 0, 0, 0),
    "move_pages": (0, 0, 0, 0, 0, 0),
    "iopl": (0,),
    "ioperm": (0, 0, 0),
    "modify_ldt": (0, 0, 0),                 # read the (empty) LDT
    "sysfs": (3,),                           # number of filesystem types
    "settimeofday": (0, 0),                  # both NULL: a no-op
}

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
report = {}
for name, nr in json.load(sys.stdin).items():
    args = [ctypes.c_char_p(a.encode()) if isinstance(a, str) else ctypes.c_long(a)
            for a in ARGS.get(name, (0, 0, 0, 0, 0, 0))]
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(nr), *args)
    report[name] = ctypes.get_errno() if rc == -1 else 0
print(json.dumps(report))
