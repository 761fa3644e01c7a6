#!/usr/bin/env python3
"""Hostile clients for scripts/e2e-tls.sh, on loopback only; Python standard library only.

  hostile.py flood HOST PORT CA USER SECONDS
      520 keep-alive TLS connections send GET /metrics as USER with random wrong passwords,
      each one every half second (reconnecting when the server closes), for SECONDS; prints
      the status codes they got (0: the connection failed).

  hostile.py flood-h2 HOST PORT CA USER SECONDS
      The same flood over HTTP/2 (ALPN h2): each connection sends a guess every half second
      as long as the server keeps it, then connects again; prints the status codes and how
      many GOAWAYs the connections got. A minimal HTTP/2 client that answers no PING (so a
      graceful GOAWAY never completes): HPACK without a dynamic table for the request, and
      :status read from the static table or as digits; a status the server sent from its
      dynamic table (a second answer on one connection, before it was dropped) counts as
      "indexed".

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


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# :status values of HPACK's static table (RFC 7541, appendix A), by index.
STATIC_STATUS = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}


def frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def literal(name_index, value):
    """A header field without indexing, its name from the static table (index < 15)."""
    value = value.encode()
    return bytes([name_index, len(value)]) + value


def h2_request(stream, host, port, auth):
    # :method GET (2), :scheme https (7), then :authority (1), :path (4), authorization (23).
    block = (b"\x82\x87" + literal(1, f"{host}:{port}") + literal(4, "/metrics")
             + b"\x0f\x08" + bytes([len(auth)]) + auth.encode())
    return frame(1, 0x5, stream, block)  # HEADERS, END_STREAM | END_HEADERS


def huffman_digits(data):
    """Decodes a Huffman-coded string of digits (codes of 5 and 6 bits), or None."""
    bits = "".join(f"{b:08b}" for b in data)
    out, i = "", 0
    while len(bits) - i >= 5:
        five = int(bits[i:i + 5], 2)
        if five <= 2:
            out, i = out + str(five), i + 5
            continue
        if len(bits) - i < 6:
            break
        six = int(bits[i:i + 6], 2)
        if not 0x19 <= six <= 0x1f:
            break
        out, i = out + str(six - 0x19 + 3), i + 6
    return int(out) if out and set(bits[i:]) <= {"1"} else None


def status_of(block):
    first = block[0]
    if first & 0x80:
        return STATIC_STATUS.get(first & 0x7f, "indexed")
    # A literal whose name is :status (8), with or without indexing.
    if first in (0x48, 0x08, 0x18):
        huffman, length = block[1] & 0x80, block[1] & 0x7f
        value = block[2:2 + length]
        return huffman_digits(value) if huffman else int(value)
    return "other"


async def h2_attacker(host, port, tls, user, statuses, stop):
    count = lambda key: statuses.__setitem__(key, statuses.get(key, 0) + 1)  # noqa: E731
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port, ssl=tls)
        except OSError:
            count(0)
            await asyncio.sleep(0.5)
            continue
        try:
            writer.write(PREFACE + frame(4, 0, 0))
            stream = 1
            writer.write(h2_request(stream, host, port, basic(user, os.urandom(16).hex())))
            while not stop.is_set():
                head = await reader.readexactly(9)
                length, kind, flags = int.from_bytes(head[:3], "big"), head[3], head[4]
                payload = await reader.readexactly(length)
                if kind == 4 and not flags & 1:
                    writer.write(frame(4, 1, 0))  # SETTINGS ACK
                elif kind == 7:
                    count("goaway")
                elif kind == 1 and int.from_bytes(head[5:9], "big") == stream:
                    count(status_of(payload))
                    await asyncio.sleep(0.5)
                    stream += 2
                    writer.write(h2_request(stream, host, port, basic(user, os.urandom(16).hex())))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # closed by the server: connect again
        except (OSError, ssl.SSLError):
            count(0)
        finally:
            writer.close()


async def flood(host, port, ca, user, seconds, h2=False):
    tls = ssl.create_default_context(cafile=ca)
    if h2:
        tls.set_alpn_protocols(["h2"])
    statuses, stop = {}, asyncio.Event()
    one = h2_attacker if h2 else attacker
    tasks = [asyncio.create_task(one(host, port, tls, user, statuses, stop))
             for _ in range(CONNECTIONS)]
    await asyncio.sleep(float(seconds))
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    shown = dict(sorted(statuses.items(), key=lambda kv: str(kv[0])))
    print(f"the {'HTTP/2 ' if h2 else ''}flood of {CONNECTIONS} connections got {shown}")
    # A flood that never reached the exporter would make every check after it pass.
    refused = statuses.get(401, 0) + statuses.get(429, 0)
    if refused < CONNECTIONS or statuses.get(200) or not statuses.get(429):
        print("not the flood asked for: too few answers, a guess let in, or no 429 "
              "(the limit on waiting password checks never reached)", file=sys.stderr)
        return 1
    if h2 and statuses.get("goaway", 0) < CONNECTIONS:
        print("refused HTTP/2 connections were not closed with a GOAWAY", file=sys.stderr)
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
    if len(argv) == 6 and argv[0] == "flood-h2":
        return asyncio.run(flood(*argv[1:], h2=True))
    if len(argv) >= 6 and argv[0] == "non-reader":
        return non_reader(*argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
