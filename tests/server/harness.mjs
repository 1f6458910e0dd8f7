// Starts `whale serve` on a free loopback port with a fixture model and stops it after the
// tests. Paths come from the environment (set by ctest) or default to this checkout's layout.
import { spawn, execFileSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, "..", "..");
export const WHALE_BIN = process.env.WHALE_BIN || path.join(ROOT, "build", "whale");
export const FIXTURES = process.env.WHALE_FIXTURES || path.join(ROOT, "..", "shared", "fixtures");
// DeepSeek-V3 layout with DeepSeek's vocabulary (<think> and </think> are special tokens), and
// R1's chat template, which ends the prompt inside <think>.
export const MODEL = path.join(FIXTURES, "models", "deepseek-v3-tiny", "model-q8_0.gguf");
export const TEMPLATE = path.join(FIXTURES, "templates", "deepseek-r1.jinja");

export async function startServer(extraArgs = [], { ctx = 512, parallel = 4 } = {}) {
  const args = ["serve", "-m", MODEL, "--template", TEMPLATE, "--port", "0", "-c", String(ctx),
                "--parallel", String(parallel), "-t", "1", ...extraArgs];
  const proc = spawn(WHALE_BIN, args, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("whale serve did not start:\n" + log)), 30000);
    proc.stderr.on("data", (d) => {
      log += d.toString();
      const m = log.match(/on http:\/\/[^:]+:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on("exit", (code) => { clearTimeout(timer); reject(new Error(`whale serve exited (${code}):\n${log}`)); });
  });
  proc.stderr.on("data", (d) => { log += d.toString(); });
  const base = `http://127.0.0.1:${port}`;
  return {
    proc, port, base,
    log: () => log,
    client: (opts = {}) => new OpenAI({ baseURL: base + "/v1", apiKey: "sk-none", maxRetries: 0, ...opts }),
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      const done = new Promise((r) => proc.on("exit", (code, sig) => r(code ?? sig)));
      proc.kill("SIGTERM");
      return done;
    },
  };
}

// Token count of the prompt the chat template makes of `messages` (with the generation
// prompt), computed by the CLI's own render + tokenize, independently of the server.
export function promptTokens(messages) {
  const fs = awaitImportFs();
  const dir = fs.mkdtempSync(path.join(process.env.TMPDIR || "/tmp", "whale-req-"));
  const req = path.join(dir, "req.json");
  fs.writeFileSync(req, JSON.stringify({ messages, add_generation_prompt: true }));
  const prompt = execFileSync(WHALE_BIN, ["render", "-m", MODEL, "--template", TEMPLATE, "--request", req]);
  const ids = execFileSync(WHALE_BIN, ["tokenize", "-m", MODEL, "--no-special"], { input: prompt }).toString().trim();
  fs.rmSync(dir, { recursive: true });
  return { text: prompt.toString(), ids: ids.split(",").map(Number) };
}

import * as fsModule from "node:fs";
function awaitImportFs() { return fsModule; }

// Splits raw generated text as R1 reasoning: everything before the first </think> is reasoning
// (generation starts inside <think>), the rest content; newlines right after a tag dropped.
export function splitReasoning(raw) {
  const at = raw.indexOf("</think>");
  const reasoning = (at < 0 ? raw : raw.slice(0, at)).replace(/^[\r\n]+/, "");
  const content = at < 0 ? "" : raw.slice(at + "</think>".length).replace(/^[\r\n]+/, "");
  return { reasoning, content };
}
