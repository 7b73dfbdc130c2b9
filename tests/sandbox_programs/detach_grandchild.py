"""Double fork + setsid, leave a grandchild sleeping with a marker in argv.

With "hang" as second argument the main process then waits to be killed.
"""
import os
import sys
import time

marker = sys.argv[1]
alive = os.path.abspath("grandchild-alive")
holder = (
    "import os, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
    f"open({alive!r}, 'w').write(str(os.getpid()))\n"
    "time.sleep(600)\n"
)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.execv(sys.executable, [sys.executable, "-c", holder, marker])
    os._exit(0)
os.wait()
deadline = time.monotonic() + 20
while not os.path.exists(alive) and time.monotonic() < deadline:
    time.sleep(0.01)
print("grandchild started" if os.path.exists(alive) else "grandchild missing", flush=True)
if sys.argv[2:] == ["hang"]:   # wait for the wall-time kill
    while True:
        time.sleep(1)
