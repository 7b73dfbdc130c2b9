"""Public data of the sandbox: resource limits, the isolation level used, a run's result.

Also the names of the isolation levels and the constants of the disk limit,
which the mount plan, supervision and the description of each level share.
"""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("bubblewrap", "unshare", "none")

_DISK_POLL_SECONDS = 0.1
# Charging every file at least one block makes "a million empty files" hit the
# disk budget too (inodes are disk as well).
_MIN_ENTRY_BYTES = 4096


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
