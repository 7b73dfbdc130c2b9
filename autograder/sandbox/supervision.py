"""Supervision of a started plan: feed stdin, drain output with caps, watch the
wall clock and disk, kill the whole tree; and the interactive Session."""

# One thread, one selector: stdin, stdout, stderr and a pidfd for the exit.
# Threads would cost milliseconds each to start, and polling Popen.wait()
# adds up to 50 ms of latency per run.

from __future__ import annotations

import json
import os
import select
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .launch import _Plan
from .limits import _DISK_POLL_SECONDS, _MIN_ENTRY_BYTES, Limits
from .mounts import _INIT_HEADER, INSIDE_SCRATCH


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
    except BaseException:
        if plan.info_fd is not None:
            os.close(plan.info_fd)   # nobody will read bwrap's report now
        raise
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


def _finish(run: _Run) -> None:
    run.ended_at = run.ended_at or time.monotonic()
    _await_namespace_end(run)


def _normalise_returncode(rc: int | None, level: str) -> int | None:
    # Namespaced runs report a signal death as 128+N (the reaper's exit code);
    # make it -N like subprocess does at level none.
    if rc is not None and level != "none" and 128 < rc < 128 + signal.NSIG:
        return -(rc - 128)
    return rc


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
