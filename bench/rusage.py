#!/usr/bin/env python3
"""Runs a command and prints `user sys max_rss_kib wall` of it (seconds, microsecond
resolution, unlike /usr/bin/time's 10 ms) on one line to stderr; stdout is the command's.

Usage: rusage.py CMD [ARG...]
"""
import os
import sys
import time

start = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.monotonic() - start
print(f"{usage.ru_utime:.4f} {usage.ru_stime:.4f} {usage.ru_maxrss} {wall:.4f}", file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
