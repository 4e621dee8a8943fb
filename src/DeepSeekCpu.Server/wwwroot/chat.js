// The chat page of `deepseek-cpu serve`: plain JavaScript, no build step, nothing loaded from elsewhere. It talks to
// the server's own OpenAI-compatible API: GET /v1/models for the model's name, POST /v1/chat/completions with
// "stream": true for the answer, read as server-sent events (data: {chunk}\n\n ... data: [DONE]).
"use strict";

const $ = (id) => document.getElementById(id);
const conversation = [];          // {role, content} of the conversation so far (reasoning is not sent back)
let running = null;          // the AbortController of the answer being streamed

const SETTINGS = ["system", "temperature", "top-p", "top-k", "min-p", "max-tokens", "seed", "thinking", "api-key"];

function loadSettings() {
  for (const id of SETTINGS) {
    const v = localStorage.getItem("deepseekcpu." + id);
    if (v !== null) $(id).value = v;
  }
}

function saveSettings() {
  for (const id of SETTINGS) localStorage.setItem("deepseekcpu." + id, $(id).value);
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function loadModel() {
  try {
    const res = await fetch("v1/models", { headers: headers() });
    const body = await res.json();
    $("model").textContent = res.ok ? body.data[0].id + " · " + body.data[0].context_length + " tokens of context" : body.error.message;
  } catch (e) {
    $("model").textContent = "server unreachable: " + e.message;
  }
}

/** The request body: the conversation and the sampling settings that are filled in. */
function requestBody() {
  const messages = [];
  const system = $("system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  messages.push(...conversation);
  const body = { messages, stream: true, stream_options: { include_usage: true } };
  const num = (id, name, parse) => { const v = $(id).value.trim(); if (v !== "") body[name] = parse(v); };
  num("temperature", "temperature", parseFloat);
  num("top-p", "top_p", parseFloat);
  num("top-k", "top_k", (v) => parseInt(v, 10));
  num("min-p", "min_p", parseFloat);
  num("max-tokens", "max_tokens", (v) => parseInt(v, 10));
  num("seed", "seed", (v) => parseInt(v, 10));
  if ($("thinking").value) body.chat_template_kwargs = { thinking: $("thinking").value === "true" };
  return body;
}

function addMessage(role) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.innerHTML = '<div class="role"></div>';
  div.querySelector(".role").textContent = role;
  $("messages").appendChild(div);
  return div;
}

function scrollDown() {
  const m = $("messages");
  m.scrollTop = m.scrollHeight;
}

/** Splits a growing text of server-sent events into complete events' data; returns the unfinished rest. */
function takeEvents(buffer, onData) {
  let end;
  while ((end = buffer.indexOf("\n\n")) >= 0) {
    const event = buffer.slice(0, end);
    buffer = buffer.slice(end + 2);
    for (const line of event.split("\n"))
      if (line.startsWith("data: ")) onData(line.slice(6));
  }
  return buffer;
}

async function send(text) {
  conversation.push({ role: "user", content: text });
  addMessage("user").insertAdjacentHTML("beforeend", '<div class="text"></div>');
  $("messages").lastChild.querySelector(".text").textContent = text;

  const msg = addMessage("assistant");
  msg.insertAdjacentHTML("beforeend",
    '<details class="reasoning" hidden open><summary>Reasoning</summary><pre></pre></details><div class="text answer"></div><div class="stats"></div>');
  const reasoningBlock = msg.querySelector(".reasoning"), reasoning = msg.querySelector(".reasoning pre");
  const answer = msg.querySelector(".answer"), stats = msg.querySelector(".stats");
  stats.textContent = "waiting…";
  scrollDown();

  running = new AbortController();
  $("send").disabled = true;
  $("stop").disabled = false;
  msg.dataset.state = "streaming";
  const start = performance.now();
  let first = 0, last = 0, chunks = 0, usage = null, finish = null, stopped = false;
  try {
    const res = await fetch("v1/chat/completions", {
      method: "POST", headers: headers(), body: JSON.stringify(requestBody()), signal: running.signal,
    });
    if (!res.ok) {
      const body = await res.json().catch(() => null);
      throw new Error(body?.error?.message ?? res.status + " " + res.statusText);
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer = takeEvents(buffer + decoder.decode(value, { stream: true }), (data) => {
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.usage) usage = chunk.usage;
        const choice = chunk.choices?.[0];
        if (!choice) return;
        const d = choice.delta ?? {};
        if (d.reasoning_content) {
          reasoningBlock.hidden = false;
          reasoning.textContent += d.reasoning_content;
        }
        if (d.content) {
          // the answer has begun: the reasoning folds away
          if (answer.textContent === "" && !reasoningBlock.hidden) reasoningBlock.open = false;
          answer.textContent += d.content;
        }
        if (d.content || d.reasoning_content) {
          chunks++;
          last = performance.now();
          if (!first) first = last;
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      });
      scrollDown();
    }
  } catch (e) {
    if (e.name === "AbortError") stopped = true;
    else {
      const err = document.createElement("div");
      err.className = "error";
      err.textContent = e.message;
      msg.appendChild(err);
    }
  } finally {
    running = null;
    $("send").disabled = false;
    $("stop").disabled = true;
  }
  // Tokens: the server's count when the stream got to its usage chunk, else the text pieces received (one per token
  // for most tokens); speed over the tokens after the first, as the CLI reports it.
  const tokens = usage?.completion_tokens ?? chunks;
  const seconds = (last - first) / 1000;
  const speed = tokens > 1 && seconds > 0 ? (tokens - 1) / seconds : 0;
  const parts = [tokens + " tokens"];
  if (first) parts.push(speed.toFixed(1) + " tokens/s", "first token after " + Math.round(first - start) + " ms");
  if (stopped) parts.push("stopped");
  else if (finish) parts.push("finish: " + finish);
  stats.textContent = parts.join(" · ");
  if (first) $("speed").textContent = speed.toFixed(1) + " tokens/s";
  msg.dataset.state = stopped ? "stopped" : "done";
  conversation.push({ role: "assistant", content: answer.textContent });
}

function submit() {
  const text = $("prompt").value.trim();
  if (!text || running) return;
  $("prompt").value = "";
  saveSettings();
  send(text);
}

document.addEventListener("DOMContentLoaded", () => {
  loadSettings();
  loadModel();
  $("composer").addEventListener("submit", (e) => { e.preventDefault(); submit(); });
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); submit(); }
  });
  $("stop").addEventListener("click", () => running?.abort());
  $("new-chat").addEventListener("click", () => {
    running?.abort();
    conversation.length = 0;
    $("messages").replaceChildren();
  });
  $("settings-toggle").addEventListener("click", () => {
    const s = $("settings");
    s.hidden = !s.hidden;
    $("settings-toggle").setAttribute("aria-expanded", String(!s.hidden));
  });
  $("settings").addEventListener("change", saveSettings);
  $("api-key").addEventListener("change", loadModel);
});
