// A node `ws` (Debian node-ws) client for test_terminate.py: talks to a speak-first TCP
// echo service through a WebSocket endpoint and prints one JSON line with what it saw.
//
//   node terminate_node_client.js URL PROTOCOL GREETING_LENGTH
//
// Steps: open with subprotocol PROTOCOL (ws offers permessage-deflate by default: the
// server must decline it), read the service's greeting (GREETING_LENGTH bytes), send
// binary messages of 0 B to 1 MiB across the 7/16/64-bit length boundaries and read each
// echo back, send a UTF-8 text message, send 1,000 numbered messages in one burst and read
// the echoed stream, then close with 1000. Echoed bytes may arrive split over any number
// of messages (the server frames each upstream read), so payloads are joined as a stream.
// Every step is bounded by an overall deadline.
"use strict";

let WebSocket;
try {
  WebSocket = require("ws");
} catch (e) {
  WebSocket = require("/usr/share/nodejs/ws");   // Debian's node-ws, outside node's default paths
}
const crypto = require("crypto");

const [url, protocol, greetingArg] = process.argv.slice(2);
const greetingLength = parseInt(greetingArg || "0", 10);
const SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20];
const result = { protocol: null, extensions: null, greeting: "", sizes: [], text_ok: false,
                 order_ok: false, close_code: null, close_reason: "", errors: [] };
const sentHash = crypto.createHash("sha256");
const recvHash = crypto.createHash("sha256");
let sentBytes = 0, recvBytes = 0;

const deadline = setTimeout(() => {
  result.errors.push("deadline (30 s) passed");
  finish(2);
}, 30000);

function finish(code) {
  clearTimeout(deadline);
  result.sent_sha256 = sentHash.digest("hex");
  result.recv_sha256 = recvHash.digest("hex");
  result.sent_bytes = sentBytes;
  result.recv_bytes = recvBytes;
  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(code));
}

// ---- a byte stream over the received messages

let pending = [];            // Buffers not yet taken
let pendingLength = 0;
let waiter = null;           // { n, resolve }
let messageTypes = new Set();

function take(n) {
  return new Promise((resolve) => {
    waiter = { n, resolve };
    pump();
  });
}

function pump() {
  if (!waiter || pendingLength < waiter.n) return;
  const all = Buffer.concat(pending);
  const out = all.subarray(0, waiter.n);
  const rest = all.subarray(waiter.n);
  pending = rest.length ? [rest] : [];
  pendingLength = rest.length;
  const w = waiter;
  waiter = null;
  w.resolve(Buffer.from(out));
}

function send(ws, data, binary) {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data, "utf8");
  sentHash.update(buf);
  sentBytes += buf.length;
  return new Promise((resolve, reject) =>
    ws.send(data, { binary }, (err) => (err ? reject(err) : resolve())));
}

const ws = new WebSocket(url, [protocol], { handshakeTimeout: 5000, maxPayload: 64 << 20 });
ws.binaryType = "nodebuffer";

ws.on("message", (data, isBinary) => {
  messageTypes.add(isBinary ? "binary" : "text");
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  recvHash.update(buf);
  recvBytes += buf.length;
  pending.push(buf);
  pendingLength += buf.length;
  pump();
});

ws.on("error", (err) => {
  result.errors.push("error: " + err.message);
});

ws.on("close", (code, reason) => {
  result.close_code = code;
  result.close_reason = reason.toString();
  result.message_types = [...messageTypes].sort();
  finish(result.errors.length ? 1 : 0);
});

ws.on("open", async () => {
  result.protocol = ws.protocol;
  result.extensions = ws.extensions;
  try {
    if (greetingLength > 0) {
      result.greeting = (await take(greetingLength)).toString("latin1");
    }
    for (const size of SIZES) {
      const payload = crypto.randomBytes(size);
      await send(ws, payload, true);
      const back = size ? await take(size) : Buffer.alloc(0);
      result.sizes.push([size, back.equals(payload)]);
    }
    const text = "text \u00e9\u00e8 \u20ac \ud83d\ude00 ".repeat(20);
    await send(ws, text, false);
    const textBytes = Buffer.from(text, "utf8");
    result.text_ok = (await take(textBytes.length)).equals(textBytes);

    const parts = [];
    for (let i = 0; i < 1000; i++) {
      parts.push(Buffer.from(`${String(i).padStart(4, "0")}:${"n".repeat(i % 37)};`));
    }
    const all = Buffer.concat(parts);
    await Promise.all(parts.map((p) => send(ws, p, true)));
    result.order_ok = (await take(all.length)).equals(all);
    ws.close(1000, "node done");
  } catch (e) {
    result.errors.push("step: " + e.message);
    ws.terminate();
  }
});
