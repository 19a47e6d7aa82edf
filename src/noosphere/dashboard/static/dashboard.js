// noosphere dashboard: the overview's charts (uPlot) and the chat page's streamed answers.
"use strict";

function drawCharts(root) {
  for (const el of root.querySelectorAll(".chart[data-points]")) {
    const points = JSON.parse(el.dataset.points);
    const values = points[el.dataset.series] || [];
    el.textContent = "";
    if (!values.length) { el.textContent = "collecting… (a point every 10 s)"; continue; }
    const opts = {
      width: Math.max(280, el.clientWidth || 400), height: 150, legend: { show: false },
      series: [{}, { label: el.dataset.series, stroke: "#2f6fde", fill: "rgba(47,111,222,0.12)" }],
      axes: [{}, { size: 50 }],
    };
    new uPlot(opts, [points.at, values], el);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  drawCharts(document);
  document.body.addEventListener("htmx:afterSwap", (e) => drawCharts(e.target));
  document.body.addEventListener("htmx:sseMessage", (e) => drawCharts(e.target));
  const form = document.getElementById("chat");
  if (form) setUpChat(form);
});

function setUpChat(form) {
  const log = document.getElementById("chat-log");
  const input = document.getElementById("chat-input");
  const status = document.getElementById("chat-status");
  const messages = [];
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    messages.push({ role: "user", content: text });
    const mine = document.createElement("div"); mine.className = "turn user"; mine.textContent = "you: " + text; log.appendChild(mine);
    const answer = document.createElement("div"); answer.className = "turn assistant"; log.appendChild(answer);
    status.textContent = "thinking…";
    const response = await fetch("/ui/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": document.body.dataset.csrf || "" },
      body: JSON.stringify({ model: document.getElementById("chat-model").value, messages }),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      status.textContent = "error: " + ((body.error && body.error.message) || response.status);
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "", said = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffered.indexOf("\n\n")) >= 0) {
        const line = buffered.slice(0, cut); buffered = buffered.slice(cut + 2);
        if (!line.startsWith("data: ")) continue;
        const data = JSON.parse(line.slice(6));
        if (data.text) { said += data.text; answer.textContent = said; status.textContent = "streaming…"; }
        if (data.error) status.textContent = "error: " + data.error;
        if (data.done) status.textContent = data.completion_tokens + " tokens";
      }
    }
    messages.push({ role: "assistant", content: said });
  });
}
