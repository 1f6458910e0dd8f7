// The official openai client against `whale serve`: non-stream and stream chat, reasoning,
// usage, stop strings, seeds, concurrency (greedy: batched = sequential), text completions.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, promptTokens, splitReasoning, MODEL } from "./harness.mjs";

let srv, client;
// A per-step budget of 8 tokens (-b): every prompt here is prefilled in budget-sized chunks
// beside the other requests' decodes, so all the equalities below hold across that too.
const BATCH = 8;
before(async () => { srv = await startServer(["-b", String(BATCH)], { parallel: 4 }); client = srv.client(); });
after(async () => { assert.equal(await srv.stop(), 0, "server exits cleanly on SIGTERM"); });

const msgs = (text) => [{ role: "system", content: "You are terse." }, { role: "user", content: text }];

async function collect(stream) {
  const out = { reasoning: "", content: "", chunks: [], finish: null, usage: null, role: null };
  for await (const chunk of stream) {
    out.chunks.push(chunk);
    if (chunk.usage) out.usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    if (c.delta.role) out.role = c.delta.role;
    if (c.delta.reasoning_content) out.reasoning += c.delta.reasoning_content;
    if (c.delta.content) out.content += c.delta.content;
    if (c.finish_reason) out.finish = c.finish_reason;
  }
  return out;
}

// The raw text a greedy run produces for a chat, from /v1/completions on the same token ids.
async function rawGreedy(messages, max_tokens) {
  const { ids } = promptTokens(messages);
  const r = await client.completions.create({ model: "m", prompt: ids, max_tokens, temperature: 0 });
  return r.choices[0].text;
}

test("models, health and the metrics endpoint", async () => {
  const models = await client.models.list();
  assert.equal(models.data.length, 1);
  assert.equal(models.data[0].id, "model-q8_0.gguf");
  const h = await fetch(srv.base + "/health");
  assert.deepEqual(await h.json(), { status: "ok" });
  const m = await (await fetch(srv.base + "/metrics")).text();
  for (const name of ["whale_http_requests_total", "whale_requests_queued", "whale_requests_active",
                      "whale_decode_tokens_per_second", "whale_kv_cache_usage_ratio", "whale_completion_tokens_total",
                      "whale_scheduler_steps_total", "whale_scheduler_max_step_tokens"])
    assert.match(m, new RegExp("^" + name, "m"), name);
});

test("non-stream chat: reasoning_content split from content, usage counted", async () => {
  const messages = msgs("Why is the sky blue?");
  const r = await client.chat.completions.create({ model: "m", messages, max_tokens: 24, temperature: 0 });
  assert.equal(r.object, "chat.completion");
  const m = r.choices[0].message;
  assert.equal(m.role, "assistant");
  // R1's template opens <think>: the answer starts as reasoning.
  assert.ok(m.reasoning_content && m.reasoning_content.length > 0, "reasoning_content present");
  assert.ok(!m.content.includes("<think>") && !m.content.includes("</think>"));
  const expected = splitReasoning(await rawGreedy(messages, 24));
  assert.equal(m.reasoning_content, expected.reasoning);
  assert.equal(m.content, expected.content);
  const { ids } = promptTokens(messages);
  assert.equal(r.usage.prompt_tokens, ids.length);
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 24);
  if (r.choices[0].finish_reason === "length") assert.equal(r.usage.completion_tokens, 24);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test("</think> ends the reasoning: the rest is content, in the message and in stream deltas", async () => {
  // A prompt whose greedy continuation on this fixture emits </think> (token 509) mid-way.
  const messages = [{ role: "user", content: "Solve x+1=2" }];
  const raw = await rawGreedy(messages, 200);
  assert.ok(raw.includes("</think>"), "fixture continuation contains </think>");
  const expected = splitReasoning(raw);
  assert.ok(expected.reasoning.length > 0 && expected.content.length > 0);
  const r = await client.chat.completions.create({ model: "m", messages, max_tokens: 200, temperature: 0 });
  assert.equal(r.choices[0].message.reasoning_content, expected.reasoning);
  assert.equal(r.choices[0].message.content, expected.content);
  const s = await collect(await client.chat.completions.create({ model: "m", messages, max_tokens: 200, temperature: 0, stream: true }));
  assert.equal(s.reasoning, expected.reasoning);
  assert.equal(s.content, expected.content);
  // No delta carries both, and every reasoning delta comes before every content delta.
  let seenContent = false;
  for (const c of s.chunks) {
    const d = c.choices[0]?.delta || {};
    assert.ok(!(d.reasoning_content && d.content));
    if (d.content) seenContent = true;
    if (d.reasoning_content) assert.ok(!seenContent, "reasoning after content");
  }
});

test("stream chat equals non-stream; include_usage adds a final usage chunk; [DONE] ends it", async () => {
  const messages = msgs("Count to three.");
  const whole = await client.chat.completions.create({ model: "m", messages, max_tokens: 20, temperature: 0 });
  const s = await collect(await client.chat.completions.create({
    model: "m", messages, max_tokens: 20, temperature: 0, stream: true, stream_options: { include_usage: true } }));
  assert.equal(s.role, "assistant");
  assert.equal(s.reasoning, whole.choices[0].message.reasoning_content || "");
  assert.equal(s.content, whole.choices[0].message.content);
  assert.equal(s.finish, whole.choices[0].finish_reason);
  assert.deepEqual(s.usage.prompt_tokens, whole.usage.prompt_tokens);
  assert.deepEqual(s.usage.completion_tokens, whole.usage.completion_tokens);
  const last = s.chunks[s.chunks.length - 1];
  assert.deepEqual(last.choices, []);
  for (const c of s.chunks.slice(0, -1)) assert.equal(c.usage, null);
  for (const c of s.chunks) { assert.equal(c.object, "chat.completion.chunk"); assert.equal(c.id, s.chunks[0].id); }
  // The raw wire format: SSE events, last one data: [DONE].
  const res = await fetch(srv.base + "/v1/chat/completions", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ messages, max_tokens: 4, temperature: 0, stream: true }) });
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  const text = await res.text();
  assert.ok(text.endsWith("data: [DONE]\n\n"), "ends with [DONE]");
  for (const ev of text.trim().split("\n\n")) assert.match(ev, /^data: /);
});

test("max_tokens and max_completion_tokens bound the answer: finish_reason length", async () => {
  for (const key of ["max_tokens", "max_completion_tokens"]) {
    // A prompt whose greedy continuation does not end within 5 tokens.
    const r = await client.chat.completions.create({ model: "m", messages: msgs("Tell me a story."), [key]: 5, temperature: 0 });
    if (r.choices[0].finish_reason === "length") assert.equal(r.usage.completion_tokens, 5, key);
    else assert.ok(r.usage.completion_tokens < 5, key);
  }
});

test("stop strings cut the text before the match, streamed or not", async () => {
  const messages = msgs("Describe a whale.");
  const raw = await rawGreedy(messages, 40);
  const { reasoning } = splitReasoning(raw);
  assert.ok(reasoning.length > 12, "need some text to cut: " + JSON.stringify(raw));
  const chars = Array.from(reasoning);
  const stop = chars.slice(6, 9).join("");
  const before = raw.slice(0, raw.indexOf(stop));
  const expected = splitReasoning(before);
  const r = await client.chat.completions.create({ model: "m", messages, max_tokens: 40, temperature: 0, stop: [stop, "never-appears-xyz"] });
  assert.equal(r.choices[0].finish_reason, "stop");
  assert.equal(r.choices[0].message.reasoning_content || "", expected.reasoning);
  assert.ok(!(r.choices[0].message.reasoning_content || "").includes(stop));
  const s = await collect(await client.chat.completions.create({ model: "m", messages, max_tokens: 40, temperature: 0, stop, stream: true }));
  assert.equal(s.reasoning, expected.reasoning);
  assert.equal(s.finish, "stop");
  // Text completions too.
  const t = await client.completions.create({ model: "m", prompt: promptTokens(messages).ids, max_tokens: 40, temperature: 0, stop });
  assert.equal(t.choices[0].text, before);
  assert.equal(t.choices[0].finish_reason, "stop");
});

test("seed makes sampling reproducible; another seed differs", async () => {
  const req = { model: "m", messages: msgs("Pick a random word."), max_tokens: 24, temperature: 1.0, top_p: 1 };
  const a = await client.chat.completions.create({ ...req, seed: 1234 });
  const b = await client.chat.completions.create({ ...req, seed: 1234 });
  const text = (r) => (r.choices[0].message.reasoning_content || "") + "|" + r.choices[0].message.content;
  assert.equal(text(a), text(b));
  const others = await Promise.all([1, 2, 3].map((seed) => client.chat.completions.create({ ...req, seed })));
  assert.ok(others.some((o) => text(o) !== text(a)), "different seeds give different samples");
});

test("concurrent greedy requests give the same tokens as sequential ones", async () => {
  const prompts = ["alpha", "bravo charlie", "delta echo foxtrot", "golf", "hotel india", "juliet", "kilo lima", "mike"];
  const req = (p) => ({ model: "m", messages: msgs(p), max_tokens: 16, temperature: 0 });
  const text = (r) => JSON.stringify([r.choices[0].message.reasoning_content, r.choices[0].message.content, r.usage.completion_tokens]);
  const sequential = [];
  for (const p of prompts) sequential.push(text(await client.chat.completions.create(req(p))));
  const concurrent = await Promise.all(prompts.map(async (p) => text(await client.chat.completions.create(req(p)))));
  assert.deepEqual(concurrent, sequential);
  // And streamed concurrently.
  const streamed = await Promise.all(prompts.map(async (p) => {
    const s = await collect(await client.chat.completions.create({ ...req(p), stream: true, stream_options: { include_usage: true } }));
    return JSON.stringify([s.reasoning || undefined, s.content, s.usage.completion_tokens]);
  }));
  assert.deepEqual(streamed.map((x) => JSON.parse(x)), sequential.map((x) => JSON.parse(x)).map(([r, c, n]) => [r || undefined, c, n]));
});

test("multi-turn: assistant history accepted, prompt tokens match the template", async () => {
  const messages = [{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello!" }, { role: "user", content: "Again?" }];
  const r = await client.chat.completions.create({ model: "m", messages, max_tokens: 3, temperature: 0 });
  assert.equal(r.usage.prompt_tokens, promptTokens(messages).ids.length);
});

test("text completions: string prompt, stream with usage", async () => {
  const r = await client.completions.create({ model: "m", prompt: "Once upon a time", max_tokens: 8, temperature: 0 });
  assert.equal(r.object, "text_completion");
  assert.equal(r.usage.completion_tokens + r.usage.prompt_tokens, r.usage.total_tokens);
  const stream = await client.completions.create({ model: "m", prompt: "Once upon a time", max_tokens: 8, temperature: 0,
                                                   stream: true, stream_options: { include_usage: true } });
  let text = "", usage = null, finish = null;
  for await (const c of stream) {
    if (c.usage) usage = c.usage;
    if (c.choices[0]) { text += c.choices[0].text; finish = c.choices[0].finish_reason || finish; }
  }
  assert.equal(text, r.choices[0].text);
  assert.equal(finish, r.choices[0].finish_reason);
  assert.deepEqual(usage.completion_tokens, r.usage.completion_tokens);
});

test("a prompt longer than the context is a 400 context_length_exceeded", async () => {
  const long = "word ".repeat(2000);
  await assert.rejects(client.chat.completions.create({ model: "m", messages: msgs(long), max_tokens: 4 }),
    (e) => e.status === 400 && e.code === "context_length_exceeded");
});

test("the server logs one line per request", () => {
  const lines = srv.log().split("\n").filter((l) => /^whale serve: \S+ (GET|POST) /.test(l));
  assert.ok(lines.length >= 20, `got ${lines.length} request lines`);
  assert.ok(lines.some((l) => /POST \/v1\/chat\/completions 200 .* ms prompt=\d+ cached=\d+ completion=\d+ finish=/.test(l)));
});

test("no scheduler step computed more tokens than --batch-size", async () => {
  const m = await (await fetch(srv.base + "/metrics")).text();
  const max = Number(m.match(/^whale_scheduler_max_step_tokens (\d+)$/m)[1]);
  assert.ok(max > 0 && max <= BATCH, `max step tokens ${max}`);
  assert.equal(max, BATCH, "the long prompts filled whole steps");
});
