"""Detection: which isolation level works on this machine, found by starting a
trivial sandboxed process at each level, and what each level isolates."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from pathlib import Path

from .cgroup import _pids_cgroup_base
from .host import _SYSTEM_DIRS, _is_under, _python_layout, _system_roots, _tool, _tool_version
from .identity import _UID_BASE, _UID_SPAN, _USERNS_UID
from .limits import _DISK_POLL_SECONDS, _MIN_ENTRY_BYTES, LEVELS, Isolation, Limits
from .mounts import INSIDE_SCRATCH
from .run import run_sandboxed
from .seccomp import _seccomp_filter

_PROBE_WALL_SECONDS = 10.0
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
                f"tmpfs inodes polled every {_DISK_POLL_SECONDS} s, killed past one per {_MIN_ENTRY_BYTES} B "
                "of budget (bwrap cannot cap them)")
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
    A failing probe is an answer ("none", with the reason), not an exception;
    only an unknown ``level`` raises ValueError (a caller's mistake).
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
