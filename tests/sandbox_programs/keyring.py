"""argv: add|find DESCRIPTION NR_ADD_KEY NR_KEYCTL.  add: store a key in the
user, session and user-session keyrings; find: search them for it.
Prints JSON {keyring: [return value, errno]}."""
import ctypes
import json
import sys

KEYRINGS = {"user": -4, "session": -3, "user-session": -5}
KEYCTL_SEARCH = 10
action, description = sys.argv[1], sys.argv[2].encode()
nr_add_key, nr_keyctl = int(sys.argv[3]), int(sys.argv[4])
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
report = {}
for name, ring in KEYRINGS.items():
    ctypes.set_errno(0)
    if action == "add":
        payload = b"stolen-" + description
        rc = libc.syscall(ctypes.c_long(nr_add_key), b"user", description, payload,
                          ctypes.c_size_t(len(payload)), ctypes.c_long(ring))
    else:
        rc = libc.syscall(ctypes.c_long(nr_keyctl), ctypes.c_long(KEYCTL_SEARCH), ctypes.c_long(ring),
                          b"user", description, ctypes.c_long(0))
    report[name] = [rc, ctypes.get_errno() if rc == -1 else 0]
print(json.dumps(report))
