"""argv: memfd|sysv|unlinked|fds, GIVE_UP_BYTES.  Try to keep memory, disk or
descriptors past the limits; print JSON {"held": amount, "errno": errno}."""
import ctypes
import errno
import json
import os
import sys

how, give_up = sys.argv[1], int(sys.argv[2])
chunk = b"\xa5" * (1024 * 1024)
held = 0
err = None
try:
    if how == "memfd":
        fd = os.memfd_create("hoard")
        while held < give_up:
            held += os.write(fd, chunk)
    elif how == "sysv":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.shmget(0, give_up, 0o1600) == -1:
            raise OSError(ctypes.get_errno(), "shmget")
        held = give_up
    elif how == "unlinked":
        fd = os.open("hidden.bin", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.unlink("hidden.bin")
        while held < give_up:
            held += os.write(fd, chunk)
        os.fsync(fd)
    elif how == "fds":
        kept = []
        while len(kept) < give_up:
            kept.append(os.open("/dev/null", os.O_RDONLY))
        held = len(kept)
except OSError as exc:
    err = exc.errno
    if how == "fds":
        held = len(kept)
print(json.dumps({"held": held, "errno": err, "name": errno.errorcode.get(err)}))
