"""The mount plan of the namespaced levels, and its two renderings: bwrap
arguments and the shell script that the unshare level runs."""

from __future__ import annotations

import os
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .host import _SYSTEM_DIRS, _is_under, _python_layout, _tool
from .identity import _Identity
from .limits import _MIN_ENTRY_BYTES, Limits

INSIDE_SCRATCH = "/work"

# Just enough of /etc for the dynamic loader and time zones; the rest of /etc
# can hold host configuration that is none of the child's business.
_ETC_ENTRIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives")


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
