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

The modules, one purpose each:

    limits.py       Limits, Isolation, SandboxResult, the level names
    host.py         host facts: system dirs, the interpreter's layout, tools
    cgroup.py       the pids cgroup (level none, as root)
    seccomp.py      the seccomp filter
    identity.py     who the child is: uid and process budget
    mounts.py       the mount plan, rendered for bwrap or as an unshare script
    launch.py       the command, environment and rlimits per level
    supervision.py  feed, drain, watch, kill; the interactive Session
    run.py          run_sandboxed, session, package_binds
    detection.py    detect_isolation, probe_isolation
"""

from __future__ import annotations

from .detection import detect_isolation, probe_isolation
from .host import INSIDE_PYTHON
from .limits import LEVELS, Isolation, Limits, SandboxResult
from .mounts import INSIDE_SCRATCH
from .run import package_binds, run_sandboxed, session
from .supervision import Session, SessionEnded, SessionTimeout

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
