// The live run page: one WebSocket per run, replay after the last seq held, then stream.
// Every event is applied once: events at or below the last applied seq are dropped, so a
// reconnect (or a reload, which starts again from seq 0) never shows a gap or a duplicate.
(function () {
  "use strict";
  const page = JSON.parse(document.getElementById("run-page").textContent);
  const runId = page.run_id;
  const TERMINAL = ["succeeded", "failed", "verification_failed", "budget_exceeded", "cancelled"];
  let lastSeq = 0;
  let status = page.status;
  let socket = null;
  let retryMs = 250;
  // requests: model calls (maxModelCalls); iterations: passes of the loop, one per round (maxIterations).
  const totals = { in: 0, out: 0, cost: 0, costKnown: true, requests: 0, iterations: 0, started: null };
  const $ = (id) => document.getElementById(id);

  let graph = null;
  if (page.graph && window.LoopKitGraph && page.spec) {
    try {
      graph = window.LoopKitGraph.mount($("run-graph"), { spec: page.spec, readOnly: true });
    } catch (err) {
      console.warn("graph could not mount", err);
    }
  }

  function csrf() {
    const m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  async function api(method, path, body) {
    const res = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.message || res.statusText);
    return data;
  }

  function fmtCost(c) {
    return c === null || c === undefined ? "unknown" : "$" + Number(c).toFixed(4);
  }

  function setStatus(s) {
    status = s;
    const el = $("run-status");
    el.textContent = s.replace(/_/g, " ");
    el.dataset.status = s;
    el.className = "run-status status-" + s;
    const done = TERMINAL.includes(s);
    if ($("cancel-run")) $("cancel-run").hidden = done;
    if ($("rerun")) $("rerun").hidden = !done;
  }

  function stepRow(key, label) {
    let row = document.querySelector(`#step-list li[data-key="${CSS.escape(key)}"]`);
    if (!row && label) row = document.querySelector(`#step-list li[data-label="${CSS.escape(label)}"]`);
    return row;
  }

  // The row an event belongs to: its own step, else the closest enclosing one (a plan
  // step's executor steps have keys like "2.plan[1][0]" that the static list lacks),
  // else a row made for it at the end of the list.
  function ownerRow(key, label) {
    const own = stepRow(key || "", label);
    if (own) return own;
    let best = null;
    for (const row of document.querySelectorAll("#step-list li[data-key]")) {
      const k = row.dataset.key;
      if (key && key.startsWith(k) && /^[.[]/.test(key.slice(k.length)) && (!best || k.length > best.dataset.key.length)) best = row;
    }
    if (best) return best;
    const li = document.createElement("li");
    li.className = "step state-queued";
    li.dataset.key = key || "";
    li.dataset.state = "queued";
    li.innerHTML = `<span class="step-name"></span> <span class="step-state">queued</span> <span class="step-stats"></span>`;
    li.querySelector(".step-name").textContent = label || key || "step";
    $("step-list").appendChild(li);
    return li;
  }

  function fmtMs(ms) {
    const n = Number(ms) || 0;
    return n >= 1000 ? (n / 1000).toFixed(2) + " s" : Math.round(n) + " ms";
  }

  function fmtArgs(args) {
    try { return JSON.stringify(args || {}); } catch (err) { return String(args); }
  }

  function clip(text, n) {
    const s = String(text === null || text === undefined ? "" : text);
    return s.length > n ? s.slice(0, n - 1) + "…" : s;
  }

  // One tool call: shown under its step (name, redacted arguments, result summary, duration).
  function addToolCall(ev) {
    const p = ev.payload || {};
    const row = ownerRow(p.key, p.label);
    let list = row.querySelector(":scope > ul.tool-calls");
    if (!list) {
      list = document.createElement("ul");
      list.className = "tool-calls";
      row.appendChild(list);
    }
    const li = document.createElement("li");
    li.className = "tool-call" + (p.is_error ? " tool-error" : "");
    li.dataset.tool = p.name || "";
    li.dataset.seq = ev.seq;
    li.dataset.step = p.key || "";
    li.innerHTML = `<small class="tool-step"></small><code class="tool-name"></code><code class="tool-args"></code>` +
      ` → <span class="tool-result"></span> <small class="tool-duration"></small>`;
    // A call made inside a step the list does not show (a planned step) names it.
    if (row.dataset.key !== (p.key || "")) li.querySelector(".tool-step").textContent = (p.label || p.key) + " ›";
    li.querySelector(".tool-name").textContent = p.name || "?";
    li.querySelector(".tool-args").textContent = "(" + clip(fmtArgs(p.arguments), 300) + ")";
    li.querySelector(".tool-result").textContent = (p.is_error ? "error: " : "") + clip(p.result, 400);
    li.querySelector(".tool-result").title = String(p.result || "");
    li.querySelector(".tool-duration").textContent = fmtMs(p.duration_ms);
    list.appendChild(li);
  }

  // A plan step's planner chose the next steps (or finished): shown under the plan step.
  function addPlan(ev) {
    const p = ev.payload || {};
    const row = ownerRow(p.key, p.label);
    const box = document.createElement("div");
    box.className = "plan-made" + (p.limit_reached ? " plan-limit" : "");
    box.dataset.iteration = p.iteration;
    box.dataset.seq = ev.seq;
    const head = document.createElement("div");
    head.className = "plan-head";
    const n = (p.steps || []).length;
    head.textContent = `plan ${p.iteration}/${p.max_iterations}: ${n} step${n === 1 ? "" : "s"}` +
      (p.done ? " · planner finished" : "") + (p.limit_reached ? " · iteration limit reached" : "");
    box.appendChild(head);
    if (n) {
      const ol = document.createElement("ol");
      ol.className = "plan-steps";
      for (const s of p.steps) {
        const li = document.createElement("li");
        li.dataset.template = s.template || "";
        li.innerHTML = `<strong class="plan-template"></strong> <span class="plan-input"></span>`;
        li.querySelector(".plan-template").textContent = s.template || "?";
        li.querySelector(".plan-input").textContent = clip(typeof s.input === "string" ? s.input : fmtArgs(s.input), 300);
        li.title = s.label || "";
        ol.appendChild(li);
      }
      box.appendChild(ol);
    }
    if (p.reason) {
      const why = document.createElement("p");
      why.className = "plan-reason warn";
      why.textContent = p.reason;
      box.appendChild(why);
    }
    row.appendChild(box);
  }

  function setNode(e, state, stats) {
    const row = stepRow(e.key, e.label);
    if (row) {
      row.dataset.state = state;
      row.className = "step state-" + state;
      row.querySelector(".step-state").textContent = state;
      if (stats) {
        row.querySelector(".step-stats").textContent =
          `${stats.tokens_in}/${stats.tokens_out} tokens · ${fmtCost(stats.cost)} · ${Math.round(stats.duration_ms)} ms`;
      }
    }
    graphState(e.key, state, stats && {
      tokens: stats.tokens_in + stats.tokens_out,
      cost: stats.cost === null ? undefined : stats.cost,
      durationMs: stats.duration_ms,
    });
  }

  function graphState(key, state, stats) {
    if (!graph || !graph.setNodeState) return;
    try { graph.setNodeState(key, state, stats || undefined); } catch (err) { /* a node the graph lacks */ }
  }

  function showTotals() {
    $("tokens-in").textContent = totals.in;
    $("tokens-out").textContent = totals.out;
    $("cost").textContent = totals.costKnown ? fmtCost(totals.cost) : "unknown";
  }

  function showBudget(limits) {
    const body = document.querySelector("#budget tbody");
    body.innerHTML = "";
    const used = {
      maxTokens: totals.in + totals.out,
      maxCostUsd: totals.costKnown ? totals.cost : null,
      maxDurationMinutes: totals.started ? (Date.now() / 1000 - totals.started) / 60 : 0,
      maxIterations: totals.iterations,
      maxModelCalls: totals.requests,
    };
    for (const [name, limit] of Object.entries(limits || {})) {
      const u = used[name];
      const tr = document.createElement("tr");
      tr.dataset.limit = name;
      const shown = u === null || u === undefined ? "unknown" : (Math.round(u * 1000) / 1000);
      const pct = u && limit ? Math.min(100, Math.round((100 * u) / limit)) : 0;
      tr.innerHTML = `<th>${name}</th><td>${shown} / ${limit}</td><td><progress max="100" value="${pct}"></progress></td>`;
      body.appendChild(tr);
    }
  }
  let budgetLimits = null;

  function addRound(e) {
    const tr = document.createElement("tr");
    tr.dataset.round = e.round;
    tr.className = e.passed ? "pass" : "fail";
    const issues = (e.issues || []).map((i) => `<li>${escapeHtml(i)}</li>`).join("");
    tr.innerHTML = `<td>${e.round}/${e.max_rounds}</td><td>${escapeHtml(e.checker || "")}</td>` +
      `<td>${e.skipped ? "SKIPPED" : e.passed ? "PASS" : "FAIL"}</td><td>${e.score === null ? "?" : Number(e.score).toFixed(2)}</td>` +
      `<td><ul>${issues}</ul>${e.reason ? escapeHtml(e.reason) : ""}</td>`;
    document.querySelector("#rounds tbody").appendChild(tr);
  }

  // One output panel per agent step and round: step_output pieces are appended to it while
  // the model streams (a new model call of the step starts the text again), and the step's
  // step_finished replaces the text with the whole output.
  function outputBox(e) {
    const round = String(e.round || 1);
    let box = document.querySelector(
      `#outputs details[data-key="${CSS.escape(e.key)}"][data-round="${CSS.escape(round)}"]`);
    if (!box) {
      box = document.createElement("details");
      box.open = true;
      box.dataset.key = e.key;
      box.dataset.round = round;
      box.innerHTML = `<summary>${escapeHtml(e.label || e.key)} · round ${round}</summary><pre></pre>`;
      $("outputs").appendChild(box);
    }
    return box;
  }

  function streamOutput(e) {
    const box = outputBox(e);
    if (box.dataset.state === "done") return;
    const pre = box.querySelector("pre");
    if (box.dataset.call !== String(e.call)) {
      box.dataset.call = String(e.call);
      pre.textContent = "";
    }
    pre.textContent += e.text;
    box.dataset.state = "streaming";
    box.dataset.chars = String(e.chars);
  }

  function addOutput(e) {
    if (e.output === null || e.output === undefined) return;
    const box = outputBox(e);
    box.querySelector("pre").textContent = e.output;
    box.dataset.state = "done";
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  function summary(ev) {
    const p = ev.payload || {};
    switch (ev.type) {
      case "step_started": return `${p.label || p.key} started`;
      case "step_finished": return `${p.label || p.key} finished${p.resumed ? " (from checkpoint)" : ""}`;
      case "step_failed": return `${p.label || p.key} failed: ${p.error}`;
      case "step_output": return `${p.label || p.key} output +${(p.text || "").length} chars`;
      case "output_truncated": return `${p.label || p.key}: answer cut at ` +
        (p.limit ? `the output cap of ${p.limit} tokens` : "the model's own output limit") +
        (p.allowed ? " (allowed)" : "");
      case "verification_round": return p.skipped ? `round ${p.round}: skipped (no maker ran)` :
        `round ${p.round}: ${p.passed ? "PASS" : "FAIL"} (score ${p.score})`;
      case "run_finished": return `finished: ${p.status}${p.error ? " — " + p.error : ""}`;
      case "approval_requested": return `approval requested: ${p.question}`;
      case "approval_resolved": return `approval ${p.approved ? "approved" : "rejected"}${p.by ? " by " + p.by : ""}`;
      case "run_recovered": return `resumed on another worker (attempt ${p.attempt})`;
      case "tool_called": return `${p.label || p.key}: tool ${p.name}(${clip(fmtArgs(p.arguments), 120)})` +
        ` → ${p.is_error ? "error: " : ""}${clip(p.result, 120)} · ${fmtMs(p.duration_ms)}`;
      case "plan_made": return `${p.label || p.key}: plan ${p.iteration}/${p.max_iterations}` +
        (p.steps && p.steps.length ? ` → ${p.steps.map((s) => s.template).join(", ")}` : "") +
        (p.done ? " (done)" : "") + (p.limit_reached ? " (iteration limit reached)" : "");
      default: return ev.type;
    }
  }

  async function refreshApprovals() {
    const run = await api("GET", `/api/runs/${runId}`);
    const pending = run.approvals.filter((a) => a.status === "pending");
    const box = $("approval-list");
    box.innerHTML = "";
    $("approvals").hidden = pending.length === 0;
    for (const a of pending) {
      const div = document.createElement("div");
      div.className = "approval";
      div.dataset.approval = a.id;
      div.innerHTML = `<p><strong>${escapeHtml(a.step)}</strong>: ${escapeHtml(a.question)}</p>` +
        `<textarea placeholder="Comment" class="approval-comment"></textarea>` +
        `<button type="button" class="approve">Approve</button> <button type="button" class="reject">Reject</button>` +
        `<span class="approval-error error"></span>`;
      for (const verb of ["approve", "reject"]) {
        div.querySelector("." + verb).addEventListener("click", async () => {
          try {
            await api("POST", `/api/runs/${runId}/approvals/${a.id}/${verb}`, {
              comment: div.querySelector(".approval-comment").value,
            });
            div.remove();
            $("approvals").hidden = !$("approval-list").children.length;
          } catch (err) {
            div.querySelector(".approval-error").textContent = err.message;
          }
        });
      }
      box.appendChild(div);
    }
    return pending.length;
  }

  const models = new Set();

  function apply(ev) {
    const p = ev.payload || {};
    if (p.model && !models.has(p.model)) {
      models.add(p.model);
      $("models").textContent = Array.from(models).join(", ");
    }
    if (totals.started && p.at && !TERMINAL.includes(status)) {
      $("duration").textContent = (p.at - totals.started).toFixed(1) + " s";
    }
    const li = document.createElement("li");
    li.dataset.seq = ev.seq;
    li.dataset.type = ev.type;
    li.textContent = `#${ev.seq} ${summary(ev)}`;
    $("events").appendChild(li);
    switch (ev.type) {
      case "run_started":
        if (!TERMINAL.includes(status)) setStatus("running");
        totals.started = totals.started || p.at || Date.now() / 1000;
        budgetLimits = p.budget || budgetLimits;
        break;
      case "step_started":
        setNode(p, "running");
        totals.iterations = Math.max(totals.iterations, p.round || 1);
        break;
      case "step_finished": {
        const t = p.tokens || {};
        const stats = { tokens_in: t.input || 0, tokens_out: t.output || 0, cost: p.cost, duration_ms: p.duration_ms || 0 };
        setNode(p, "done", stats);
        if (p.kind === "agent" && !p.resumed) {
          totals.in += stats.tokens_in; totals.out += stats.tokens_out; totals.requests += 1;
          if (p.cost === null) totals.costKnown = false; else totals.cost += p.cost || 0;
        }
        if (p.kind === "agent") addOutput(p);
        break;
      }
      case "step_output":
        streamOutput(p);
        break;
      case "step_failed": {
        if (!p.will_retry) setNode(p, "failed");
        // A step that fails for good keeps the text it streamed, marked as cut short.
        const box = p.kind === "agent" && !p.will_retry &&
          document.querySelector(`#outputs details[data-key="${CSS.escape(p.key)}"][data-round="${CSS.escape(String(p.round || 1))}"]`);
        if (box && box.dataset.state === "streaming") box.dataset.state = "failed";
        break;
      }
      case "verification_round": {
        const t = p.tokens || {};
        totals.in += t.input || 0; totals.out += t.output || 0; totals.requests += 1;
        if (p.cost === null) totals.costKnown = false; else totals.cost += p.cost || 0;
        addRound(p);
        graphState("verify", p.passed ? "done" : (p.will_retry ? "running" : "failed"), {
          tokens: (t.input || 0) + (t.output || 0), cost: p.cost === null ? undefined : p.cost, durationMs: p.duration_ms,
        });
        break;
      }
      case "tool_called":
        addToolCall(ev);
        break;
      case "plan_made":
        addPlan(ev);
        break;
      case "budget_warning":
        $("budget-warnings").textContent = p.message;
        break;
      case "approval_requested":
        setStatus("waiting_for_approval");
        setNode(p, "running");
        pollApprovals(20);
        break;
      case "approval_resolved":
        if (!TERMINAL.includes(status)) setStatus("running");
        setNode(p, p.approved ? "done" : "failed");
        refreshApprovals().catch(() => {});
        break;
      case "run_finished": {
        const t = p.tokens || {};
        if (t.input !== undefined) { totals.in = t.input; totals.out = t.output; }
        if (p.requests !== undefined) totals.requests = p.requests;
        if (p.iterations !== undefined) totals.iterations = p.iterations;
        if ("cost" in p) { totals.costKnown = p.cost !== null && p.cost_known !== false; totals.cost = p.cost || 0; }
        setStatus(p.status);
        if (p.error) { $("run-error").textContent = p.error; $("run-error").hidden = false; }
        if (p.duration_ms !== undefined) $("duration").textContent = (p.duration_ms / 1000).toFixed(1) + " s";
        break;
      }
    }
    showTotals();
    if (budgetLimits) showBudget(budgetLimits);
  }

  // The approval row is written just after the event: look a few times.
  function pollApprovals(times) {
    refreshApprovals().then((n) => {
      if (!n && times > 0 && status === "waiting_for_approval") setTimeout(() => pollApprovals(times - 1), 250);
    }).catch(() => {});
  }

  function receive(msg) {
    if (msg.type !== "event") return;
    const ev = msg.event;
    if (ev.seq <= lastSeq) return; // already shown
    lastSeq = ev.seq;
    apply(ev);
  }

  function setLive(state) {
    const el = $("live-state");
    el.dataset.state = state;
    el.textContent = state;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/runs/${runId}/?after=${lastSeq}`);
    socket.onopen = () => { setLive("live"); retryMs = 250; };
    socket.onmessage = (m) => receive(JSON.parse(m.data));
    socket.onclose = (e) => {
      if (e.code === 4404 || e.code === 4401) { setLive("not allowed"); return; }
      setLive("reconnecting");
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 5000);
    };
  }

  if ($("cancel-run")) {
    $("cancel-run").addEventListener("click", () => api("POST", `/api/runs/${runId}/cancel`).catch((e) => alert(e.message)));
  }
  if ($("rerun")) {
    $("rerun").addEventListener("click", async () => {
      try {
        const run = await api("POST", `/api/runs/${runId}/rerun`);
        location.href = run.url;
      } catch (e) { alert(e.message); }
    });
  }
  window.LoopKitRun = { get lastSeq() { return lastSeq; }, get status() { return status; } };
  connect();
})();
