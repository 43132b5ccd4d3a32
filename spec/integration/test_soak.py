#!/usr/bin/python3
"""A bounded soak test (issue 4): well-behaved clients beside abusive ones.

For --seconds (60 by default; CTest passes less for the sanitizer build) the
real server carries:

  * well-behaved clients (python3-websockets, from 127.0.0.2) in one room,
    each publishing a numbered message every 50 ms and acknowledging the
    replies;
  * flooders that send as fast as they can (rate_limit closes them with
    1008; they come back);
  * slowloris handshakes (one header byte a second; handshake_timeout);
  * oversize frames (1009), invalid UTF-8 (1007);
  * consumers that join the room and never read (a tiny receive buffer);
  * connect/disconnect storms.

Pass: every well-behaved client got a reply to every publish and every
other well-behaved client's every message, in order; the server never
crashed (with workers: none of them exited); once the abusers are gone,
its open files are back to the baseline and its RSS near it (with
workers: summed over the supervisor and its workers).
"""

import argparse
import asyncio
import json
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

import websockets  # noqa: E402

GOOD = 12           # well-behaved clients
ROOM = "soak"
GOOD_ADDR = "127.0.0.2"


def procs(pid):
    """The server's processes: pid, and with workers its worker processes."""
    return [pid] + sorted(H.children(pid))


def fds(pid):
    return sum(len(os.listdir("/proc/%d/fd" % p)) for p in procs(pid))


def rss_kb(pid):
    total = 0
    for p in procs(pid):
        with open("/proc/%d/status" % p) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


class Good:
    def __init__(self, n):
        self.n = n
        self.ws = None
        self.id = None
        self.sent = 0
        self.replies = 0
        self.got = {}        # publisher client id -> list of seq numbers
        self.errors = []

    async def connect(self, url):
        self.ws = await websockets.connect(url, max_size=None, ping_interval=None,
                                           local_addr=(GOOD_ADDR, 0))
        w = json.loads(await self.ws.recv())
        self.id = w["data"]["client_id"]
        await self.ws.send(json.dumps({"type": "system", "action": "join",
                                       "data": {"room": ROOM}, "id": "join"}))

    async def reader(self):
        try:
            async for raw in self.ws:
                m = json.loads(raw)
                if m.get("type") == "error":
                    self.errors.append(m)
                elif m.get("action") == "message" and m.get("room") == ROOM:
                    d = m["data"]
                    if isinstance(d.get("data"), dict) and "seq" in d["data"]:
                        self.got.setdefault(d["from"], []).append(d["data"]["seq"])
                elif m.get("action") == "publish" and "id" in m:
                    self.replies += 1
        except websockets.ConnectionClosed as e:
            if self.ws.close_code != 1000:
                self.errors.append("closed %s %s" % (e.code, e.reason))

    async def writer(self, until):
        while time.monotonic() < until:
            self.sent += 1
            await self.ws.send(json.dumps({
                "type": "system", "action": "publish", "id": "p%d" % self.sent,
                "data": {"room": ROOM, "data": {"seq": self.sent, "pad": "x" * 64}}}))
            await asyncio.sleep(0.05)


async def raw_upgrade(host, port, source=None, rcvbuf=None):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if source:
        sock.bind((source, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock)
    req, _key = H.build_request()
    writer.write(req)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    if not head.startswith(b"HTTP/1.1 101"):
        writer.close()
        return None, None
    return reader, writer


def frame(opcode, payload, length=None):
    n = len(payload) if length is None else length
    mask = b"\x01\x02\x03\x04"
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + mask + H.mask_bytes(payload, mask)


async def drain_close(reader, writer, timeout=5):
    try:
        while await asyncio.wait_for(reader.read(65536), timeout):
            pass
    except (asyncio.TimeoutError, ConnectionError, OSError):
        pass
    writer.close()


async def flooder(host, port, until, stats):
    while time.monotonic() < until:
        try:
            reader, writer = await raw_upgrade(host, port, source="127.0.0.3")
            if not reader:
                await asyncio.sleep(0.2)
                continue
            msg = frame(1, json.dumps({"type": "system", "action": "ping"}).encode())
            drain = asyncio.ensure_future(drain_close(reader, writer, 10))
            while not drain.done() and time.monotonic() < until:
                writer.write(msg * 50)
                await writer.drain()
                await asyncio.sleep(0)
            stats["floods"] += 1
            writer.close()
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            await asyncio.sleep(0.05)


async def slowloris(host, port, until, stats):
    req, _ = H.build_request()
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=("127.0.0.4", 0))
            for b in req[:-2]:
                if time.monotonic() >= until or reader.at_eof():
                    break
                writer.write(bytes([b]))
                await writer.drain()
                await asyncio.sleep(1.0)
            writer.close()
            stats["slowloris"] += 1
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(0.1)


async def bad_frames(host, port, until, stats):
    bad = [frame(1, b"x" * 16, length=10 << 20),   # over max_message_size: 1009
           frame(1, b"caf\xc3\x28"),                 # invalid UTF-8: 1007
           frame(3, b"reserved opcode")]             # 1002
    i = 0
    while time.monotonic() < until:
        try:
            reader, writer = await raw_upgrade(host, port, source="127.0.0.5")
            if reader:
                writer.write(bad[i % len(bad)])
                i += 1
                await drain_close(reader, writer)
                stats["bad_frames"] += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.05)


async def never_reader(host, port, until, stats):
    try:
        reader, writer = await raw_upgrade(host, port, source="127.0.0.6", rcvbuf=4096)
        if not reader:
            return
        writer.write(frame(1, json.dumps({"type": "system", "action": "join",
                                          "data": {"room": ROOM}}).encode()))
        await writer.drain()
        stats["never_readers"] += 1
        while time.monotonic() < until:
            await asyncio.sleep(0.2)  # and never read
        writer.close()
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
        pass


async def storm(host, port, until, stats):
    while time.monotonic() < until:
        try:
            reader, writer = await raw_upgrade(host, port, source="127.0.0.7")
            if reader:
                writer.close()
            stats["storm"] += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.005)


async def soak(srv, seconds):
    host, port = srv.connect_host, srv.port
    pid = srv.proc.pid
    good = [Good(i) for i in range(GOOD)]
    for g in good:
        await g.connect(srv.url())
    readers = [asyncio.ensure_future(g.reader()) for g in good]
    await asyncio.sleep(0.5)
    base_fds, base_rss = fds(pid), rss_kb(pid)
    base_procs = procs(pid)

    until = time.monotonic() + seconds
    stats = dict(floods=0, slowloris=0, bad_frames=0, never_readers=0, storm=0)
    abusers = ([flooder(host, port, until, stats) for _ in range(3)] +
               [slowloris(host, port, until, stats) for _ in range(20)] +
               [bad_frames(host, port, until, stats) for _ in range(2)] +
               [never_reader(host, port, until, stats) for _ in range(5)] +
               [storm(host, port, until, stats) for _ in range(2)])
    writers = [g.writer(until) for g in good]
    await asyncio.gather(*writers, *abusers)
    check(srv.alive(), "the server is alive after the soak")
    eq(procs(pid), base_procs, "the server's processes (no worker exited and was restarted)")

    # Every well-behaved message must arrive: a last round trip per client
    # (ping is answered after everything queued before it), then close.
    await asyncio.sleep(1.0)
    for g in good:
        await g.ws.send(json.dumps({"type": "system", "action": "leave",
                                    "data": {"room": ROOM}, "id": "leave"}))
    await asyncio.sleep(1.0)
    for g in good:
        await g.ws.close()
    await asyncio.gather(*readers)

    for g in good:
        eq(g.errors, [], "client %d errors" % g.n)
        eq(g.replies, g.sent, "client %d: replies to its publishes" % g.n)
        for other in good:
            if other is g:
                continue
            want = list(range(1, other.sent + 1))
            got = g.got.get(other.id, [])
            if got != want:
                missing = sorted(set(want) - set(got))[:10]
                raise H.Failure("client %d got %d of %d messages from client %d "
                                "(missing %s, in order: %s)" % (
                                    g.n, len(got), len(want), other.n, missing,
                                    got == sorted(got)))

    # Back to the baseline once everyone is gone.
    def settled():
        return fds(pid) <= base_fds - GOOD + 2
    H.poll(settled, timeout=15, what="open files back to the baseline (%d, now %d)" %
           (base_fds, fds(pid)))
    time.sleep(2.5)  # the cron trims freed memory after a second of quiet
    rss = rss_kb(pid)
    sent = sum(g.sent for g in good)
    print("   soak: %ds, %d well-behaved publishes (x%d recipients), abusers %s; "
          "fds %d -> %d, RSS %d -> %d KB" % (seconds, sent, GOOD - 1, stats, base_fds,
                                              fds(pid), base_rss, rss))
    check(stats["floods"] > 0 and stats["slowloris"] > 0 and stats["bad_frames"] > 0
          and stats["never_readers"] > 0 and stats["storm"] > 0, "every abuser ran: %r" % stats)
    if CHECK_RSS[0]:
        check(rss <= base_rss * 1.5 + 32 * 1024, "RSS %d KB vs baseline %d KB" % (rss, base_rss))


S = H.Suite("moonwire soak")
SECONDS = [60]
CHECK_RSS = [True]


@S.case("well-behaved clients beside abusers", timeout=240)
def test_soak_clients_beside_abusers(ctx):
    srv = ctx.start(None, ctx.example("hello"), env={
        "MOONWIRE_RATE_LIMIT_MAX_MESSAGES": "100",
        "MOONWIRE_RATE_LIMIT_MAX_VIOLATIONS": "50",
        "MOONWIRE_MAX_MESSAGE_SIZE": "65536",
        "MOONWIRE_HANDSHAKE_TIMEOUT": "3000",
        "MOONWIRE_MAX_BUFFERED_BYTES": "262144",
        "MOONWIRE_PING_INTERVAL": "5000",
        "MOONWIRE_PONG_TIMEOUT": "5000",
        "MOONWIRE_CLOSE_TIMEOUT": "2000",
    })
    asyncio.run(soak(srv, SECONDS[0]))


if __name__ == "__main__":
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--seconds", type=int, default=60)
    # Under AddressSanitizer freed memory sits in its quarantine, so RSS says
    # nothing about leaks there (LeakSanitizer checks those at exit).
    p.add_argument("--no-rss-check", action="store_true")
    known, rest = p.parse_known_args()
    SECONDS[0] = known.seconds
    CHECK_RSS[0] = not known.no_rss_check
    sys.exit(S.main(rest))
