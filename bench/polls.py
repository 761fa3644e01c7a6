#!/usr/bin/env python3
"""Runs the exporter as a server until it has logged N successful polls, prints its
/metrics to stdout, stops it with SIGTERM, and prints `user sys max_rss_kib wall` of it on
one line to stderr, as rusage.py does: so the measured process polls more than once and
what a poll remembers for the next (membership) is in its peak RSS and CPU.

The peak RSS is the exporter's own `VmHWM`, read before it is stopped: the `ru_maxrss` of
wait4 would also count this Python process, whose memory the child has until it execs.

Usage: polls.py N PORT CMD [ARG...]
CMD must listen on 127.0.0.1:PORT and log at info (each poll logs "poll succeeded").
With POLLS_BETWEEN set in the environment, that shell command runs after each successful poll
but the last, with POLL set to the poll's number (1, 2, ...): to change what the API serves
between polls.
"""
import os
import signal
import subprocess
import sys
import time
import urllib.request

polls, port, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
start = time.monotonic()
proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
succeeded = 0
failed = None
for line in proc.stderr:
    if "poll succeeded" in line:
        succeeded += 1
        if succeeded == polls:
            break
        if os.environ.get("POLLS_BETWEEN"):
            env = dict(os.environ, POLL=str(succeeded))
            subprocess.run(os.environ["POLLS_BETWEEN"], shell=True, env=env, check=True)
    elif "poll failed" in line or "level=error" in line:
        failed = line.strip()
        break
peak_kib = 0
if failed is None and succeeded == polls:
    with open(f"/proc/{proc.pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                peak_kib = int(line.split()[1])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        sys.stdout.write(r.read().decode())
proc.send_signal(signal.SIGTERM)
# Keep reading so the exporter never blocks on a full pipe while it stops.
for _ in proc.stderr:
    pass
_, status, usage = os.wait4(proc.pid, 0)
wall = time.monotonic() - start
if failed is not None or succeeded < polls:
    print(f"polls.py: {succeeded} of {polls} polls succeeded: {failed}", file=sys.stderr)
    sys.exit(1)
print(f"{usage.ru_utime:.4f} {usage.ru_stime:.4f} {peak_kib} {wall:.4f}", file=sys.stderr)
sys.exit(0)
