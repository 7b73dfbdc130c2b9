"""Host facts, computed once per process: the system directories, where the
interpreter lives and how it is re-mounted inside, the tools and their versions."""

from __future__ import annotations

import functools
import glob
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from dataclasses import dataclass

# The host interpreter usually lives somewhere we must not expose wholesale
# (pyenv under /root, a venv inside the repo), so its prefix is re-mounted here.
INSIDE_PYTHON = "/opt/python"

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


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
