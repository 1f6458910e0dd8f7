#include "server/webui.h"

namespace whale::server {

namespace {
// Kept as a raw string so the binary needs no files at run time.
constexpr std::string_view kHtml = R"WHALE_HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>whale chat</title>
<style>
  :root { color-scheme: light dark; --fg: #1d2330; --bg: #f6f7f9; --card: #fff; --dim: #6b7280; --accent: #2563eb; }
  @media (prefers-color-scheme: dark) { :root { --fg: #e5e7eb; --bg: #111318; --card: #1b1e25; --dim: #9ca3af; } }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg);
         display: flex; flex-direction: column; height: 100vh; }
  header { padding: 10px 16px; display: flex; gap: 12px; align-items: center; border-bottom: 1px solid #8883; }
  header h1 { font-size: 16px; margin: 0; }
  header .model { color: var(--dim); font-size: 13px; }
  header input { margin-left: auto; width: 14em; }
  #log { flex: 1; overflow-y: auto; padding: 16px; display: flex; flex-direction: column; gap: 12px; }
  .msg { max-width: 860px; width: 100%; margin: 0 auto; background: var(--card); border-radius: 10px;
         padding: 10px 14px; box-shadow: 0 1px 2px #0002; white-space: pre-wrap; word-wrap: break-word; }
  .msg.user { border-left: 3px solid var(--accent); }
  .msg .role { font-size: 12px; color: var(--dim); margin-bottom: 4px; }
  details.reasoning { color: var(--dim); font-size: 14px; margin-bottom: 6px; border-left: 2px solid #8886; padding-left: 8px; }
  details.reasoning summary { cursor: pointer; }
  .error { color: #dc2626; }
  form { display: flex; gap: 8px; padding: 12px 16px; border-top: 1px solid #8883; max-width: 892px; width: 100%; margin: 0 auto; }
  textarea { flex: 1; resize: vertical; min-height: 44px; font: inherit; padding: 8px; border-radius: 8px; }
  button { font: inherit; padding: 0 18px; border-radius: 8px; border: 0; background: var(--accent); color: #fff; cursor: pointer; }
  button#stop { background: #dc2626; }
  button:disabled { opacity: .4; cursor: default; }
</style>
</head>
<body>
<header><h1>whale</h1><span class="model" id="model"></span>
  <input id="key" type="password" placeholder="API key (if --api-key)" autocomplete="off"></header>
<div id="log"></div>
<form id="form">
  <textarea id="input" placeholder="Message (Enter to send, Shift+Enter for a new line)"></textarea>
  <button id="send" type="submit">Send</button>
  <button id="stop" type="button" disabled>Stop</button>
</form>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const history = [];
let controller = null;
$("key").value = localStorage.getItem("whale-key") || "";
$("key").addEventListener("change", () => localStorage.setItem("whale-key", $("key").value));

function headers() {
  const h = { "Content-Type": "application/json" };
  if ($("key").value) h["Authorization"] = "Bearer " + $("key").value;
  return h;
}

fetch("/v1/models", { headers: headers() }).then((r) => r.json())
  .then((j) => { $("model").textContent = j.data && j.data[0] ? j.data[0].id : ""; }).catch(() => {});

function addMessage(role) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  const label = document.createElement("div");
  label.className = "role";
  label.textContent = role;
  div.appendChild(label);
  $("log").appendChild(div);
  return div;
}

function scroll() { $("log").scrollTop = $("log").scrollHeight; }

async function send(text) {
  history.push({ role: "user", content: text });
  addMessage("user").appendChild(document.createTextNode(text));
  const box = addMessage("assistant");
  const details = document.createElement("details");
  details.className = "reasoning";
  details.open = true;
  const summary = document.createElement("summary");
  summary.textContent = "Reasoning";
  const reasoningText = document.createElement("div");
  details.append(summary, reasoningText);
  const content = document.createElement("div");
  content.className = "content";
  box.append(details, content);
  details.hidden = true;

  let answer = "";
  controller = new AbortController();
  $("send").disabled = true;
  $("stop").disabled = false;
  try {
    const res = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(), signal: controller.signal,
      body: JSON.stringify({ model: $("model").textContent || "whale", messages: history, stream: true }),
    });
    if (!res.ok) {
      const j = await res.json().catch(() => ({}));
      throw new Error((j.error && j.error.message) || res.statusText);
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        const delta = chunk.choices && chunk.choices[0] ? chunk.choices[0].delta : null;
        if (!delta) continue;
        if (delta.reasoning_content) {
          details.hidden = false;
          reasoningText.textContent += delta.reasoning_content;
        }
        if (delta.content) {
          if (!answer) details.open = false;  // fold the reasoning once the answer starts
          answer += delta.content;
          content.textContent = answer;
        }
        scroll();
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") {
      const err = document.createElement("div");
      err.className = "error";
      err.textContent = "Error: " + e.message;
      box.appendChild(err);
    }
  } finally {
    controller = null;
    $("send").disabled = false;
    $("stop").disabled = true;
    history.push({ role: "assistant", content: answer });
    scroll();
  }
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("input").value.trim();
  if (!text || controller) return;
  $("input").value = "";
  send(text);
});
$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("form").requestSubmit(); }
});
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
</script>
</body>
</html>
)WHALE_HTML";
}  // namespace

std::string_view webui_html() { return kHtml; }

}  // namespace whale::server
