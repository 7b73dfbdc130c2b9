"""Tests for autograder.sandbox, each with a real (hostile) child program.

Levels: "bubblewrap" and "unshare" run when they work on this machine and
skip with the reason otherwise; "none" joins only where the property does not
depend on namespaces.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import shutil
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from autograder import sandbox as sb
from autograder.sandbox import detection, identity, seccomp

pytestmark = [pytest.mark.sandbox]

PROGRAMS = Path(__file__).parent / "sandbox_programs"
REPO_ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
INSTALL_HINT = "install it with: apt-get update && apt-get install -y bubblewrap"
# CI sets this so that a missing or broken bubblewrap fails instead of skipping.
REQUIRE_BWRAP = os.environ.get("SANDBOX_REQUIRE_BWRAP") == "1"

# Generous bound proving a kill happened (the runs themselves use ~2-3 s).
HARD_SECONDS = 45


def _isolation(level: str) -> sb.Isolation:
    iso = sb.probe_isolation(level)
    if iso.level != level:
        why = iso.detail.split(";")[0]
        hint = INSTALL_HINT if level == "bubblewrap" else "needs root and util-linux unshare/setpriv/prlimit"
        message = f"{level} isolation not usable here ({why}); {hint}"
        if level == "bubblewrap" and REQUIRE_BWRAP:
            pytest.fail(message + f"; {iso.how_to_enable}")
        pytest.skip(message)
    return iso


@pytest.fixture(params=["bubblewrap", "unshare"])
def isolated(request) -> sb.Isolation:
    return _isolation(request.param)


@pytest.fixture(params=["bubblewrap", "unshare", "none"])
def any_level(request) -> sb.Isolation:
    return _isolation(request.param)


@pytest.fixture
def scratch(tmp_path) -> Path:
    path = tmp_path / "scratch"
    path.mkdir()
    return path


def run_program(name: str, *args: str, scratch: Path, iso: sb.Isolation, **kw) -> sb.SandboxResult:
    """Copy a helper program into scratch (as the grader does) and run it."""
    shutil.copy(PROGRAMS / name, scratch / name)
    return sb.run_sandboxed([PY, name, *args], scratch=scratch, isolation=iso, **kw)


def run_code(code: str, *, scratch: Path, iso: sb.Isolation, **kw) -> sb.SandboxResult:
    return sb.run_sandboxed([PY, "-c", code], scratch=scratch, isolation=iso, **kw)


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                    if marker.encode() in fh.read():
                        found.append(int(entry.name))
            except OSError:
                pass
    return found


def assert_no_survivors(marker: str) -> None:
    survivors = processes_with(marker)
    for pid in survivors:   # do not leave a mess behind even when failing
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    assert survivors == [], f"processes survived the sandbox: {survivors}"


def has_pids_cgroup(iso: sb.Isolation) -> bool:
    return "pids cgroup v" in iso.detail


def host_site_dirs() -> list[str]:
    """The interpreter's own site-packages directories (masked inside)."""
    import site
    dirs = site.getsitepackages([sys.base_prefix])
    return [d for d in dirs if os.path.isdir(d)]


# --------------------------------------------------------------------------
# Filesystem


def test_cannot_read_host_files(isolated, scratch, tmp_path):
    secret_dir = tmp_path / "elsewhere"
    secret_dir.mkdir()
    secret = secret_dir / "answers.txt"
    secret.write_text("TOP-SECRET-SOLUTION")
    secret.chmod(0o644)
    repo_file = Path(__file__).resolve()
    request = {
        "read": [str(secret), str(repo_file), "/etc/shadow", "/root/.bashrc", "/root/.profile"],
        "list": [str(secret_dir), str(tmp_path), str(REPO_ROOT), "/root", "/home", "/tmp",
                 *host_site_dirs()],
    }
    res = run_program("probe_fs.py", scratch=scratch, iso=isolated, stdin=json.dumps(request).encode())
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert b"TOP-SECRET-SOLUTION" not in res.stdout
    assert report["read"] == {path: None for path in request["read"]}
    # Nothing of the host may be listed; an empty masked directory is fine.
    assert {p: v for p, v in report["list"].items() if v} == {}
    # The host does have these, so the probe really looked at something.
    assert secret.exists() and repo_file.exists()


def test_cannot_write_outside_scratch(isolated, scratch):
    targets = ["/escape", "/tmp/escape", "/usr/escape", "/etc/escape", "/dev/escape",
               "/dev/shm/escape", f"{sb.INSIDE_PYTHON}/escape", "/proc/escape", "/opt/escape"]
    request = {"write": targets + [f"{sb.INSIDE_SCRATCH}/inside.txt"]}
    res = run_program("probe_fs.py", scratch=scratch, iso=isolated, stdin=json.dumps(request).encode())
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)["write"]
    assert {t: report[t] for t in targets} == {t: False for t in targets}
    assert report[f"{sb.INSIDE_SCRATCH}/inside.txt"] is True
    # Scratch inside is a tmpfs: nothing the child writes reaches the host.
    assert not (scratch / "inside.txt").exists()


def test_masked_site_packages_and_numpy_via_read_only_bind(isolated, scratch):
    numpy = pytest.importorskip("numpy")
    code = ("import sys; sys.path.insert(0, '/opt/site'); import numpy; "
            "print(numpy.__file__, int(numpy.arange(5).sum()))")
    res = run_code(code, scratch=scratch, iso=isolated, read_only=sb.package_binds("numpy"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [b"/opt/site/numpy/__init__.py", b"10"]

    numpy_dir = Path(numpy.__file__).resolve()
    if any(numpy_dir.is_relative_to(Path(d).resolve()) for d in host_site_dirs()):
        # Without the bind the interpreter's own site-packages is masked.
        res = run_code("import numpy", scratch=scratch, iso=isolated)
        assert res.returncode == 1
        assert b"ModuleNotFoundError" in res.stderr


@pytest.mark.parametrize("copies", [False, True], ids=["venv-symlinks", "venv-copies"])
def test_venv_python_runs_as_its_base_interpreter(isolated, scratch, tmp_path, copies):
    import venv
    venv.EnvBuilder(with_pip=False, symlinks=not copies).create(tmp_path / "venv")
    res = sb.run_sandboxed([str(tmp_path / "venv" / "bin" / "python"), "-c", "print('ran')"],
                           scratch=scratch, isolation=isolated)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"ran\n"


def test_read_only_binds_of_files_and_directories(isolated, scratch, tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "table.csv").write_text("a,b\n1,2\n")
    single = tmp_path / "single.txt"
    single.write_text("just me")
    code = ("import os\n"
            "print(open('/opt/data/sub/table.csv').read().splitlines()[1])\n"
            "print(open('/work/given/single.txt').read())\n"
            "try:\n"
            "    open('/opt/data/new.txt', 'w')\n"
            "    print('wrote')\n"
            "except OSError:\n"
            "    print('read-only')\n")
    res = run_code(code, scratch=scratch, iso=isolated,
                   read_only=[(data, "/opt/data"), (single, "/work/given/single.txt")])
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().splitlines() == ["1,2", "just me", "read-only"]
    assert not (data / "new.txt").exists()


# --------------------------------------------------------------------------
# Identity, environment, network


def test_runs_unprivileged(isolated, scratch):
    code = ("import os; caps = [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')]; "
            "print(os.getuid(), os.geteuid(), os.getgid(), caps[0])")
    res = run_code(code, scratch=scratch, iso=isolated)
    assert res.returncode == 0, res.stderr
    uid, euid, gid, cap_eff = res.stdout.split()
    assert int(uid) != 0 and int(euid) != 0 and int(gid) != 0
    assert int(cap_eff, 16) == 0


def test_cannot_create_user_namespace_but_threads_work(isolated, scratch):
    # A user namespace would give the child a fresh set of capabilities over
    # its own mounts (tmpfs outside any memory limit, more kernel surface).
    code = ("import ctypes, os, threading\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "rc = libc.unshare(0x10000000)\n"   # CLONE_NEWUSER
            "print(rc, ctypes.get_errno())\n"
            "t = threading.Thread(target=print, args=('thread ok',)); t.start(); t.join()\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    os._exit(7)\n"
            "print('child', os.waitpid(pid, 0)[1] >> 8)\n")
    res = run_code(code, scratch=scratch, iso=isolated)
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().splitlines() == ["-1 1", "thread ok", "child 7"]


def test_environment_is_scrubbed(any_level, scratch, monkeypatch):
    monkeypatch.setenv("SECRET_CI_TOKEN", "hunter2-do-not-leak")
    res = run_code("import json, os; print(json.dumps(dict(os.environ)))", scratch=scratch, iso=any_level)
    assert res.returncode == 0, res.stderr
    env = json.loads(res.stdout)
    assert "SECRET_CI_TOKEN" not in env
    assert b"hunter2" not in res.stdout
    home = sb.INSIDE_SCRATCH if any_level.level != "none" else str(scratch.resolve())
    assert env["HOME"] == home
    assert env["LANG"] == "C.UTF-8"
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        assert env[var] == "1"
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "USER", "LOGNAME", "PWD", "LD_LIBRARY_PATH",
                        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                        "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"}


def test_no_network(isolated, scratch):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted = []

    def accept():
        server.settimeout(10)
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        code = ("import socket\n"
                "try:\n"
                f"    socket.create_connection(('127.0.0.1', {port}), timeout=5)\n"
                "    print('CONNECTED')\n"
                "except OSError as exc:\n"
                "    print('refused', exc)\n")
        res = run_code(code, scratch=scratch, iso=isolated)
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith(b"refused"), res.stdout
        assert accepted == []
        # Control: the server is reachable from outside the sandbox.
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        acceptor.join(timeout=10)
        assert len(accepted) == 1
    finally:
        server.close()


# --------------------------------------------------------------------------
# Process tree and time


@pytest.mark.parametrize("ending", ["exit", "hang"])
def test_detached_grandchild_does_not_survive(any_level, tmp_path, ending):
    if any_level.level == "none" and not has_pids_cgroup(any_level):
        pytest.skip("level none without a pids cgroup cannot find setsid'd descendants")
    # Teardown races show up only now and then, so try a few times.
    for attempt in range(3 if ending == "exit" else 1):
        scratch = tmp_path / f"scratch{attempt}"
        scratch.mkdir()
        marker = f"sandbox-test-marker-{uuid.uuid4().hex}"
        res = run_program("detach_grandchild.py", marker, ending, scratch=scratch, iso=any_level,
                          limits=sb.Limits(wall_seconds=30 if ending == "exit" else 2))
        if ending == "exit":
            assert res.returncode == 0, res.stderr
        else:
            assert res.timed_out is True
        assert res.stdout.strip() == b"grandchild started"
        if any_level.level == "none":
            assert (scratch / "grandchild-alive").exists()
        assert_no_survivors(marker)


def test_stubborn_infinite_loop_killed_at_wall_time(any_level, scratch):
    marker = f"sandbox-test-marker-{uuid.uuid4().hex}"
    started = time.monotonic()
    res = run_program("stubborn_loop.py", marker, scratch=scratch, iso=any_level,
                      limits=sb.Limits(wall_seconds=1.5))
    assert time.monotonic() - started < HARD_SECONDS
    assert res.timed_out is True
    assert res.killed_reason == "wall time"
    assert res.returncode == -signal.SIGKILL
    assert res.stdout.startswith(b"spinning")
    assert_no_survivors(marker)


def test_cpu_limit_kills_busy_child(any_level, scratch):
    res = run_code("while True:\n    pass\n", scratch=scratch, iso=any_level,
                   limits=sb.Limits(cpu_seconds=1, wall_seconds=HARD_SECONDS))
    assert res.timed_out is False
    assert res.returncode in (-signal.SIGXCPU, -signal.SIGKILL)


def test_fork_bomb_is_contained(any_level, scratch):
    if any_level.level == "none" and os.geteuid() == 0 and not has_pids_cgroup(any_level):
        pytest.skip("level none as root without a pids cgroup has no process cap")
    limits = sb.Limits(wall_seconds=2.5, max_processes=16)
    marker = f"sandbox-test-marker-{uuid.uuid4().hex}"
    started = time.monotonic()
    res = run_program("fork_bomb.py", marker, scratch=scratch, iso=any_level, limits=limits)
    assert time.monotonic() - started < HARD_SECONDS
    assert res.timed_out is True
    held = int(res.stdout.split()[1])
    slack = 0 if any_level.level != "none" or os.geteuid() == 0 else 8   # shared per-user count
    assert 1 <= held <= limits.max_processes + slack
    assert_no_survivors(marker)


def test_concurrent_sandboxes_do_not_share_process_budget(isolated, tmp_path):
    # Each run holds 10 of its 12 allowed processes at the same time as the
    # other; a uid-wide RLIMIT_NPROC shared between runs would refuse forks.
    # Scratch is private to each run, so the host counts the runs' processes
    # (argv carries a marker) and says "go" through a read-only bind.
    code = ("import os, sys, time, signal\n"
            "kids = []\n"
            "for _ in range(10):\n"
            "    pid = os.fork()\n"
            "    if pid == 0:\n"
            "        signal.pause()\n"
            "    kids.append(pid)\n"
            "deadline = time.monotonic() + 20\n"
            "while not os.path.exists('/opt/sync/go') and time.monotonic() < deadline:\n"
            "    time.sleep(0.01)\n"
            "print(len(kids))\n")
    results = {}
    sync = tmp_path / "sync"
    sync.mkdir()
    markers = {name: f"sandbox-test-marker-{uuid.uuid4().hex}" for name in ("a", "b")}

    def run(name: str) -> None:
        d = tmp_path / name
        d.mkdir()
        results[name] = sb.run_sandboxed([PY, "-c", code, markers[name]], scratch=d, isolation=isolated,
                                         read_only=[(sync, "/opt/sync")], limits=sb.Limits(max_processes=12))

    threads = [threading.Thread(target=run, args=(name,)) for name in markers]
    for t in threads:
        t.start()
    def held(marker: str) -> int:   # the python parent and its kids, not bwrap/sh around them
        count = 0
        for pid in processes_with(marker):
            try:
                argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            count += os.path.basename(argv0).startswith(b"python")
        return count

    deadline = time.monotonic() + HARD_SECONDS
    while not all(held(m) >= 11 for m in markers.values()) and time.monotonic() < deadline:
        if not any(t.is_alive() for t in threads):
            break
        time.sleep(0.01)
    (sync / "go").touch()
    for t in threads:
        t.join(timeout=HARD_SECONDS)
    for name, res in results.items():
        assert res.returncode == 0, (name, res.stderr)
        assert res.stdout.strip() == b"10"


# --------------------------------------------------------------------------
# Memory, disk, output


def test_memory_bomb_fails_inside_the_child(any_level, scratch):
    limits = sb.Limits(memory_bytes=256 * 1024**2)
    res = run_program("memory_bomb.py", scratch=scratch, iso=any_level, limits=limits)
    assert res.returncode == 3, res.stderr
    got = int(res.stdout.split()[2])
    assert 0 < got <= 256


def test_huge_file_is_stopped(any_level, scratch):
    limits = sb.Limits(file_size_bytes=1024**2)
    res = run_program("big_file.py", str(64 * 1024**2), scratch=scratch, iso=any_level, limits=limits)
    assert res.returncode == 4, (res.stdout, res.stderr)
    assert b"File too large" in res.stdout
    assert int(res.stdout.split()[2]) <= limits.file_size_bytes


def test_filling_scratch_is_stopped(any_level, scratch):
    limits = sb.Limits(scratch_bytes=8 * 1024**2, file_size_bytes=2 * 1024**2, wall_seconds=30)
    give_up = 512 * 1024**2   # a broken limit fails the test without filling the disk
    started = time.monotonic()
    res = run_program("fill_disk.py", str(1024**2), str(give_up), scratch=scratch, iso=any_level,
                      limits=limits)
    assert time.monotonic() - started < HARD_SECONDS
    assert res.timed_out is False
    assert b"unhindered" not in res.stdout
    if any_level.level == "none":   # polled folder scan
        assert res.killed_reason == "disk limit", (res.stdout, res.stderr)
        written = sum(p.stat().st_size for p in scratch.glob("fill-*.bin"))
        assert written < give_up
    else:   # size-capped tmpfs: the write itself fails
        assert res.returncode == 5, (res.stdout, res.stderr)
        assert res.stdout.split()[-1] == str(errno.ENOSPC).encode()
        assert int(res.stdout.split()[2]) <= limits.scratch_bytes
        assert list(scratch.glob("fill-*.bin")) == []


def test_many_empty_files_are_stopped(any_level, scratch):
    # Empty files take no space from a size cap, but each costs kernel memory.
    limits = sb.Limits(scratch_bytes=8 * 1024**2, wall_seconds=30)
    inode_budget = limits.scratch_bytes // 4096
    code = ("import os\ncount = 0\ntry:\n    while count < 2_000_000:\n"
            "        open(f'e{count}', 'w').close()\n        count += 1\n"
            "except OSError as error:\n    print('stopped', count, error.errno)\nelse:\n    print('unhindered', count)\n")
    started = time.monotonic()
    res = run_code(code, scratch=scratch, iso=any_level, limits=limits)
    assert time.monotonic() - started < HARD_SECONDS
    assert b"unhindered" not in res.stdout
    if any_level.level == "unshare":   # the tmpfs has nr_inodes
        assert res.stdout.split()[-1] == str(errno.ENOSPC).encode(), res.stdout
        assert int(res.stdout.split()[1]) <= inode_budget
    else:   # counted by the supervisor: the folder scan (none) or the tmpfs's inodes (bubblewrap)
        assert res.killed_reason == "disk limit", (res.stdout, res.stderr)


def test_output_flood_is_truncated(any_level, scratch):
    limits = sb.Limits(output_bytes=64 * 1024)
    code = "import sys\nfor i in range(1_000_000):\n    sys.stdout.write(f'line {i}\\n')\n"
    res = run_code(code, scratch=scratch, iso=any_level, limits=limits)
    assert res.output_truncated is True
    assert res.killed_reason == "output limit"
    assert len(res.stdout) == limits.output_bytes
    expected = "".join(f"line {i}\n" for i in range(20_000)).encode()
    assert expected.startswith(res.stdout)


def test_stderr_flood_is_truncated_too(isolated, scratch):
    limits = sb.Limits(output_bytes=4096)
    res = run_code("import sys\nfor _ in range(10_000):\n    sys.stderr.write('e' * 1000)\n",
                   scratch=scratch, iso=isolated, limits=limits)
    assert res.output_truncated is True
    assert res.killed_reason == "output limit"
    assert res.stderr == b"e" * 4096


# --------------------------------------------------------------------------
# Kernel channels: seccomp, keyrings, memory, disk and descriptors past rlimits


# What the sandbox promises to refuse (docs/sandbox.md), kept here on its own
# so that shrinking the list in sandbox/seccomp.py fails a test.
REQUIRED_REFUSED = (
    "keyctl", "add_key", "request_key", "memfd_create", "userfaultfd", "perf_event_open", "bpf",
    "ptrace", "process_vm_readv", "process_vm_writev", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "mount", "umount2", "pivot_root", "swapon", "swapoff", "reboot", "kexec_load",
    "kexec_file_load", "init_module", "finit_module", "delete_module", "acct", "settimeofday",
    "clock_settime", "adjtimex", "syslog", "open_by_handle_at", "name_to_handle_at", "lookup_dcookie",
    "fanotify_init", "quotactl", "setns", "vhangup", "iopl", "ioperm", "create_module",
    "get_kernel_syms", "query_module", "uselib", "ustat", "sysfs", "_sysctl", "nfsservctl",
    "move_pages", "mbind", "set_mempolicy", "migrate_pages", "kcmp", "shmget", "msgget",
)
SECCOMP_EPERM = 0x00050000 | errno.EPERM
SECCOMP_ENOSYS = 0x00050000 | errno.ENOSYS
SECCOMP_ALLOW = 0x7FFF0000
CLONE_NEWUSER = 0x10000000


def syscall_numbers(names) -> dict[str, int]:
    """Native numbers of the names that exist on this architecture."""
    import pyseccomp   # a project dependency: missing means the full filter is missing too
    numbers = {name: pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name) for name in names}
    return {name: nr for name, nr in numbers.items() if nr >= 0}


def all_refused() -> dict[str, int]:
    listed = [name for _, group in seccomp._REFUSED_SYSCALLS for name in group]
    return syscall_numbers(dict.fromkeys([*REQUIRED_REFUSED, *listed]))


def run_bpf(program: bytes, nr: int, args=(0,) * 6, arch: int | None = None) -> int:
    """Classic-BPF interpreter for the opcodes seccomp programs use here."""
    if arch is None:
        arch = seccomp._SECCOMP_ARCH[platform.machine()][0]
    data = struct.pack("=IIQ6Q", nr & 0xFFFFFFFF, arch, 0, *args)
    insns = [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:      # ld [k]
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == 0x54:    # and #k
            acc &= k
        elif code == 0x05:    # ja
            pc += k
        elif code in (0x15, 0x25, 0x35, 0x45):   # jeq / jgt / jge / jset
            taken = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if taken else jf
        elif code == 0x06:    # ret #k
            return k
        else:
            raise AssertionError(f"BPF opcode {code:#x} is not emulated")


def test_full_seccomp_filter_is_active():
    if platform.machine() not in seccomp._SECCOMP_ARCH:
        pytest.skip(f"no seccomp support for {platform.machine()}")
    program, full, detail = seccomp._seccomp_filter()
    assert full, detail
    assert program and "libseccomp filter" in detail


def test_seccomp_program_decisions():
    if platform.machine() not in seccomp._SECCOMP_ARCH:
        pytest.skip(f"no seccomp support for {platform.machine()}")
    program = seccomp._seccomp_filter()[0]
    refused = all_refused()
    assert set(syscall_numbers(REQUIRED_REFUSED)) <= set(refused)
    verdicts = {name: run_bpf(program, nr) for name, nr in refused.items()}
    assert verdicts == {name: SECCOMP_EPERM for name in refused}
    n = syscall_numbers(["read", "write", "openat", "mmap", "futex", "clone", "unshare", "clone3",
                         "personality", "getpid", "exit_group", "prctl", "setresuid", "capset"])
    for name in ("read", "write", "openat", "mmap", "futex", "getpid", "exit_group", "prctl",
                 "setresuid", "capset"):
        assert run_bpf(program, n[name]) == SECCOMP_ALLOW, name
    assert run_bpf(program, n["clone"], (0x11 | 0x01000000 | 0x00200000,) + (0,) * 5) == SECCOMP_ALLOW
    assert run_bpf(program, n["clone"], (CLONE_NEWUSER | 0x11,) + (0,) * 5) == SECCOMP_EPERM
    assert run_bpf(program, n["unshare"], (CLONE_NEWUSER,) + (0,) * 5) == SECCOMP_EPERM
    assert run_bpf(program, n["unshare"], (0x400,) + (0,) * 5) == SECCOMP_ALLOW   # CLONE_FILES
    assert run_bpf(program, n["clone3"]) == SECCOMP_ENOSYS
    assert run_bpf(program, n["personality"]) == SECCOMP_ALLOW
    assert run_bpf(program, n["personality"], (0x0040000,) + (0,) * 5) == SECCOMP_EPERM
    # Other ABIs of the CPU: 32-bit x86 (int 0x80) / arm32, and x32 numbers.
    assert run_bpf(program, n["getpid"], arch=0x40000003) == SECCOMP_EPERM
    if platform.machine() == "x86_64":
        assert run_bpf(program, 0x40000000 | n["getpid"]) == SECCOMP_EPERM


def test_refused_syscalls_fail_with_eperm_inside(isolated, scratch):
    refused = all_refused()
    res = run_program("syscalls.py", scratch=scratch, iso=isolated, stdin=json.dumps(refused).encode())
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report == {name: errno.EPERM for name in refused}
    # Control: the same program gets through for calls that are allowed.
    allowed = syscall_numbers(["getpid", "getuid", "sched_yield"])
    res = run_program("syscalls.py", scratch=scratch, iso=isolated, stdin=json.dumps(allowed).encode())
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {name: 0 for name in allowed}


def test_keyring_cannot_carry_data_between_runs(isolated, tmp_path):
    description = f"sandbox-test-{uuid.uuid4().hex}"
    numbers = syscall_numbers(["add_key", "keyctl"])
    reports = []
    for step in ("add", "find"):
        scratch = tmp_path / step
        scratch.mkdir()
        res = run_program("keyring.py", step, description, str(numbers["add_key"]), str(numbers["keyctl"]),
                          scratch=scratch, iso=isolated)
        assert res.returncode == 0, res.stderr
        reports.append(json.loads(res.stdout))
    rings = ["user", "session", "user-session"]
    assert reports[0] == {ring: [-1, errno.EPERM] for ring in rings}
    assert reports[1] == {ring: [-1, errno.EPERM] for ring in rings}


@pytest.mark.parametrize("how", ["memfd", "sysv"])
def test_memory_outside_rlimit_as_is_refused(isolated, scratch, how):
    limits = sb.Limits(memory_bytes=256 * 1024**2)
    res = run_program("hoard.py", how, str(512 * 1024**2), scratch=scratch, iso=isolated, limits=limits)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"held": 0, "errno": errno.EPERM, "name": "EPERM"}


def test_unlinked_open_file_counts_against_scratch(isolated, scratch):
    limits = sb.Limits(scratch_bytes=8 * 1024**2, file_size_bytes=256 * 1024**2, wall_seconds=30)
    give_up = 256 * 1024**2
    res = run_program("hoard.py", "unlinked", str(give_up), scratch=scratch, iso=isolated, limits=limits)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["errno"] == errno.ENOSPC, report
    assert report["held"] <= limits.scratch_bytes


def test_descriptors_are_capped(any_level, scratch):
    limits = sb.Limits(open_files=32)
    res = run_program("hoard.py", "fds", "100000", scratch=scratch, iso=any_level, limits=limits)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["errno"] == errno.EMFILE, report
    assert 0 < report["held"] < limits.open_files


def test_numpy_matrix_product_under_default_limits(isolated, scratch):
    pytest.importorskip("numpy")
    code = ("import sys; sys.path.insert(0, '/opt/site'); import numpy as np\n"
            "a = np.arange(40000.0).reshape(200, 200)\n"
            "print(float((a @ np.eye(200)).sum()), round(float(np.linalg.det(2 * np.eye(3))), 6))\n")
    res = run_code(code, scratch=scratch, iso=isolated, read_only=sb.package_binds("numpy"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [b"799980000.0", b"8.0"]


def test_given_files_are_copied_into_scratch(isolated, scratch):
    (scratch / "sub").mkdir()
    (scratch / "sub" / "data.txt").write_text("given data\n")
    (scratch / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (scratch / "run.sh").chmod(0o755)
    (scratch / "link").symlink_to("sub/data.txt")
    code = ("import os, subprocess\n"
            "print(open('sub/data.txt').read().strip())\n"
            "print(subprocess.run(['./run.sh'], capture_output=True, text=True).stdout.strip())\n"
            "print(os.readlink('link'))\n"
            "print(os.stat('sub/data.txt').st_uid == os.getuid(), os.stat('.').st_uid == os.getuid())\n"
            "open('sub/data.txt', 'a').write('changed inside\\n')\n"
            "open('new.txt', 'w').write('new')\n"
            "print(open('sub/data.txt').read().splitlines()[-1])\n")
    res = run_code(code, scratch=scratch, iso=isolated)
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().splitlines() == ["given data", "ran", "sub/data.txt", "True True",
                                                "changed inside"]
    # The child changed its copy only.
    assert (scratch / "sub" / "data.txt").read_text() == "given data\n"
    assert not (scratch / "new.txt").exists()


def test_fresh_uid_range_and_collisions(monkeypatch):
    # Clear of systemd's container range, SSSD/FreeIPA's default id ranges,
    # systemd's foreign range and the signed-uid_t boundary.
    assert identity._UID_BASE > 2_000_200_000
    assert identity._UID_BASE + identity._UID_SPAN <= 2_147_352_576
    picks = iter([5, 6, 7])
    monkeypatch.setattr(identity.secrets, "randbelow", lambda span: next(picks))
    monkeypatch.setattr(identity, "_ids_named_in", lambda path, column: {identity._UID_BASE + 5})
    monkeypatch.setattr(identity, "_uid_has_process", lambda uid: uid == identity._UID_BASE + 6)
    assert identity._fresh_uid() == identity._UID_BASE + 7


def test_uid_in_use_is_detected():
    assert identity._uid_has_process(os.getuid())
    assert 0 in identity._ids_named_in("/etc/passwd", 2)  # root is named on every machine


def test_sandbox_uid_is_in_the_documented_range(isolated, scratch):
    if os.geteuid() != 0:
        pytest.skip("per-run uids are used only as root")
    res = run_code("import os; print(os.getuid())", scratch=scratch, iso=isolated)
    assert res.returncode == 0, res.stderr
    assert identity._UID_BASE <= int(res.stdout) < identity._UID_BASE + identity._UID_SPAN


# --------------------------------------------------------------------------
# Plumbing


def test_returncode_stdin_and_stdout_propagate(any_level, scratch):
    code = "import sys\ndata = sys.stdin.read()\nprint(data[::-1])\nsys.exit(42)\n"
    res = run_code(code, scratch=scratch, iso=any_level, stdin=b"hello sandbox")
    assert res.returncode == 42
    assert res.stdout == b"xobdnas olleh\n"
    assert res.timed_out is False and res.killed_reason is None and res.output_truncated is False
    assert res.isolation == any_level


def test_death_by_signal_is_reported_negative(any_level, scratch):
    res = run_code("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", scratch=scratch, iso=any_level)
    assert res.returncode == -signal.SIGSEGV


def test_large_stdin_is_streamed(isolated, scratch):
    payload = os.urandom(3 * 1024**2)
    code = "import sys, hashlib\nprint(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())\n"
    res = run_code(code, scratch=scratch, iso=isolated, stdin=payload)
    import hashlib
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().decode() == hashlib.sha256(payload).hexdigest()


def test_bad_arguments_raise(scratch):
    iso = sb.probe_isolation("none")
    with pytest.raises(NotADirectoryError):
        sb.run_sandboxed(["true"], scratch=scratch / "missing", isolation=iso)
    with pytest.raises(FileNotFoundError):
        sb.run_sandboxed(["true"], scratch=scratch, read_only=[(scratch / "nope", "/opt/x")], isolation=iso)
    with pytest.raises(ValueError):
        sb.run_sandboxed(["true"], scratch=scratch, read_only=[(scratch, "relative")], isolation=iso)
    with pytest.raises(ValueError):
        sb.run_sandboxed(["true"], scratch=scratch, read_only=[(scratch, "/usr/lib/x")], isolation=iso)
    with pytest.raises(ValueError):
        sb.Limits(wall_seconds=0)


# --------------------------------------------------------------------------
# Detection


def test_detect_isolation_prefers_bubblewrap():
    if shutil.which("bwrap") is None and not REQUIRE_BWRAP:
        pytest.skip(f"bubblewrap (bwrap) is not installed; {INSTALL_HINT}")
    _isolation("bubblewrap")   # skips (or fails in CI) with the probe's reason if unusable
    iso = sb.detect_isolation()
    assert iso.level == "bubblewrap", iso.detail
    assert "pid" in iso.detail and "net" in iso.detail
    assert sb.detect_isolation() is iso   # cached


def test_detection_degrades_without_tools(monkeypatch):
    monkeypatch.setattr(detection, "_tool", lambda name: None)
    iso = detection._probe_uncached("bubblewrap")
    assert iso.level == "none"
    assert "bwrap" in iso.detail
    assert "apt-get install -y bubblewrap" in iso.how_to_enable


def test_detect_isolation_never_raises(monkeypatch):
    def broken(level):
        raise RuntimeError("probe exploded")

    monkeypatch.setattr(detection, "_probe_uncached", broken)
    monkeypatch.setattr(detection, "_probe_cache", {})
    iso = sb.detect_isolation()
    assert iso.level == "none"
    assert "exploded" in iso.detail


def test_a_closed_session_leaves_no_process_and_no_descriptor(isolated, tmp_path):
    code = "import sys\nsys.stdout.buffer.write(sys.stdin.buffer.read(5))\nsys.stdout.flush()\nimport time\ntime.sleep(60)\n"
    descriptors = len(os.listdir("/proc/self/fd"))
    for attempt in range(3):
        scratch = tmp_path / f"s{attempt}"
        scratch.mkdir()
        with sb.session([PY, "-c", code], scratch=scratch, isolation=isolated) as talk:
            talk.send(b"hello", time.monotonic() + 10)
            talk.receive(lambda inbox: len(inbox) >= 5, time.monotonic() + 10)
            assert bytes(talk.inbox) == b"hello"
            process = talk._run.proc
        assert process.returncode is not None  # reaped: no zombie per session
    assert len(os.listdir("/proc/self/fd")) == descriptors
