#!/usr/bin/env node
// Load test for `whale serve`: N concurrent streaming chat clients for D seconds (each sends
// its next request as soon as the previous one ends), after a single-client baseline of the
// same length. Reports errors, time-to-first-token and inter-token latency (p50/p99), aggregate
// tokens/s (usage.completion_tokens of finished requests / wall time), the ratio to the single
// stream, and the server's RSS before, at peak and after (when it is spawned here or --pid given).
//
//   node bench/server_load.mjs --model M.gguf --template T.jinja [--clients 16] [--duration 60]
//        [--max-tokens 128] [--parallel 16] [--ctx 1024] [--threads 0] [--baseline-duration D]
//   node bench/server_load.mjs --url http://127.0.0.1:8080 [--pid PID] [...]
// Needs the npm packages of tests/server (npm ci --prefix tests/server).
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "tests", "server", "package.json"));
const { default: OpenAI } = await import(require.resolve("openai"));

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1] && !all[i + 1].startsWith("--") ? all[i + 1] : "true"]);
  return acc;
}, []));
const clients = Number(args.clients ?? 16);
const duration = Number(args.duration ?? 60);
const baselineDuration = Number(args["baseline-duration"] ?? Math.min(duration, 20));
const maxTokens = Number(args["max-tokens"] ?? 128);

let url = args.url, pid = args.pid ? Number(args.pid) : null, proc = null;
if (!url) {
  if (!args.model) { console.error("give --model (and --template) to start a server, or --url"); process.exit(2); }
  const bin = args.bin ?? path.join(here, "..", "build", "whale");
  const a = ["serve", "-m", args.model, "--port", "0", "-c", String(args.ctx ?? 1024),
             "--parallel", String(args.parallel ?? clients), "--queue", "256"];
  if (args.template) a.push("--template", args.template);
  if (args.threads) a.push("-t", String(args.threads));
  proc = spawn(bin, a, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  const port = await new Promise((resolve, reject) => {
    proc.stderr.on("data", (d) => { log += d; const m = log.match(/on http:\/\/[^:]+:(\d+)/); if (m) resolve(m[1]); });
    proc.on("exit", () => reject(new Error("server exited:\n" + log)));
  });
  proc.stderr.resume();
  url = `http://127.0.0.1:${port}`;
  pid = proc.pid;
}

const rssMiB = () => {
  if (!pid) return null;
  const m = fs.readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) / 1024 : null;
};

const client = new OpenAI({ baseURL: url + "/v1", apiKey: args["api-key"] ?? "none", maxRetries: 0, timeout: 600000 });
const prompts = ["Explain how whales sleep.", "Write a haiku about the sea.", "What is 17 * 23?", "Summarise the history of Rome.",
                 "Describe a mixture-of-experts model.", "Tell me a short story.", "List five prime numbers.", "Why is the sky blue?"];

async function run(n, seconds) {
  const stats = { ttft: [], itl: [], tokens: 0, requests: 0, errors: 0, errorSamples: [] };
  const t0 = performance.now(), end = t0 + seconds * 1000;
  let peak = rssMiB() ?? 0;
  const sampler = setInterval(() => { peak = Math.max(peak, rssMiB() ?? 0); }, 250);
  await Promise.all(Array.from({ length: n }, async (_, c) => {
    for (let k = 0; performance.now() < end; k++) {
      const start = performance.now();
      let last = null;
      try {
        const stream = await client.chat.completions.create({
          model: "whale", stream: true, stream_options: { include_usage: true }, max_tokens: maxTokens,
          temperature: 0.7, seed: c * 1000 + k, messages: [{ role: "user", content: prompts[(c + k) % prompts.length] }] });
        for await (const chunk of stream) {
          const d = chunk.choices[0]?.delta;
          if (d && (d.content || d.reasoning_content)) {
            const now = performance.now();
            if (last === null) stats.ttft.push(now - start); else stats.itl.push(now - last);
            last = now;
          }
          if (chunk.usage) stats.tokens += chunk.usage.completion_tokens;
        }
        stats.requests++;
      } catch (e) {
        stats.errors++;
        if (stats.errorSamples.length < 5) stats.errorSamples.push(String(e.message || e));
      }
    }
  }));
  clearInterval(sampler);
  stats.seconds = (performance.now() - t0) / 1000;
  stats.peakRss = peak;
  return stats;
}

const pct = (xs, p) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const report = (name, s) => {
  const tps = s.tokens / s.seconds;
  console.log(`${name}: ${s.requests} requests, ${s.errors} errors, ${s.tokens} tokens in ${s.seconds.toFixed(1)} s ` +
              `→ ${tps.toFixed(1)} tokens/s; TTFT p50 ${pct(s.ttft, 50).toFixed(1)} ms p99 ${pct(s.ttft, 99).toFixed(1)} ms; ` +
              `ITL p50 ${pct(s.itl, 50).toFixed(2)} ms p99 ${pct(s.itl, 99).toFixed(2)} ms; peak RSS ${s.peakRss.toFixed(1)} MiB`);
  for (const e of s.errorSamples) console.log("  error: " + e);
  return tps;
};

const rssBefore = rssMiB();
console.log(`server ${url}; clients ${clients}; duration ${duration} s; max_tokens ${maxTokens}; RSS before ${rssBefore?.toFixed(1)} MiB`);
const single = report("single stream", await run(1, baselineDuration));
const rssAfterSingle = rssMiB();
const multi = await run(clients, duration);
const agg = report(`${clients} streams`, multi);
const rssAfter = rssMiB();
console.log(`aggregate / single = ${(agg / single).toFixed(2)}x; RSS after baseline ${rssAfterSingle?.toFixed(1)} MiB, ` +
            `after load ${rssAfter?.toFixed(1)} MiB (growth ${(rssAfter - rssAfterSingle).toFixed(1)} MiB)`);
const metrics = await (await fetch(url + "/metrics")).text().catch(() => "");
console.log(metrics.split("\n").filter((l) => /^whale_(requests_active|requests_queued|kv_cache_usage_ratio|scheduler_tokens_generated_total) /.test(l)).join("; "));
if (proc) { proc.kill("SIGTERM"); await new Promise((r) => proc.on("exit", r)); }
process.exit(multi.errors > 0 ? 1 : 0);
