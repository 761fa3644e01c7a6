#!/usr/bin/env python3
"""Hostile clients for scripts/e2e-tls.sh, on loopback only; Python standard library only.

  hostile.py flood HOST PORT CA USER SECONDS
      520 keep-alive TLS connections send GET /metrics as USER with random wrong passwords,
      each one every half second (reconnecting when the server closes), for SECONDS; prints
      the status codes they got (0: the connection failed).

  hostile.py non-reader HOST PORT CA USER PASSWORD_FILE [LIMIT]
      Sends pipelined scrapes with the right password over TLS and never reads an answer;
      prints after how many seconds the server closed the connection; exits 1 if not within
      LIMIT (60) s.
"""

import asyncio
import base64
import os
import socket
import ssl
import sys
import time

CONNECTIONS = 520


def basic(user, password):
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Basic {pair}"


def request(host, port, auth):
    return (f"GET /metrics HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {auth}\r\n"
            "Accept-Encoding: identity\r\n\r\n").encode()


async def read_response(reader):
    """Reads one response; returns (status, whether the server closes the connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if length:
        await reader.readexactly(length)
    return status, headers.get("connection", "").lower() == "close"


async def attacker(host, port, tls, user, statuses, stop):
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port, ssl=tls)
        except OSError:
            statuses[0] = statuses.get(0, 0) + 1
            await asyncio.sleep(0.5)
            continue
        try:
            while not stop.is_set():
                writer.write(request(host, port, basic(user, os.urandom(16).hex())))
                await writer.drain()
                status, close = await read_response(reader)
                statuses[status] = statuses.get(status, 0) + 1
                await asyncio.sleep(0.5)
                if close:
                    break
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            statuses[0] = statuses.get(0, 0) + 1
        finally:
            writer.close()


async def flood(host, port, ca, user, seconds):
    tls = ssl.create_default_context(cafile=ca)
    statuses, stop = {}, asyncio.Event()
    tasks = [asyncio.create_task(attacker(host, port, tls, user, statuses, stop))
             for _ in range(CONNECTIONS)]
    await asyncio.sleep(float(seconds))
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(f"the flood of {CONNECTIONS} connections got {dict(sorted(statuses.items()))}")
    # A flood that never reached the exporter would make every check after it pass.
    refused = statuses.get(401, 0) + statuses.get(429, 0)
    if refused < CONNECTIONS or statuses.get(200) or not statuses.get(429):
        print("not the flood asked for: too few answers, a guess let in, or no 429 "
              "(the limit on waiting password checks never reached)", file=sys.stderr)
        return 1
    return 0


def non_reader(host, port, ca, user, password_file, limit=60):
    tls = ssl.create_default_context(cafile=ca)
    with open(password_file, encoding="utf-8") as f:
        one = request(host, port, basic(user, f.read().strip()))
    raw = socket.create_connection((host, int(port)), timeout=10)
    sock = tls.wrap_socket(raw, server_hostname=host)
    sock.setblocking(False)
    pipelined = one * 20000
    started = time.monotonic()
    sent = 0
    # Write whatever the server takes, never read: the answers pile up unread. The server
    # closing the connection shows as a failed write (reset or broken pipe).
    while time.monotonic() - started < float(limit) + 5:
        try:
            if sent < len(pipelined):
                sent += sock.send(pipelined[sent:sent + 65536])
            else:
                sock.send(one)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            time.sleep(0.2)
        except OSError as e:
            took = time.monotonic() - started
            print(f"a client that never reads was cut off after {took:.1f} s ({e.__class__.__name__})")
            return 0 if took < float(limit) else 1
    print(f"a client that never reads still connected after {float(limit) + 5:.0f} s")
    return 1


def main(argv):
    if len(argv) == 6 and argv[0] == "flood":
        return asyncio.run(flood(*argv[1:]))
    if len(argv) >= 6 and argv[0] == "non-reader":
        return non_reader(*argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
