"""The pids cgroup: an optional extra process cap at level none (absent on many CI runners)."""

from __future__ import annotations

import functools
import os
import secrets
import signal
import time
from pathlib import Path


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
