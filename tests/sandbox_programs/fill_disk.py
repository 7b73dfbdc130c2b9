"""Fill scratch with many files; give up by itself after a hard cap."""
import os
import sys

per_file = int(sys.argv[1])
give_up = int(sys.argv[2])
block = os.urandom(per_file)
written = 0
n = 0
try:
    while written < give_up:
        with open(f"fill-{n:06d}.bin", "wb") as fh:
            fh.write(block)
        written += per_file
        n += 1
except OSError as exc:
    print(f"stopped after {written} bytes: errno {exc.errno}")
    raise SystemExit(5)
print(f"filled {written} bytes unhindered")
