#!/usr/bin/env python3
"""The hand-written baseline: the same walk and counts with prometheus_client and requests.

Usage: baseline_exporter.py BASE_URL [--once] [--port N]
"""
import sys
import time
from collections import Counter
from urllib.parse import urljoin

import requests
from prometheus_client import CollectorRegistry, Gauge, generate_latest, start_http_server

registry = CollectorRegistry()
users_gauge = Gauge("testsigma_users", "Distinct users.", registry=registry)
status_gauge = Gauge("testsigma_users_by_status", "Users per status.", ["status"], registry=registry)
up = Gauge("testsigma_up", "1 if the last poll succeeded.", registry=registry)


def poll(base, session):
    seen, statuses = set(), Counter()
    url, params = base.rstrip("/") + "/users", {"page_size": 100}
    while url:
        response = session.get(url, params=params, timeout=30)
        response.raise_for_status()
        page = response.json()
        for user in page["data"]:
            if user.get("id") in seen:
                continue
            seen.add(user.get("id"))
            statuses[(user.get("status") or "").strip().lower() or "unknown"] += 1
        nxt = (page.get("page_info") or {}).get("next")
        url, params = (urljoin(url, nxt), None) if nxt else (None, None)
    users_gauge.set(len(seen))
    status_gauge.clear()
    for status, n in statuses.items():
        status_gauge.labels(status).set(n)


def main():
    base, session = sys.argv[1], requests.Session()
    session.headers.update({"Authorization": "Bearer bench", "Accept": "application/json"})
    if "--once" in sys.argv:
        poll(base, session)
        up.set(1)
        sys.stdout.buffer.write(generate_latest(registry))
        return
    start_http_server(int(sys.argv[sys.argv.index("--port") + 1]), registry=registry)
    while True:
        try:
            poll(base, session)
            up.set(1)
        except Exception:
            up.set(0)
        time.sleep(60)


if __name__ == "__main__":
    main()
