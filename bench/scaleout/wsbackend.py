"""The scale-out bench's backend: a WebSocket echo server (python3-websockets) that records,
for every session, what reached it.

    wsbackend.py --listen ADDR:PORT --record FILE

A client opens ws://.../s/<sid>?src=<its source address>. On connect the backend sends a
JSON hello naming the TCP peer it sees (the Switchyard instance) and the X-Forwarded-For
values of the request, then echoes every text message after checking it:
    "<sid> <seq> <payload> <crc32 of payload, 8 hex>"
seq must be the previous one plus 1 (from 1), the checksum must match and sid must be
the session's. When a session ends one JSON line is appended to FILE (flushed at once):
sid, src, peer, xff, messages verified, bad messages, how it ended, times.
Every wait is bounded: idle sessions are closed by the websockets keepalive, and the
process stops on SIGTERM/SIGINT after writing what it has.
"""

import argparse
import asyncio
import json
import signal
import sys
import time
import urllib.parse
import zlib

import websockets


def check(message, sid, expected_seq):
    """None if `message` is the next good message of session `sid`, else why not."""
    if not isinstance(message, str):
        return "binary message"
    parts = message.split(" ")
    if len(parts) != 4:
        return "malformed"
    msg_sid, seq, payload, crc = parts
    if msg_sid != sid:
        return f"sid {msg_sid!r} on session {sid!r}"
    if not seq.isdigit() or int(seq) != expected_seq:
        return f"seq {seq} (expected {expected_seq})"
    if f"{zlib.crc32(payload.encode()):08x}" != crc:
        return "checksum"
    return None


class Recorder:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)

    def write(self, record):
        self.f.write(json.dumps(record, sort_keys=True) + "\n")
        self.f.flush()


async def session(ws, recorder):
    url = urllib.parse.urlsplit(ws.path)
    query = urllib.parse.parse_qs(url.query)
    sid = url.path.rsplit("/", 1)[-1]
    record = {
        "sid": sid,
        "src": query.get("src", [""])[0],
        "peer": ws.remote_address[0] if ws.remote_address else None,
        "xff": ws.request_headers.get_all("X-Forwarded-For"),
        "t_open": time.time(),
        "verified": 0,
        "bad": 0,
        "first_bad": None,
        "end": None,
        "t_end": None,
    }
    try:
        await ws.send(json.dumps({"hello": 1, "sid": sid, "peer": record["peer"], "xff": record["xff"]}))
        async for message in ws:
            problem = check(message, sid, record["verified"] + record["bad"] + 1)
            if problem:
                record["bad"] += 1
                record["first_bad"] = record["first_bad"] or problem
            else:
                record["verified"] += 1
            await ws.send(message)
        record["end"] = f"close {ws.close_code}"
    except websockets.ConnectionClosed as e:
        record["end"] = f"closed {e.code}"
    except Exception as e:  # recorded, never silent
        record["end"] = f"error {type(e).__name__}: {e}"
    finally:
        record["t_end"] = time.time()
        recorder.write(record)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True, help="ADDR:PORT")
    ap.add_argument("--record", required=True, help="JSON lines, one per session")
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    recorder = Recorder(args.record)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with websockets.serve(lambda ws: session(ws, recorder), host, int(port), compression=None,
                                ping_interval=20, ping_timeout=20, close_timeout=2, backlog=1024):
        print(f"wsbackend: listening on {host}:{port}", flush=True)
        await stop
    print("wsbackend: stopped", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
