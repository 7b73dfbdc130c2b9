"""Grab memory 8 MiB at a time until the allocator refuses."""
hoard = []
try:
    while len(hoard) < 128:   # 1 GiB, then give up
        hoard.append(bytearray(8 * 1024 * 1024))
except MemoryError:
    print(f"MemoryError after {len(hoard) * 8} MiB", flush=True)
    raise SystemExit(3)
print("never refused")
