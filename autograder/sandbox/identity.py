"""Identity: who the child is (uid, what it sees as its uid, its process budget)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from .limits import Limits

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
