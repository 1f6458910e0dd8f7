// node bench.mjs TOKENIZER_DIR FILE [REPS] [IDS_OUT]: the reference JS tokenizer (@huggingface/tokenizers,
// resolved from the current folder's node_modules) on one file, printing one JSON line in the form
// `whale bench-tokenizer` prints: each rep builds a fresh Tokenizer (not timed) and encodes
// twice, "cold" then "warm" (its BPE cache filled); add_special_tokens false; MB = 10^6 bytes.
// IDS_OUT: also write the ids, comma-separated, as `whale tokenize` prints them.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const [dir, file, repsArg, idsOut] = process.argv.slice(2);
const reps = Number(repsArg ?? 5);
const require = createRequire(join(process.cwd(), "noop.js"));
const lib = await import(require.resolve("@huggingface/tokenizers"));  // the CommonJS build
const Tokenizer = lib.Tokenizer ?? lib.default.Tokenizer;

const json = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8"));
const config = JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8"));
const bytes = readFileSync(file);
const text = bytes.toString("utf8");

const median = (v) => {
  const s = [...v].sort((a, b) => a - b), n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const load = [], cold = [], warm = [];
let ids = [];
for (let r = 0; r < reps; r++) {
  let t0 = performance.now();
  const tok = new Tokenizer(json, config);
  load.push((performance.now() - t0) / 1e3);
  for (const times of [cold, warm]) {
    t0 = performance.now();
    ids = tok.encode(text, { add_special_tokens: false }).ids;
    times.push((performance.now() - t0) / 1e3);
  }
}
const mb = bytes.length / 1e6, r2 = (x) => Math.round(x * 100) / 100, r4 = (x) => Math.round(x * 1e4) / 1e4;
console.log(JSON.stringify({
  model: dir, bytes: bytes.length, tokens: ids.length, reps,
  cold_mb_s: r2(mb / median(cold)), warm_mb_s: r2(mb / median(warm)),
  cold_s: cold.map(r4), warm_s: warm.map(r4), load_s: r4(median(load)),
}));
if (idsOut) writeFileSync(idsOut, ids.join(",") + "\n");
