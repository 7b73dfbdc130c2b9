#!/usr/bin/env python3
"""Set up the project's own virtual environment and run its jobs.

Needs only Python 3.11+ (with venv and pip) and git:

    python3 dev.py demo                 # set up, then run the main job
    python3 dev.py test                 # set up, then run the test suite
    python3 dev.py test --with-torch    # also install PyTorch (CPU) for the cross-check tests, as CI does

Everything is installed into ./.venv; nothing outside the checkout is touched.
Set-up is skipped when .venv is already up to date with pyproject.toml.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
# The CPU build of PyTorch this project's machines carry; other versions pull
# multi-gigabyte CUDA builds.  Only --with-torch installs it.
TORCH_PIN = "torch==2.13.0"


def run(*command: str | Path) -> None:
    print("+", " ".join(str(part) for part in command), flush=True)
    subprocess.run([str(part) for part in command], check=True, cwd=ROOT)


def setup(with_torch: bool) -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}")
    stamp_text = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp_text += "+torch" if with_torch else ""
    stamp = VENV / ".dev-stamp"
    if stamp.exists() and (stamp.read_text() == stamp_text or (
        not with_torch and stamp.read_text() == stamp_text + "+torch"
    )):
        return
    if not PYTHON.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    if with_torch:
        run(PYTHON, "-m", "pip", "install", "--quiet", TORCH_PIN)
    # postgres: the shared-gradebook tests run against a real server where there is one (CI starts it).
    extras = "test,postgres,torch" if with_torch else "test,postgres"
    run(PYTHON, "-m", "pip", "install", "--quiet", "-e", f".[{extras}]")
    # nbgrader executes notebooks with the "python3" kernel: make this
    # environment's interpreter that kernel, whatever the machine has.
    run(PYTHON, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3")
    stamp.write_text(stamp_text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", choices=["setup", "demo", "test"])
    parser.add_argument("--with-torch", action="store_true", help="install PyTorch (CPU) for the cross-check tests")
    argv = sys.argv[1:]
    # Everything after "--" goes to pytest untouched.
    pytest_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    setup(args.with_torch)
    env = dict(os.environ, PATH=f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    if args.job == "demo":
        return subprocess.run([str(PYTHON), "-m", "autograder", "demo"], cwd=ROOT, env=env).returncode
    if args.job == "test":
        return subprocess.run([str(PYTHON), "-m", "pytest", *pytest_args], cwd=ROOT, env=env).returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
