"""Try to read and write the paths given on stdin (JSON); report what worked."""
import json
import os
import sys

request = json.load(sys.stdin)
report = {"read": {}, "list": {}, "write": {}}
for path in request.get("read", []):
    try:
        with open(path, "rb") as fh:
            report["read"][path] = fh.read(200).decode(errors="replace")
    except OSError:
        report["read"][path] = None
for path in request.get("list", []):
    try:
        report["list"][path] = sorted(os.listdir(path))
    except OSError:
        report["list"][path] = None
for path in request.get("write", []):
    try:
        with open(path, "w") as fh:
            fh.write("written from the sandbox")
        report["write"][path] = True
    except OSError:
        report["write"][path] = False
print(json.dumps(report))
