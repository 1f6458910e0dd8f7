// Abuse while a normal stream runs: every bad input gets an OpenAI-style JSON error with the
// right 4xx status, slow clients are cut off, and the normal stream completes exactly as it
// would alone. Also: Bearer auth, client disconnects.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { startServer } from "./harness.mjs";

const TIMEOUT_S = 2;
const MAX_BODY = 1 << 20;
let srv;
before(async () => {
  srv = await startServer(["--timeout", String(TIMEOUT_S), "--max-body", String(MAX_BODY)], { ctx: 4096, parallel: 4 });
});
after(async () => { assert.equal(await srv.stop(), 0); });

// Sends raw bytes (optionally trickled) and returns {status, head, body, ms: until the answer}.
function raw(bytes, { trickleMs = 0, stallAfter = null } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const sock = net.connect(srv.port, "127.0.0.1");
    let data = Buffer.alloc(0), firstData = 0;
    const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, "latin1");
    sock.on("data", (d) => { firstData ||= Date.now(); data = Buffer.concat([data, d]); });
    const finish = () => {
      const text = data.toString("utf8");
      const m = text.match(/^HTTP\/1\.1 (\d+)/);
      const bodyAt = text.indexOf("\r\n\r\n");
      resolve({ status: m ? Number(m[1]) : 0, head: text.slice(0, bodyAt), body: bodyAt >= 0 ? text.slice(bodyAt + 4) : "", ms: (firstData || Date.now()) - t0 });
    };
    sock.on("close", finish);
    sock.on("error", () => {});
    sock.on("connect", async () => {
      const limit = stallAfter ?? buf.length;
      if (!trickleMs) { sock.write(buf.subarray(0, limit)); }
      // Trickle until the server answers (reading it before sending more, so the answer is
      // not lost to the reset that writing into a closed connection causes).
      else for (let i = 0; i < limit && !sock.destroyed && data.length === 0; i++) {
        sock.write(buf.subarray(i, i + 1));
        await new Promise((r) => setTimeout(r, trickleMs));
      }
      if (stallAfter === null && !trickleMs) sock.end();
    });
  });
}

const post = (path, body, headers = {}) =>
  fetch(srv.base + path, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body });

async function expectError(resPromise, status, { param, code } = {}) {
  const res = await resPromise;
  assert.equal(res.status, status);
  const j = await res.json();
  assert.equal(typeof j.error.message, "string");
  assert.equal(typeof j.error.type, "string");
  assert.ok("param" in j.error && "code" in j.error);
  if (param !== undefined) assert.equal(j.error.param, param);
  if (code !== undefined) assert.equal(j.error.code, code);
  return j;
}

const good = { model: "m", messages: [{ role: "user", content: "Tell me everything." }], temperature: 0 };

test("bad inputs get 4xx JSON errors while a normal stream completes unharmed", async () => {
  const client = srv.client();
  // The reference: the same greedy request, alone, before any abuse.
  const alone = await client.chat.completions.create({ ...good, max_tokens: 1500 });
  const ref = (alone.choices[0].message.reasoning_content || "") + "|" + alone.choices[0].message.content;

  let streamEnd = 0, firstHostileEnd = Infinity;
  const streamDone = (async () => {
    const stream = await client.chat.completions.create({ ...good, max_tokens: 1500, stream: true });
    let r = "", c = "", chunks = 0;
    for await (const ch of stream) {
      chunks++;
      r += ch.choices[0]?.delta?.reasoning_content || "";
      c += ch.choices[0]?.delta?.content || "";
      if (chunks % 20 === 0) await new Promise((res) => setTimeout(res, 5));  // a slowish reader
    }
    streamEnd = Date.now();
    return r + "|" + c;
  })();

  const hostile = [
    expectError(post("/v1/chat/completions", "{not json"), 400, { code: "invalid_json" }),
    expectError(post("/v1/chat/completions", ""), 400, { code: "invalid_json" }),
    expectError(post("/v1/chat/completions", "[]"), 400),
    expectError(post("/v1/chat/completions", JSON.stringify({ ...good, temperature: "hot" })), 400, { param: "temperature" }),
    expectError(post("/v1/chat/completions", JSON.stringify({ ...good, max_tokens: -3 })), 400, { param: "max_tokens" }),
    expectError(post("/v1/chat/completions", JSON.stringify({ ...good, messages: "hi" })), 400, { param: "messages" }),
    expectError(post("/v1/chat/completions", JSON.stringify({ ...good, messages: [] })), 400, { param: "messages" }),
    expectError(post("/v1/chat/completions", JSON.stringify({ ...good, messages: [{ role: "user" }] })), 400, { param: "messages[0].content" }),
    expectError(post("/v1/chat/completions", JSON.stringify({ ...good, n: 3 })), 400, { param: "n" }),
    expectError(post("/v1/chat/completions", Buffer.from('{"messages":[{"role":"user","content":"\xff\xfe bad"}]}', "latin1")), 400, { code: "invalid_json" }),
    expectError(post("/v1/chat/completions", JSON.stringify({ ...good, messages: [{ role: "user", content: "x ".repeat(5000) }] })), 400, { code: "context_length_exceeded" }),
    expectError(post("/v1/completions", JSON.stringify({ prompt: [1, 2, 99999] })), 400, { param: "prompt" }),
    expectError(post("/v1/chat/completions", "x".repeat(MAX_BODY + 10)), 413),
    expectError(post("/v1/nothing-here", "{}"), 404),
    expectError(fetch(srv.base + "/v1/chat/completions"), 404),
    // Unknown fields are ignored: this one succeeds.
    (async () => {
      const res = await post("/v1/chat/completions", JSON.stringify({ ...good, max_tokens: 2, foo: { bar: [1] }, logit_bias: {} }));
      assert.equal(res.status, 200);
    })(),
    // A chunked body past the limit (no Content-Length to check up front).
    (async () => {
      const chunk = "x".repeat(64 * 1024);
      let req = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
      for (let i = 0; i < 20; i++) req += chunk.length.toString(16) + "\r\n" + chunk + "\r\n";
      req += "0\r\n\r\n";
      const r = await raw(req);
      assert.equal(r.status, 413);
      assert.equal(JSON.parse(r.body).error.code, "request_too_large");
    })(),
    // A form upload instead of JSON.
    (async () => {
      const form = new FormData();
      form.append("messages", "hi");
      const res = await fetch(srv.base + "/v1/chat/completions", { method: "POST", body: form });
      assert.equal(res.status, 415);
      assert.equal((await res.json()).error.code, "unsupported_media_type");
    })(),
    // Endless headers (httplib itself bounds neither their number nor a line without an end).
    ...["X-Flood: yes\r\n".repeat(150000), "X-Long: " + "a".repeat(2 << 20)].map((flood) => (async () => {
      const r = await raw("GET /health HTTP/1.1\r\nHost: x\r\n" + flood + "\r\n\r\n");
      assert.equal(r.status, 431);
      assert.equal(JSON.parse(r.body).error.code, "request_too_large");
    })()),
    // A garbage request line.
    (async () => {
      const r = await raw("\x00\x01\x02 garbage\r\n\r\n");
      assert.equal(r.status, 400);
      assert.ok(JSON.parse(r.body).error);
    })(),
    // A URI longer than the limit.
    (async () => {
      const r = await raw("GET /" + "a".repeat(10000) + " HTTP/1.1\r\nHost: x\r\n\r\n");
      assert.equal(r.status, 414);
    })(),
    // Slow-loris: headers trickled forever → 408 after --timeout, connection closed.
    ...Array.from({ length: 12 }, () => (async () => {
      const r = await raw("GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + "a".repeat(200) + "\r\n\r\n", { trickleMs: 150 });
      assert.equal(r.status, 408);
      assert.equal(JSON.parse(r.body).error.code, "request_timeout");
      // Answered at the deadline (with slack for a loaded machine), not at the end of the trickle (30 s).
      assert.ok(r.ms >= TIMEOUT_S * 1000 - 50 && r.ms < (TIMEOUT_S + 3) * 1000, `cut after ${r.ms} ms`);
    })()),
    // A body that stalls half-way → 408.
    (async () => {
      const body = JSON.stringify(good);
      const req = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
      const r = await raw(req, { stallAfter: req.length - 10 });
      assert.equal(r.status, 408);
    })(),
    // A client that disconnects mid-stream: the server cancels its generation.
    (async () => {
      const ac = new AbortController();
      const stream = await client.chat.completions.create({ ...good, max_tokens: 3000, stream: true }, { signal: ac.signal });
      let n = 0;
      try { for await (const _ of stream) if (++n === 5) ac.abort(); } catch (e) { assert.equal(e.name, "APIUserAbortError"); }
    })(),
  ];
  for (const h of hostile) h.then(() => { firstHostileEnd = Math.min(firstHostileEnd, Date.now()); }, () => {});
  const results = await Promise.allSettled(hostile);
  results.forEach((r, i) => assert.equal(r.status, "fulfilled", `hostile case ${i}: ${r.reason?.stack || r.reason}`));
  assert.equal(await streamDone, ref, "the normal stream is exactly what it is alone");
  assert.ok(streamEnd > firstHostileEnd, "the abuse happened while the stream ran");

  const health = await fetch(srv.base + "/health");
  assert.equal(health.status, 200);
  // Cancelled and finished requests all released their slots.
  let metrics = "";
  for (let i = 0; i < 50; i++) {
    metrics = await (await fetch(srv.base + "/metrics")).text();
    if (/^whale_requests_active 0$/m.test(metrics)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.match(metrics, /^whale_requests_active 0$/m);
  assert.match(metrics, /^whale_requests_queued 0$/m);
  assert.match(metrics, /whale_http_requests_total\{endpoint="\/v1\/chat\/completions",status="400"\} \d+/);
  assert.match(metrics, /whale_http_requests_total\{endpoint="other",status="408"\} 13/);  // 12 slow-loris + 1 stalled body
  assert.match(metrics, /whale_http_requests_total\{endpoint="other",status="431"\} 2/);
  assert.match(srv.log(), / - - 408 \(request too slow\)/);
});

test("--api-key: 401 without or with a wrong Bearer token, 200 with it; /health stays open", async () => {
  const keyed = await startServer(["--api-key", "s3cret"]);
  try {
    const req = JSON.stringify({ ...good, max_tokens: 2 });
    const h = (v) => ({ "Content-Type": "application/json", ...(v ? { Authorization: v } : {}) });
    for (const auth of [null, "Bearer wrong", "s3cret", "Basic s3cret"]) {
      const res = await fetch(keyed.base + "/v1/chat/completions", { method: "POST", headers: h(auth), body: req });
      assert.equal(res.status, 401, String(auth));
      assert.equal((await res.json()).error.code, "invalid_api_key");
    }
    assert.equal((await fetch(keyed.base + "/v1/models")).status, 401);
    assert.equal((await fetch(keyed.base + "/metrics")).status, 401);
    assert.equal((await fetch(keyed.base + "/health")).status, 200);
    const ok = await fetch(keyed.base + "/v1/chat/completions", { method: "POST", headers: h("Bearer s3cret"), body: req });
    assert.equal(ok.status, 200);
    // The official client sends the key as a Bearer token.
    const r = await keyed.client({ apiKey: "s3cret" }).chat.completions.create({ ...good, max_tokens: 2 });
    assert.equal(r.object, "chat.completion");
    await assert.rejects(keyed.client({ apiKey: "nope" }).models.list(), (e) => e.status === 401);
  } finally {
    assert.equal(await keyed.stop(), 0);
  }
});
