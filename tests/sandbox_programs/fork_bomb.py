"""Count how many children we can hold, then fork without end (argv[1]: a marker)."""
import os
import signal

held = 0
try:
    while held < 10_000:
        pid = os.fork()
        if pid == 0:
            signal.pause()
            os._exit(0)
        held += 1
except OSError:
    pass
print(f"held {held}", flush=True)
while True:
    try:
        os.fork()
    except OSError:
        pass
