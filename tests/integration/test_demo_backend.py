"""The demo backend on its own (no proxy): the HTTP echo and the RFC 6455 echo that other
tests and the README demo rely on. Uses python3-websockets (10.x: asyncio API)."""

import asyncio
import os
import struct
import unittest

from harness import Client, DemoBackend, main

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="          # RFC 6455 §1.3 example
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
             b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " + KEY
             + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")


def frame(opcode, payload, fin=True, mask=b"\x01\x02\x03\x04"):
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class DemoBackendHttp(unittest.TestCase):
    def test_echo_keepalive_and_pipelining(self):
        with DemoBackend() as demo, Client(demo.port) as c:
            c.send(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nFoo: bar\r\n\r\n"
                   b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                   b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.body, b"GET /a?b=1 HTTP/1.1\nHost: x\nFoo: bar\n\n")
            self.assertEqual(r.header("Content-Type"), "text/plain")
            r = c.read_response()
            self.assertEqual(r.body, b"POST /p HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n"
                                     b"\nabcde")
            r = c.read_response(head_request=True)
            self.assertEqual((r.status, r.body), (200, b""))
            self.assertGreater(int(r.header("Content-Length")), 0)
            r = c.request(b"GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            self.assertEqual(r.header("Connection"), "close")
            self.assertTrue(c.is_closed())

    def test_invalid_websocket_handshakes_get_400(self):
        bad = [HANDSHAKE.replace(b"GET", b"POST"),
               HANDSHAKE.replace(KEY, b"c2hvcnQ="),
               HANDSHAKE.replace(b"Version: 13", b"Version: 8"),
               HANDSHAKE.replace(b"keep-alive, Upgrade", b"keep-alive"),
               b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"]
        with DemoBackend() as demo:
            for request in bad:
                with self.subTest(request=request), Client(demo.port) as c:
                    self.assertEqual(c.request(request).status, 400)
                    self.assertTrue(c.is_closed())


class DemoBackendWebSocket(unittest.TestCase):
    def test_raw_frames(self):
        with DemoBackend() as demo, Client(demo.port) as c:
            c.send(HANDSHAKE)
            resp = c.read_response()
            self.assertEqual(resp.status, 101)
            self.assertEqual(resp.header("Sec-WebSocket-Accept"), ACCEPT.decode())
            # a fragmented text message with a ping in the middle, then close
            c.send(frame(1, b"ab", fin=False) + frame(9, b"P") + frame(0, b"cd")
                   + frame(2, b"x" * 300) + frame(8, struct.pack(">H", 1000) + b"bye"))
            self.assertEqual(c.read_all(),
                             b"\x8a\x01P" + b"\x81\x04abcd" + b"\x82\x7e\x01\x2c" + b"x" * 300
                             + b"\x88\x02\x03\xe8")

    def test_unmasked_frame_is_a_protocol_error(self):
        with DemoBackend() as demo, Client(demo.port) as c:
            c.request(HANDSHAKE)
            c.send(b"\x81\x02hi")
            self.assertEqual(c.read_all(), b"\x88\x02\x03\xea")   # close 1002

    def test_websockets_client(self):
        import websockets

        async def session(port):
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
                for message in ("hello", b"\x00\x01bin", "x" * 300, os.urandom(70000),
                                os.urandom(3 << 20)):
                    await ws.send(message)
                    self.assertEqual(await ws.recv(), message)
                await ws.send(["frag", "ment", "ed"])
                self.assertEqual(await ws.recv(), "fragmented")
                pong = await ws.ping(b"pp")
                await asyncio.wait_for(pong, 5)

        with DemoBackend() as demo:
            asyncio.run(asyncio.wait_for(session(demo.port), 20))


if __name__ == "__main__":
    main()
