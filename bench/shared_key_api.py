#!/usr/bin/env python3
"""A stand-in for the Testsigma users API that enforces the live API's limit per key, for the
shared-key rows of the benchmark.

Usage: shared_key_api.py PORT PAGES [PAGE_SIZE] [LIMIT]

Serves GET /api/v1/users (cursor pages `?cursor=pN`, PAGES of PAGE_SIZE users, 100 by
default) to any Bearer key. Per key, at most LIMIT (10) requests are answered in any second
(a sliding window; a refused request counts against it too, as the tests' mock has it);
past that it answers as the live API does: HTTP 500 {"message": "rate limit exceeded"}.
Every answer carries x-tms-api-limit, x-tms-api-remaining and x-tms-api-reset.
GET /stats gives {"requests": n, "refused": n} since the last POST /reset.
"""
import collections
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PORT, PAGES = int(sys.argv[1]), int(sys.argv[2])
SIZE = int(sys.argv[3]) if len(sys.argv) > 3 else 100
LIMIT = int(sys.argv[4]) if len(sys.argv) > 4 else 10
WINDOW = 1.0

lock = threading.Lock()
recent = collections.defaultdict(collections.deque)  # key -> arrival times in the window
stats = {"requests": 0, "refused": 0}


def page(n):
    users = [
        {
            "id": f"00000000-0000-4000-8000-{n * SIZE + i:012d}",
            "email": f"user{n * SIZE + i}@example.com",
            "status": "inactive" if (n * SIZE + i) % 5 == 0 else "active",
        }
        for i in range(SIZE)
    ]
    nxt = f"p{n + 1}" if n + 1 < PAGES else ""
    info = {"page_size": SIZE, "total_count": PAGES * SIZE, "next": nxt}
    return json.dumps({"message": "", "data": users, "page_info": info}).encode()


BODIES = [page(n) for n in range(PAGES)]
REFUSED = json.dumps({"message": "rate limit exceeded"}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body, headers=()):
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        with lock:
            stats.update(requests=0, refused=0)
            recent.clear()
        self.reply(200, b"{}")

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/stats":
            with lock:
                body = json.dumps(stats).encode()
            return self.reply(200, body)
        if url.path != "/api/v1/users":
            return self.reply(404, b'{"message": "not found"}')
        key = self.headers.get("authorization", "")
        now = time.monotonic()
        with lock:
            window = recent[key]
            while window and now - window[0] >= WINDOW:
                window.popleft()
            refused = len(window) >= LIMIT
            window.append(now)
            remaining = max(0, LIMIT - len(window))
            stats["requests"] += 1
            stats["refused"] += refused
        headers = [
            ("x-tms-api-limit", str(LIMIT)),
            ("x-tms-api-remaining", str(remaining)),
            ("x-tms-api-reset", "1"),
        ]
        if refused:
            return self.reply(500, REFUSED, headers)
        cursor = parse_qs(url.query).get("cursor", ["p0"])[0]
        try:
            n = int(cursor.removeprefix("p"))
            body = BODIES[n]
        except (ValueError, IndexError):
            return self.reply(400, b'{"message": "bad cursor"}', headers)
        self.reply(200, body, headers)


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
