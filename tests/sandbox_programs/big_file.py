"""Write one file far larger than allowed."""
import sys

size = int(sys.argv[1])
chunk = b"x" * 65536
written = 0
try:
    with open("big.bin", "wb", buffering=0) as fh:
        while written < size:
            written += fh.write(chunk)
except OSError as exc:
    print(f"stopped after {written} bytes: {exc.strerror}")
    raise SystemExit(4)
print(f"wrote all {written} bytes")
