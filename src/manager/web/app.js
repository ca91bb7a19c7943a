// The Xylem dashboard: reads the manager's event stream (/events), where
// each event carries the run's sums and the task starts and ends since
// the last one; the browser resumes it after a reconnection with the
// last event's id (EventSource does so itself). Nothing is loaded from
// anywhere but the manager.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const STATES = ["waiting", "ready", "running", "succeeded", "failed"];
  const RESULTS = ["success", "application failed", "worker failed",
    "resources exhausted", "input missing", "cancelled", "manager failed",
    "unschedulable"];
  const WINDOW = 60; // seconds of task stream shown
  const MAX_BARS = 5000; // task stream bars kept
  let tags = [], up = 0, upAt = 0;
  const running = new Map(); // task id -> {worker, tag, start, slot}
  let bars = []; // finished: {worker, slot, start, end, result}
  const slots = new Map(); // worker -> array of busy flags
  const fails = new Map();
  let lost = 0;

  function fmtBytes(b) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i ? b.toFixed(1) : b) + " " + u[i];
  }
  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function fill(id, rows, fn) {
    const tb = $(id).tBodies[0];
    const frag = document.createDocumentFragment();
    for (const r of rows) {
      const tr = document.createElement("tr");
      fn(tr, r);
      frag.appendChild(tr);
    }
    tb.replaceChildren(frag);
  }
  function now() { return up + (performance.now() - upAt) / 1000; }

  function slotOf(worker) {
    let s = slots.get(worker);
    if (!s) { s = []; slots.set(worker, s); }
    let i = s.indexOf(false);
    if (i < 0) { i = s.length; s.push(true); } else s[i] = true;
    return i;
  }
  function freeSlot(worker, i) {
    const s = slots.get(worker);
    if (s && i < s.length) s[i] = false;
  }
  function start(id, worker, tag, t) {
    if (running.has(id)) return; // a snapshot and an event both said it
    running.set(id, {worker, tag, start: t, slot: slotOf(worker)});
  }
  function end(id, t, result) {
    const r = running.get(id);
    if (!r) return;
    running.delete(id);
    freeSlot(r.worker, r.slot);
    bars.push({worker: r.worker, slot: r.slot, start: r.start, end: t, result});
    if (bars.length > MAX_BARS) bars = bars.slice(-MAX_BARS / 2);
  }

  function apply(doc) {
    up = doc.up; upAt = performance.now();
    $("name").textContent = doc.name;
    if (doc.full) {
      running.clear(); slots.clear();
      for (const [id, w, tag, t] of doc.running || []) start(id, w, tag, t);
    }
    for (const [kind, id, w, tag, t, result] of doc.ev) {
      if (kind === "s") start(id, w, tag, t); else end(id, t, result);
    }
    lost += doc.lost;
    tags = doc.tags;
    for (const f of doc.fails) fails.set(f.id + ":" + f.attempt, f);
    while (fails.size > 100) fails.delete(fails.keys().next().value);
    render(doc);
  }

  function render(doc) {
    const sum = [0, 0, 0, 0, 0];
    for (const t of tags) for (let k = 0; k < 5; k++) sum[k] += t[k + 1];
    // An array's indexes not made yet wait, in no tag.
    sum[0] += (doc.counts && doc.counts.pending) || 0;
    const total = sum.reduce((a, b) => a + b, 0);
    STATES.forEach((s, k) => { $("n-" + s).textContent = sum[k]; });
    $("n-total").textContent = total;
    const bar = $("bar");
    bar.replaceChildren(...STATES.map((s, k) => {
      const d = document.createElement("div");
      d.className = s;
      d.style.width = (total ? 100 * sum[k] / total : 0) + "%";
      d.title = s + ": " + sum[k];
      return d;
    }));
    fill("tags", tags, (tr, t) => {
      cell(tr, t[0]);
      for (let k = 1; k <= 5; k++) cell(tr, t[k], "num");
      const n = t[1] + t[2] + t[3] + t[4] + t[5];
      const td = cell(tr, "");
      const m = document.createElement("div");
      m.className = "mini";
      for (let k = 1; k <= 5; k++) {
        const d = document.createElement("div");
        d.className = STATES[k - 1];
        d.style.width = (n ? 100 * t[k] / n : 0) + "%";
        m.appendChild(d);
      }
      td.appendChild(m);
    });
    const W = doc.workers;
    $("n-workers").textContent = W.n + " connected" +
      (W.n > W.list.length ? ", " + W.list.length + " shown" : "");
    fill("workers", W.list, (tr, w) => {
      cell(tr, w[0]); cell(tr, w[1]);
      cell(tr, w[3] + " / " + w[2], "num");
      cell(tr, w[5] + " / " + w[4], "num");
      cell(tr, w[7] + " / " + w[6], "num");
      cell(tr, w[8], "num"); cell(tr, fmtBytes(w[12] || 0), "num");
      cell(tr, w[9], "num"); cell(tr, w[10], "num");
    });
    const X = doc.xfer;
    fill("kinds", Object.entries(X.kinds), (tr, [k, v]) => {
      cell(tr, k); cell(tr, fmtBytes(v[0]), "num");
      cell(tr, v[1], "num"); cell(tr, v[2], "num");
    });
    $("hits").textContent = X.hits; $("misses").textContent = X.misses;
    $("hit-rate").textContent = X.hits + X.misses ?
      (100 * X.hits / (X.hits + X.misses)).toFixed(1) + "%" : "-";
    $("active").textContent = X.active;
    fill("sources", X.sources.slice().sort((a, b) => b[2] - a[2]), (tr, s) => {
      cell(tr, s[0]); cell(tr, s[1]); cell(tr, fmtBytes(s[2]), "num");
      cell(tr, s[3], "num");
    });
    fill("chains", X.chains, (tr, c) => {
      cell(tr, c[0]); cell(tr, fmtBytes(c[1]), "num"); cell(tr, c[2], "num");
    });
    $("n-fails").textContent = doc.nfails + " in all" +
      (doc.nfails > fails.size ? ", the last " + fails.size + " shown" : "");
    fill("fails", Array.from(fails.values()).reverse(), (tr, f) => {
      cell(tr, f.id); cell(tr, tags[f.tag] ? tags[f.tag][0] : "");
      cell(tr, f.worker); cell(tr, RESULTS[f.result] || f.result);
      cell(tr, f.error || "");
      const pre = document.createElement("pre");
      pre.textContent = f.output || "";
      cell(tr, "").appendChild(pre);
    });
    $("stream-note").textContent = lost ?
      lost + " starts and ends not drawn (too many at once)" : "";
  }

  function draw() {
    const c = $("stream");
    const w = c.clientWidth || 900, h = c.clientHeight || 200;
    if (c.width !== w) c.width = w;
    if (c.height !== h) c.height = h;
    const g = c.getContext("2d");
    g.clearRect(0, 0, w, h);
    const rows = [];
    for (const [worker, s] of slots) for (let i = 0; i < s.length; i++)
      rows.push(worker + "/" + i);
    rows.sort();
    const index = new Map(rows.map((r, i) => [r, i]));
    const rh = rows.length ? Math.max(1, Math.min(16, h / rows.length)) : 16;
    const t1 = now(), t0 = t1 - WINDOW, x = (t) => (t - t0) / WINDOW * w;
    let drawn = 0;
    const colors = {ok: "#4b6", bad: "#e44", run: "#39f", lost: "#aaa"};
    const bar = (row, a, b, col) => {
      const i = index.get(row);
      if (i === undefined || b < t0) return;
      g.fillStyle = col;
      drawn++;
      g.fillRect(x(Math.max(a, t0)), i * rh, Math.max(1, x(b) - x(Math.max(a, t0))), rh - 1);
    };
    for (const b of bars) bar(b.worker + "/" + b.slot, b.start, b.end,
      b.result === 0 ? colors.ok : b.result < 0 ? colors.lost : colors.bad);
    for (const r of running.values()) bar(r.worker + "/" + r.slot, r.start, t1, colors.run);
    // What was drawn, for scripts and tests (a canvas has no text).
    c.dataset.rows = rows.length; c.dataset.bars = drawn;
    requestAnimationFrame(draw);
  }

  function connect() {
    const es = new EventSource("/events");
    const on = (e) => {
      $("conn").textContent = "live"; $("conn").className = "on";
      apply(JSON.parse(e.data));
      document.body.dataset.lastEvent = e.lastEventId;
    };
    es.addEventListener("snapshot", on);
    es.addEventListener("update", on);
    es.onerror = () => { $("conn").textContent = "reconnecting"; $("conn").className = "off"; };
  }
  connect();
  requestAnimationFrame(draw);
})();
