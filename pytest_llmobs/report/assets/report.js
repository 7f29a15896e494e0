
"use strict";
// Renders the JSON in #llmobs-data. Every value from the run goes into the page as text
// (textContent, SVG text nodes, title attributes), never as markup.
(function () {
  const data = JSON.parse(document.getElementById("llmobs-data").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const app = document.getElementById("app");

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const k of Object.keys(attrs || {})) e.setAttribute(k, String(attrs[k]));
    return e;
  }
  const num = (v) => (v === null || v === undefined ? null : Number(v));
  function fmtInt(v) { return v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US"); }
  function fmtCost(v) {
    if (v === null || v === undefined) return "–";
    if (v === 0) return "$0";
    return "$" + (v >= 0.01 ? v.toFixed(4) : Number(v.toPrecision(3)).toString());
  }
  function fmtSec(v) {
    if (v === null || v === undefined) return "–";
    if (v === 0) return "0";
    return v < 1 ? (v * 1000).toFixed(v < 0.01 ? 2 : 0) + " ms" : v.toFixed(2) + " s";
  }
  function count(n, noun) { return n + " " + noun + (n === 1 ? "" : "s"); }
  // Why a call is in prompts.jsonl (its `kept` field), in words.
  function keptWhy(kept) {
    const rate = Number((data.settings || {}).llm_log_sample_rate ?? 1);
    if (kept === "failed_test") return "logged: the test failed";
    if (kept === "violation") return "logged: it broke a check";
    if (kept === "sampled") {
      return rate >= 1 ? "logged: every call is" : "logged: in the " + Math.round(rate * 100) +
        "% sample (llm_log_sample_rate)";
    }
    return "logged: " + kept;
  }
  function fmtMs(v) { return fmtSec(v === null || v === undefined ? null : v / 1000); }

  // -- header and totals ----------------------------------------------------------------------
  const t = data.totals || {};
  app.append(el("h1", "", "pytest-llmobs report"));
  app.append(el("div", "meta", "run " + (data.run_ids || []).join(", ") + " · generated " +
    data.generated_at + " · content " + ((data.settings || {}).llm_log_content || "?")));
  const cards = el("div", "cards");
  function card(label, value, bad) {
    const c = el("div", "card" + (bad ? " bad" : ""));
    c.append(el("b", "", value), el("span", "", label));
    cards.append(c);
  }
  card("tests", fmtInt(t.tests));
  card("failed", fmtInt(t.failed), t.failed > 0);
  card("LLM calls", fmtInt(t.calls));
  card("input tokens", fmtInt(t.input_tokens));
  card("output tokens", fmtInt(t.output_tokens));
  card("cost", fmtCost(t.cost_usd));
  card("p95 latency", fmtSec(t.p95_latency_s));
  card("violations", fmtInt(t.violations), t.violations > 0);
  card("chaos faults", fmtInt(t.chaos_faults), t.chaos_faults > 0);
  app.append(cards);
  if (data.session_result) app.append(el("pre", "session", data.session_result));
  if (data.budget_exhausted) {
    app.append(el("p", "muted", "This run is larger than the report keeps: some spans or " +
      "excerpts are left out here (they are all in traces.jsonl and prompts.jsonl)."));
  }

  // -- charts ---------------------------------------------------------------------------------
  const TOP = 25;
  function barChart(title, rows, parts, fmt, legend) {
    const box = el("div", "chart");
    box.append(el("h3", "", title));
    const shown = rows.slice(0, TOP);
    if (!shown.length) { box.append(el("div", "empty", "no data")); return box; }
    const W = 640, LABEL = 230, VALUE = 90, ROW = 18;
    const max = Math.max(...shown.map((r) => parts.reduce((s, p) => s + (r[p] || 0), 0))) || 1;
    const chart = svg("svg", { viewBox: "0 0 " + W + " " + (shown.length * ROW + 4),
      role: "img", "aria-label": title });
    shown.forEach((r, i) => {
      const y = i * ROW + 2;
      const name = svg("text", { x: LABEL - 6, y: y + 12, "text-anchor": "end" });
      const short = r.id.length > 38 ? "…" + r.id.slice(-37) : r.id;
      name.textContent = short;
      const tip = svg("title", {});
      tip.textContent = r.id;
      name.append(tip);
      chart.append(name);
      let x = LABEL;
      let total = 0;
      for (const p of parts) {
        const v = r[p] || 0;
        total += v;
        const w = (v / max) * (W - LABEL - VALUE);
        const bar = svg("rect", { x: x, y: y + 3, width: Math.max(w, v > 0 ? 1 : 0), height: ROW - 6,
          class: p === "cost_usd" ? "cost" : p === "input_tokens" ? "in" : "out" });
        const btip = svg("title", {});
        btip.textContent = r.id + ": " + p + " " + fmt(v);
        bar.append(btip);
        chart.append(bar);
        x += w;
      }
      const val = svg("text", { x: x + 4, y: y + 12, class: "val" });
      val.textContent = fmt(total);
      chart.append(val);
    });
    box.append(chart);
    const foot = el("div", "legend", rows.length > TOP ? "top " + TOP + " of " + rows.length + " tests" : "");
    for (const [cls, label] of legend) { foot.append(el("i", cls), document.createTextNode(label)); }
    box.append(foot);
    return box;
  }
  const withCalls = data.tests.filter((x) => x.calls > 0);
  const byTokens = withCalls.slice().sort((a, b) =>
    (b.input_tokens + b.output_tokens) - (a.input_tokens + a.output_tokens));
  const byCost = withCalls.filter((x) => x.cost_usd !== null).sort((a, b) => b.cost_usd - a.cost_usd);
  app.append(el("h2", "", "Tokens and cost per test"));
  const charts = el("div", "charts");
  charts.id = "charts";
  charts.append(barChart("Tokens per test", byTokens, ["input_tokens", "output_tokens"], fmtInt,
    [["in", "input"], ["out", "output"]]));
  charts.append(barChart("Cost per test (USD)", byCost, ["cost_usd"], fmtCost, [["cost", "cost"]]));
  app.append(charts);

  // -- the test table ---------------------------------------------------------------------------
  app.append(el("h2", "", "Tests"));
  const toolbar = el("div", "toolbar");
  const search = el("input");
  search.type = "search";
  search.placeholder = "filter by test id, model, fault…";
  const outcome = el("select");
  for (const o of ["all", "failed", "passed", "skipped", "with findings", "with chaos faults"]) {
    const opt = el("option", "", o);
    opt.value = o;
    outcome.append(opt);
  }
  const expand = el("button", "", "expand all");
  const collapse = el("button", "", "collapse all");
  expand.id = "expand-all";
  toolbar.append(search, outcome, expand, collapse);
  app.append(toolbar);

  const COLUMNS = [
    ["Test", "id", false], ["Status", "outcome", false], ["Calls", "calls", true],
    ["In tok", "input_tokens", true], ["Out tok", "output_tokens", true], ["Cost", "cost_usd", true],
    ["p95 latency", "p95_latency_s", true], ["TTFT p50", "ttft_p50_s", true],
    ["Duration", "duration_s", true], ["Findings", "nfindings", true],
  ];
  const table = el("table", "tests");
  table.id = "tests";
  const head = el("tr");
  const tbody = el("tbody");
  const thead = el("thead");
  thead.append(head);
  table.append(thead, tbody);
  app.append(table);
  const rows = data.tests.map((test) => {
    test.nfindings = test.findings.length + test.faults.length;
    const tr = el("tr", "test");
    tr.dataset.outcome = test.outcome;
    const cells = [
      el("td", "id", test.id),
      el("td", "", null),
      el("td", "num", fmtInt(test.calls)),
      el("td", "num", fmtInt(test.input_tokens)),
      el("td", "num", fmtInt(test.output_tokens)),
      el("td", "num", fmtCost(test.cost_usd)),
      el("td", "num", fmtSec(test.p95_latency_s)),
      el("td", "num", fmtSec(test.ttft_p50_s)),
      el("td", "num", fmtSec(test.duration_s)),
      el("td", "", null),
    ];
    cells[1].append(el("span", "status " + test.outcome, test.outcome));
    if (test.chaos_verdict) {
      cells[9].append(el("span", "badge verdict-" + test.chaos_verdict, "chaos " + test.chaos_verdict));
    }
    for (const f of test.faults) cells[9].append(el("span", "badge fault", "⚡ " + f.fault));
    for (const f of test.findings) cells[9].append(el("span", "badge finding", f.key));
    if (test.truncations) cells[9].append(el("span", "badge finding", test.truncations + " truncated"));
    for (const e of test.scores) cells[9].append(el("span", "badge score", e.name + " " + e.value));
    tr.append(...cells);
    const detail = el("tr", "detail");
    const td = el("td");
    td.colSpan = COLUMNS.length;
    detail.append(td);
    detail.hidden = true;
    const row = { test, tr, detail, td, built: false,
      text: (test.id + " " + test.call_rows.map((c) => c.model + " " + (c.fault || "")).join(" ") +
        " " + test.faults.map((f) => f.fault).join(" ")).toLowerCase() };
    tr.addEventListener("click", () => toggle(row, detail.hidden));
    return row;
  });

  function toggle(row, open) {
    if (open && !row.built) { buildDetail(row.test, row.td); row.built = true; }
    row.detail.hidden = !open;
    row.tr.classList.toggle("open", open);
  }

  let sortKey = null, sortAsc = true;
  for (const [label, key, numeric] of COLUMNS) {
    const th = el("th", numeric ? "num" : "", label);
    th.addEventListener("click", () => {
      sortAsc = sortKey === key ? !sortAsc : !numeric;
      sortKey = key;
      for (const h of head.children) h.classList.remove("sorted", "asc");
      th.classList.add("sorted");
      if (sortAsc) th.classList.add("asc");
      draw();
    });
    head.append(th);
  }
  function visible(row) {
    const q = search.value.trim().toLowerCase();
    if (q && !row.text.includes(q)) return false;
    const o = outcome.value;
    if (o === "with findings") return row.test.findings.length > 0;
    if (o === "with chaos faults") return row.test.faults.length > 0;
    return o === "all" || row.test.outcome === o;
  }
  function draw() {
    let ordered = rows;
    if (sortKey) {
      ordered = rows.slice().sort((a, b) => {
        const x = a.test[sortKey], y = b.test[sortKey];
        const c = typeof x === "string" || typeof y === "string"
          ? String(x).localeCompare(String(y)) : (num(x) ?? -1) - (num(y) ?? -1);
        return sortAsc ? c : -c;
      });
    }
    tbody.replaceChildren();
    for (const row of ordered) {
      const show = visible(row);
      row.tr.hidden = !show;
      if (!show) row.detail.hidden = true;
      else row.detail.hidden = !row.tr.classList.contains("open");
      tbody.append(row.tr, row.detail);
    }
  }
  search.addEventListener("input", draw);
  outcome.addEventListener("change", draw);
  expand.addEventListener("click", () => { for (const r of rows) if (!r.tr.hidden) toggle(r, true); });
  collapse.addEventListener("click", () => { for (const r of rows) toggle(r, false); });
  if (!rows.length) app.append(el("div", "empty", "no tests"));

  // -- one test's detail: findings, calls, waterfall, excerpts ---------------------------------
  function buildDetail(test, td) {
    const meta = [];
    if (test.location) meta.push(test.location.filter((x) => x !== null).join(":"));
    if (test.cassette) meta.push("cassette " + test.cassette);
    if (meta.length) td.append(el("div", "meta", meta.join(" · ")));
    if (test.findings.length) {
      td.append(el("h3", "", "Findings"));
      const ul = el("ul", "findings");
      for (const f of test.findings) ul.append(el("li", "", "[" + f.kind + "] " + f.message));
      td.append(ul);
    }
    if (test.evaluations.length) {
      td.append(el("h3", "", "Evaluations"));
      const ul = el("ul", "evaluations");
      for (const e of test.evaluations) {
        const what = [e.score === null ? null : String(e.score), e.label].filter((x) => x !== null);
        const on = e.call === null ? "" : " (call #" + (e.call + 1) + ")";
        ul.append(el("li", "", e.name + ": " + what.join(" ") + on + (e.explanation ? " — " + e.explanation : "")));
      }
      td.append(ul);
    }
    if (test.call_rows.length) td.append(callsTable(test));
    td.append(el("h3", "", "Spans"));
    if (test.spans.length) td.append(waterfall(test));
    else td.append(el("div", "muted", "no spans recorded"));
    if (test.excerpts.length) {
      td.append(el("h3", "", "Prompts and responses"));
      for (const x of test.excerpts) td.append(excerpt(x));
      if (test.excerpts_omitted) {
        td.append(el("div", "muted", count(test.excerpts_omitted, "more call") + " in prompts.jsonl"));
      }
    }
  }

  function callsTable(test) {
    const tbl = el("table", "calls");
    const h = el("tr");
    for (const c of ["#", "provider", "model", "status", "attempt", "source", "in", "out", "cost",
      "latency", "TTFT", "finish", "fault / error"]) h.append(el("th", "", c));
    const thead = el("thead");
    thead.append(h);
    const body = el("tbody");
    for (const c of test.call_rows) {
      const tr = el("tr");
      const fault = el("td", "", null);
      if (c.fault) fault.append(el("span", "badge fault", "⚡ " + c.fault));
      if (c.error) fault.append(document.createTextNode(" " + c.error));
      tr.append(el("td", "num", c.index), el("td", "", c.provider), el("td", "", c.model),
        el("td", "num", c.status_code), el("td", "num", c.attempt), el("td", "", c.source),
        el("td", "num", fmtInt(c.input_tokens)), el("td", "num", fmtInt(c.output_tokens)),
        el("td", "num", fmtCost(c.cost_usd)), el("td", "num", fmtSec(c.latency_s)),
        el("td", "num", fmtSec(c.ttft_s)),
        el("td", "", (c.finish_reasons || []).join(", ") + (c.truncated ? " (truncated)" : "")), fault);
      body.append(tr);
    }
    tbl.append(thead, body);
    const box = el("div");
    box.append(el("h3", "", "Calls"), tbl);
    if (test.calls_omitted) box.append(el("div", "muted", count(test.calls_omitted, "more call")));
    return box;
  }

  function waterfall(test) {
    const box = el("div", "wf");
    const total = test.span_window_ms || Math.max(...test.spans.map((s) => s.start_ms + s.dur_ms)) || 1;
    const pct = (ms) => Math.min(100, Math.max(0, (ms / total) * 100)) + "%";
    const axis = el("div", "wf-row wf-axis");
    const scale = el("div", "wf-track");
    [0, 0.25, 0.5, 0.75, 1].forEach((f, i, all) => {
      const tick = el("span", "wf-tick" + (i === 0 ? " first" : i === all.length - 1 ? " last" : ""),
        fmtMs(total * f));
      tick.style.left = f * 100 + "%";
      scale.append(tick);
    });
    axis.append(el("div", "wf-label", "span"), scale, el("div", "wf-dur", "duration"));
    box.append(axis);
    for (const s of test.spans) {
      const row = el("div", "wf-row");
      const label = el("div", "wf-label", s.name);
      label.style.paddingLeft = s.depth * 14 + "px";
      if (s.fault) label.append(el("span", "wf-fault-label", " ⚡ " + s.fault));
      const track = el("div", "wf-track");
      const bar = el("div", "wf-bar");
      if (s.llm) bar.classList.add("llm");
      if (s.error) bar.classList.add("err");
      if (s.fault) bar.classList.add("fault");
      if (s.verdict) bar.classList.add("verdict");
      bar.style.left = pct(s.start_ms);
      bar.style.width = pct(s.dur_ms);
      const tip = [s.name, "start +" + fmtMs(s.start_ms) + ", " + fmtMs(s.dur_ms)];
      if (s.recorded_ms !== null) tip.push("recorded duration " + fmtMs(s.recorded_ms));
      if (s.ttft_ms !== null) tip.push("time to first chunk " + fmtMs(s.ttft_ms));
      else if (s.ttft_unknown) tip.push("time to first chunk unknown (the cassette has no timing)");
      if (s.fault) tip.push("chaos fault: " + s.fault);
      if (s.verdict) tip.push("chaos verdict: " + s.verdict);
      if (s.error) tip.push("error" + (s.status ? ": " + s.status : ""));
      for (const [k, v] of s.attributes) tip.push(k + " = " + v);
      for (const e of s.events) tip.push("event " + e);
      bar.title = tip.join("\n");
      label.title = bar.title;
      track.append(bar);
      if (s.ttft_ms !== null) {
        const mark = el("div", "wf-ttft");
        mark.style.left = pct(s.start_ms + Math.min(s.ttft_ms, s.dur_ms));
        mark.title = "TTFT " + fmtMs(s.ttft_ms) + (s.source === "replay" ? " (recorded)" : "");
        track.append(mark);
      }
      row.append(label, track, el("div", "wf-dur", fmtMs(s.dur_ms)));
      box.append(row);
    }
    if (test.spans_omitted) box.append(el("div", "muted", count(test.spans_omitted, "more span") + " in traces.jsonl"));
    return box;
  }

  function excerpt(x) {
    const box = el("section", "excerpt" + (x.fault ? " fault" : ""));
    const header = el("header", "", "call " + x.call + " · " + (x.provider || "?") + " " +
      (x.model || "") + " · " + (x.operation || "") + " · " +
      (x.status_code === null || x.status_code === undefined ? "no response" : "HTTP " + x.status_code) +
      " · " + keptWhy(x.kept) + (x.finish_reasons.length ? " · finish " + x.finish_reasons.join(", ") : ""));
    if (x.fault) header.append(el("span", "badge fault", " ⚡ " + x.fault));
    box.append(header);
    if (!x.content) box.append(el("div", "muted", "content not logged (llm_log_content = none)"));
    if (x.over_budget) {
      box.append(el("div", "muted", "content left out: the report's size budget is spent " +
        "(it is all in prompts.jsonl)"));
    }
    if (x.messages_omitted && !x.over_budget) {
      box.append(el("div", "muted", count(x.messages_omitted, "earlier message") + " left out"));
    }
    for (const m of x.messages) {
      const row = el("div", "msg");
      row.append(el("div", "role", m.role), el("pre", "", m.text));
      box.append(row);
    }
    if (x.response !== null) {
      const row = el("div", "msg response");
      row.append(el("div", "role", "response"), el("pre", "", x.response));
      box.append(row);
    }
    if (x.error) box.append(el("pre", "err", x.error));
    return box;
  }

  // -- what opens first: #open=all, #test=ID, else failing and faulted tests (a few) ------------
  draw();
  const hash = decodeURIComponent(location.hash.slice(1));
  if (hash === "open=all") {
    for (const r of rows) toggle(r, true);
  } else if (hash.startsWith("test=")) {
    const r = rows.find((x) => x.test.id === hash.slice(5));
    if (r) { toggle(r, true); r.tr.scrollIntoView(); }
  } else {
    rows.filter((r) => r.test.outcome === "failed" || r.test.faults.length)
      .slice(0, 5).forEach((r) => toggle(r, true));
  }
  document.body.dataset.ready = "1";
})();
