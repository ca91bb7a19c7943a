/* report.js: draws the page that `xylem report` writes (report.c) from the
 * JSON in <script id="data">: summary numbers, charts as inline SVG, and
 * tables. Built into the xylem binary (scripts/embed.py); it loads nothing
 * and refers to no address. */
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("data").textContent);
  var NS = "http://www.w3.org/2000/svg";
  var COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
  var root = document.getElementById("report");
  root.textContent = "";

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function sv(tag, attrs, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function add(parent, child) { parent.appendChild(child); return child; }
  function fmt(x) {
    if (x === undefined || x === null) return "-";
    if (Math.abs(x) >= 100 || x === Math.round(x)) return String(Math.round(x));
    return x.toPrecision(3);
  }
  function bytes(b) {
    var u = ["B", "KB", "MB", "GB", "TB"], i = 0;
    while (b >= 1000 && i < 4) { b /= 1000; i++; }
    return (i ? b.toFixed(1) : String(Math.round(b))) + " " + u[i];
  }
  function secs(s) {
    if (s < 1) return (s * 1000).toFixed(1) + " ms";
    if (s < 120) return s.toFixed(2) + " s";
    return (s / 60).toFixed(1) + " min";
  }
  function section(title) {
    add(root, el("h2", {}, title));
    return add(root, el("div"));
  }
  function legend(parent, names) {
    var d = add(parent, el("div", {"class": "legend"}));
    names.forEach(function (n, i) {
      var s = add(d, el("span"));
      add(s, el("i", {style: "background:" + COLORS[i % COLORS.length]}));
      add(s, document.createTextNode(n));
    });
  }
  function table(parent, head, rows, cls) {
    var t = add(parent, el("table", cls ? {id: cls} : {}));
    var tr = add(t, el("tr"));
    head.forEach(function (h) { add(tr, el("th", {}, h)); });
    rows.forEach(function (r) {
      var row = add(t, el("tr"));
      r.forEach(function (c) {
        if (c && c.pre !== undefined) add(add(row, el("td")), el("pre", {}, c.pre));
        else add(row, el("td", typeof c === "number" ? {"class": "n"} : {},
                         typeof c === "number" ? fmt(c) : c));
      });
    });
    return t;
  }

  /* Line or stacked-area chart of series over the run's time bins. */
  function chart(parent, series, opts) {
    var W = 1000, H = opts.height || 200, L = 50, B = 22, n = D.bins;
    var svg = add(parent, sv("svg", {viewBox: "0 0 " + W + " " + H,
                                     width: "100%", role: "img"}));
    var acc = [], max = 0, i, k;
    for (i = 0; i < n; i++) acc.push(0);
    var tops = series.map(function (s) {
      return s.values.map(function (v, j) {
        var base = opts.stack ? acc[j] : 0, top = base + (v || 0);
        if (opts.stack) acc[j] = top;
        if (top > max) max = top;
        return [base, top];
      });
    });
    if (max <= 0) max = 1;
    var x = function (j) { return L + (W - L - 5) * j / n; };
    var y = function (v) { return H - B - (H - B - 8) * v / max; };
    add(svg, sv("line", {x1: L, x2: W - 5, y1: H - B, y2: H - B, stroke: "#999"}));
    add(svg, sv("line", {x1: L, x2: L, y1: 8, y2: H - B, stroke: "#999"}));
    add(svg, sv("text", {x: L - 4, y: 14, "text-anchor": "end"}, fmt(max)));
    add(svg, sv("text", {x: L - 4, y: H - B, "text-anchor": "end"}, "0"));
    var span = D.t1 - D.t0;
    for (k = 0; k <= 4; k++)
      add(svg, sv("text", {x: x(n * k / 4), y: H - 6, "text-anchor": "middle"},
                  secs(span * k / 4)));
    tops.forEach(function (t, si) {
      var c = COLORS[si % COLORS.length], d = "", j;
      if (opts.stack) {
        for (j = 0; j < n; j++) d += (j ? "L" : "M") + x(j) + "," + y(t[j][1]) +
          "L" + x(j + 1) + "," + y(t[j][1]);
        for (j = n - 1; j >= 0; j--) d += "L" + x(j + 1) + "," + y(t[j][0]) +
          "L" + x(j) + "," + y(t[j][0]);
        add(svg, sv("path", {d: d + "Z", fill: c, "fill-opacity": 0.8}));
      } else {
        for (j = 0; j < n; j++) d += (j ? "L" : "M") + x(j + 0.5) + "," + y(t[j][1]);
        add(svg, sv("path", {d: d, fill: "none", stroke: c, "stroke-width": 1.5}));
      }
    });
    legend(parent, series.map(function (s) { return s.name; }));
  }

  /* Box plots, one row per tag group: min, quartiles, max, on a log axis
   * when durations span more than two decades. */
  function boxes(parent, groups) {
    groups = groups.filter(function (g) { return g.q; });
    if (!groups.length) { add(parent, el("p", {}, "No task ran.")); return; }
    var W = 1000, row = 22, L = 220, H = groups.length * row + 30;
    var lo = Infinity, hi = 0;
    groups.forEach(function (g) { lo = Math.min(lo, g.q[0]); hi = Math.max(hi, g.q[4]); });
    var log = lo > 0 && hi / lo > 100;
    var f = log ? function (v) { return Math.log10(Math.max(v, lo)); } : function (v) { return v; };
    var a = log ? f(lo) : 0, b = f(hi) > a ? f(hi) : a + 1;
    var x = function (v) { return L + (W - L - 10) * (f(v) - a) / (b - a); };
    var svg = add(parent, sv("svg", {viewBox: "0 0 " + W + " " + H, width: "100%"}));
    groups.forEach(function (g, i) {
      var cy = 10 + i * row + row / 2, q = g.q;
      add(svg, sv("text", {x: L - 8, y: cy + 4, "text-anchor": "end"},
                  g.tag + " (" + g.ran + ")"));
      add(svg, sv("line", {x1: x(q[0]), x2: x(q[4]), y1: cy, y2: cy, stroke: "#555"}));
      add(svg, sv("rect", {x: x(q[1]), y: cy - 7, width: Math.max(1, x(q[3]) - x(q[1])),
                           height: 14, fill: COLORS[0], "fill-opacity": 0.6, stroke: "#333"}));
      add(svg, sv("line", {x1: x(q[2]), x2: x(q[2]), y1: cy - 7, y2: cy + 7,
                           stroke: "#000", "stroke-width": 2}));
    });
    var ay = H - 8;
    [0, 0.5, 1].forEach(function (t) {
      var v = log ? Math.pow(10, a + (b - a) * t) : a + (b - a) * t;
      add(svg, sv("text", {x: x(v), y: ay, "text-anchor": "middle"}, secs(v)));
    });
    if (log) add(svg, sv("text", {x: W - 10, y: ay, "text-anchor": "end"}, "(log scale)"));
  }

  function bars(parent, items) {
    var W = 1000, row = 24, L = 120, H = items.length * row + 10, max = 0;
    items.forEach(function (it) { max = Math.max(max, it.value); });
    var svg = add(parent, sv("svg", {viewBox: "0 0 " + W + " " + H, width: "100%"}));
    items.forEach(function (it, i) {
      var y = 5 + i * row, w = max ? (W - L - 200) * it.value / max : 0;
      add(svg, sv("text", {x: L - 8, y: y + 15, "text-anchor": "end"}, it.name));
      add(svg, sv("rect", {x: L, y: y + 3, width: Math.max(w, 1), height: 16,
                           fill: COLORS[i % COLORS.length]}));
      add(svg, sv("text", {x: L + w + 6, y: y + 15}, it.label));
    });
  }

  /* ------------------------------------------------------------- page */
  var c = D.counts, run = D.run || {};
  var sum = section("Summary");
  var when = run.started ? new Date(run.started * 1000).toISOString() : "";
  add(sum, el("p", {}, "Run " + run.id + " of manager " + (run.manager || "?") +
              (when ? ", started " + when : "") + "; " + secs(D.t1 - D.t0) +
              " from its first task event to its last."));
  var hit = D.cache.inputs ? 100 * D.cache.cached / D.cache.inputs : null;
  table(sum, ["tasks", "succeeded", "failed", "unfinished", "retries",
              "cache hit rate"],
        [[c.tasks, c.succeeded, c.failed, c.unfinished, c.retries,
          hit === null ? "-" : hit.toFixed(1) + "% of " + D.cache.inputs + " inputs"]],
        "summary");
  var cells = document.querySelectorAll("#summary tr:nth-child(2) td");
  ["n-tasks", "n-succeeded", "n-failed", "n-unfinished", "n-retries", "cache-hit"]
    .forEach(function (id, i) { cells[i].id = id; });

  chart(section("Timeline: tasks started and finished per " + secs(D.bin_width)),
        [{name: "started", values: D.timeline.started},
         {name: "finished", values: D.timeline.finished},
         {name: "failed", values: D.timeline.failed}], {});

  var stacked = D.tags.filter(function (g) { return g.running; });
  var rest = D.concurrency.running.map(function (v, j) {
    var s = 0;
    stacked.forEach(function (g) { s += g.running[j]; });
    return Math.max(0, v - s);
  });
  var series = stacked.map(function (g) { return {name: g.tag, values: g.running}; });
  if (rest.some(function (v) { return v > 0.001; })) series.push({name: "other", values: rest});
  chart(section("Concurrency: tasks running (task slots), by tag"), series, {stack: true});
  chart(section("Concurrency: workers connected"),
        [{name: "workers", values: D.concurrency.workers}], {height: 120});
  if (D.concurrency.cores) {
    var res = section("Resources in use (mean over each " + secs(D.bin_width) + ")");
    res.id = "resources";
    chart(res, [{name: "cores", values: D.concurrency.cores}], {height: 120});
    if (D.concurrency.gpus.some(function (v) { return v > 0; }))
      chart(res, [{name: "GPUs", values: D.concurrency.gpus}], {height: 120});
    if (D.concurrency.memory_mb.some(function (v) { return v > 0; }))
      chart(res, [{name: "memory (MB)", values: D.concurrency.memory_mb}], {height: 120});
  }

  var boxSec = section("Durations per tag (dispatch to done): min, quartiles, max");
  boxes(boxSec, D.tags);
  table(boxSec, ["tag", "tasks", "failed", "ran", "median", "mean", "max"],
        D.tags.map(function (g) {
          return [g.tag, g.tasks, g.failed, g.ran, g.q ? secs(g.q[2]) : "-",
                  g.mean !== undefined ? secs(g.mean) : "-", g.q ? secs(g.q[4]) : "-"];
        }), "tags");

  var tr = section("Transfers by source");
  bars(tr, D.transfers.map(function (t) {
    return {name: t.kind, value: t.bytes,
            label: bytes(t.bytes) + " in " + t.count + " transfers" +
                   (t.failed ? ", " + t.failed + " failed" : "")};
  }));
  chart(tr, D.transfers.map(function (t) { return {name: t.kind + " bytes", values: t.bins}; }),
        {stack: true, height: 150});
  table(tr, ["source", "transfers", "failed", "bytes", "seconds"],
        D.transfers.map(function (t) {
          return [t.kind, t.count, t.failed, bytes(t.bytes), t.seconds];
        }), "transfers");

  table(section("Slowest tasks"), ["id", "tag", "worker", "seconds", "started at"],
        D.slowest.map(function (s) {
          return [s.id, s.tag, s.worker, s.seconds, "+" + secs(s.start)];
        }), "slowest");

  var fs = section("Failed tasks (" + c.failed + ")");
  if (!D.failed.length) add(fs, el("p", {}, "None."));
  else table(fs, ["id", "tag", "worker", "exit code", "error", "output (tail)"],
             D.failed.map(function (f) {
               return [f.id, f.tag, f.worker, f.exit_code, f.error, {pre: f.output}];
             }), "failed");
  if (c.failed > D.failed.length)
    add(fs, el("p", {}, "The first " + D.failed.length + " are listed."));
})();
