"""W1's webhook receiver: answers every POST with 204 at once and notes
when it saw it, its webhook-id and its event's created_at (the commit time
of the job's completion: the event is written by that statement).

Usage: w1_receiver.py PORTFILE. Listens on 127.0.0.1:<free port>, writes the
port to PORTFILE, and on SIGUSR1 (then again, for what came since, on
SIGTERM) prints one JSON line: requests, distinct events, first and last
arrival, and the latency from completion to arrival (p50, p99, max, in ms). Python 3 standard library only (asyncio: one
connection per delivery, as the server sends them).
"""
import asyncio
import datetime
import json
import re
import signal
import sys
import time

SEEN = []  # (arrival, webhook-id, created_at text)
LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)")
WID = re.compile(rb"(?im)^webhook-id:\s*(\S+)")
CREATED = re.compile(rb'"created_at" : "([^"]+)"')


class Hook(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buf = transport, b""

    def data_received(self, data):
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        m = LENGTH.search(self.buf, 0, end)
        need = end + 4 + (int(m.group(1)) if m else 0)
        if len(self.buf) < need:
            return
        now = time.time()
        wid, created = WID.search(self.buf, 0, end), CREATED.search(self.buf, end)
        SEEN.append((now, wid.group(1) if wid else b"", created.group(1) if created else b""))
        self.transport.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        self.transport.close()


def epoch(text):
    t = datetime.datetime.strptime(text.decode(), "%Y-%m-%dT%H:%M:%S.%fZ")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


def summary():
    lat = sorted(1000.0 * (t - epoch(c)) for t, _, c in SEEN if c)
    pick = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None)
    arrivals = [t for t, _, _ in SEEN]
    return {"requests": len(SEEN), "events": len({w for _, w, _ in SEEN}),
            "first": min(arrivals) if arrivals else None, "last": max(arrivals) if arrivals else None,
            "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": lat[-1] if lat else None}


def phase():
    """One phase's figures, and the next phase starts from nothing."""
    print(json.dumps(summary()), flush=True)
    SEEN.clear()


async def main(portfile):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Hook, "127.0.0.1", 0, backlog=4096)
    with open(portfile, "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, phase)
    await stop.wait()
    server.close()
    print(json.dumps(summary()), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
