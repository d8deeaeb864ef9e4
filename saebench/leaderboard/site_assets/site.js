// saebench leaderboard site. Data comes from the JSON element; every text from it is rendered
// with textContent, and escaped (esc) where plotly draws it, so no markup from a CSV runs.
(function () {
  "use strict";
  window.__siteStart = performance.now();
  const DATA = JSON.parse(document.getElementById("site-data").textContent);
  const $ = (id) => document.getElementById(id);
  const HEADLINE = new Set(["fvu", "sufficiency", "sup_sufficiency", "necessity", "sup_necessity",
    "noint_accuracy", "edit_accuracy", "aware_edit_accuracy", "sup_edit_accuracy", "f1_coverage"]);
  const COLORS = { standard: "#1f77b4", topk: "#ff7f0e", batchtopk: "#d62728", gated: "#2ca02c",
    jumprelu: "#9467bd", supervised_mean: "#000000", supervised_lstsq: "#555555", pca: "#8c564b",
    random: "#bcbd22", frozen_decoder: "#e377c2" };
  const state = { view: 0, node: null, sort: null, desc: false, filter: "", k: null, attr: null,
    kind: "edit_accuracy", all: false, selected: null,
    groups: { approximation: true, control: true, interpretability: true } };

  const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;")
    .replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  function fmt(v) {
    if (v == null || Number.isNaN(v)) return "";
    const a = Math.abs(v);
    return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(3);
  }
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text != null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function option(value, text) { const o = el("option", text); o.value = value; return o; }
  const view = () => DATA.views[state.view];
  const rowName = (r) => String(r.values.sae_name ?? r.values.sae_hash ?? "?");
  const num = (r, c) => (typeof r.values[c] === "number" ? r.values[c] : null);

  function nodeRows() {
    const v = view(), f = state.filter.toLowerCase();
    const out = [];
    v.rows.forEach((r, i) => {
      if (r.node !== state.node) return;
      const text = [r.values.sae_name, r.values.architecture, r.values.data_source].join(" ");
      if (!f || text.toLowerCase().includes(f)) out.push(i);
    });
    return out;
  }

  function cell(r, c) { // [text, class, sort value]
    const m = view().meta[c] || {}, v = r.values[c];
    if (m.masked && (r.causal[m.attribute] === "n/c" || r.causal[m.attribute] === "borderline"))
      return [r.causal[m.attribute] === "n/c" ? "n/c" : "b/l", "masked", null];
    if (v == null) return ["", "", null];
    if (typeof v !== "number") return [String(v), "", String(v).toLowerCase()];
    if (!m.metric) return [String(v), "num", v];
    let t = fmt(v);
    const lo = r.values[c + "_lo"], hi = r.values[c + "_hi"];
    if (typeof lo === "number" && typeof hi === "number") t += "±" + fmt((hi - lo) / 2);
    return [t, "num", v];
  }

  function tableColumns(indices) {
    const v = view(), cols = ["sae_name", "architecture", "data_source", "l0"];
    for (const c of v.columns) {
      const m = v.meta[c];
      if (!m || !m.group || !state.groups[m.group]) continue;
      if (m.k != null && m.k !== state.k) continue;
      if (!state.all && !HEADLINE.has(m.metric)) continue;
      if (indices.some((i) => v.rows[i].values[c] != null)) cols.push(c);
    }
    return cols.filter((c) => v.columns.includes(c));
  }

  function renderTable() {
    const v = view();
    let indices = nodeRows();
    const cols = tableColumns(indices);
    if (state.sort && cols.includes(state.sort)) {
      const key = new Map(indices.map((i) => [i, cell(v.rows[i], state.sort)[2]]));
      indices = indices.slice().sort((a, b) => {
        const x = key.get(a), y = key.get(b);
        if (x == null || y == null) return (x == null) - (y == null);
        const d = typeof x === "number" ? x - y : x.localeCompare(y);
        return state.desc ? -d : d;
      });
    }
    const thead = document.querySelector("#rows thead"), tbody = document.querySelector("#rows tbody");
    const hr = el("tr");
    for (const c of cols) {
      const th = el("th", (v.meta[c] || {}).label || c, c.startsWith("sup_") ? "sup" : "");
      th.dataset.col = c;
      th.title = c;
      if (c === state.sort) th.classList.add(state.desc ? "sorted-desc" : "sorted-asc");
      th.addEventListener("click", () => {
        state.desc = state.sort === c ? !state.desc : false;
        state.sort = c;
        renderTable();
      });
      hr.appendChild(th);
    }
    thead.replaceChildren(hr);
    const trs = indices.map((i) => {
      const tr = el("tr", null, i === state.selected ? "selected" : "");
      tr.dataset.row = String(i);
      for (const c of cols) {
        const [t, cls] = cell(v.rows[i], c);
        tr.appendChild(el("td", t, [cls, c.startsWith("sup_") ? "sup" : ""].join(" ").trim()));
      }
      tr.addEventListener("click", () => select(i));
      return tr;
    });
    tbody.replaceChildren(...trs);
    $("row-count").textContent = `${indices.length} of ${v.rows.filter((r) => r.node === state.node).length} rows at this node`;
  }

  function emphasis(i) {
    if (state.selected == null) return { width: 1.6, opacity: 0.8, size: 9 };
    return i === state.selected ? { width: 4, opacity: 1, size: 15 } : { width: 1, opacity: 0.25, size: 7 };
  }
  function interval(r, c, y) {
    const lo = num(r, c + "_lo"), hi = num(r, c + "_hi");
    return y == null || lo == null || hi == null ? [0, 0] : [hi - y, y - lo];
  }
  function nodeValue(indices, c) {
    for (const i of indices) { const x = num(view().rows[i], c); if (x != null) return x; }
    return null;
  }
  const layout = (title, extra) => Object.assign({ title: { text: title, font: { size: 14 } },
    margin: { l: 55, r: 15, t: 40, b: 45 }, hovermode: "closest", showlegend: true,
    legend: { font: { size: 10 } } }, extra);
  const CONFIG = { displaylogo: false, responsive: true };

  function plotK(indices) {
    const v = view(), a = state.attr, ks = v.ks, traces = [];
    for (const i of indices) {
      const r = v.rows[i], cols = ks.map((k) => `${state.kind}_${a}_k${k}`), e = emphasis(i);
      const y = cols.map((c) => num(r, c));
      if (y.every((x) => x == null)) continue;
      const iv = cols.map((c, j) => interval(r, c, y[j]));
      traces.push({ x: ks, y, type: "scatter", mode: "lines+markers", showlegend: false,
        name: esc(rowName(r)), text: ks.map(() => esc(rowName(r))), customdata: ks.map(() => i),
        hovertemplate: "%{text}<br>k = %{x}<br>%{y:.3f}<extra></extra>", opacity: e.opacity,
        line: { width: e.width, color: COLORS[r.values.architecture] || "#7f7f7f",
          dash: r.values.data_source === "general" ? "dot" : "solid" },
        marker: { size: e.size / 2 },
        error_y: { type: "data", symmetric: false, array: iv.map((p) => p[0]),
          arrayminus: iv.map((p) => p[1]), visible: iv.some((p) => p[0] || p[1]), width: 2 } });
    }
    const sky = nodeValue(indices, `sup_edit_accuracy_${a}`), floor = nodeValue(indices, `noint_accuracy_${a}`);
    if (sky != null) traces.push({ x: [ks[0], ks[ks.length - 1]], y: [sky, sky], mode: "lines",
      name: "supervised edit (skyline)", line: { color: "black", dash: "dash", width: 2 }, hoverinfo: "name+y" });
    if (floor != null) traces.push({ x: [ks[0], ks[ks.length - 1]], y: [floor, floor], mode: "lines",
      name: "no intervention (floor)", line: { color: "#999", dash: "dot", width: 2 }, hoverinfo: "name+y" });
    const archs = [...new Set(indices.map((i) => v.rows[i].values.architecture))];
    for (const arch of archs) traces.push({ x: [null], y: [null], mode: "lines", name: esc(arch ?? "?"),
      line: { color: COLORS[arch] || "#7f7f7f", width: 2 }, hoverinfo: "skip" });
    const status = indices.length ? v.rows[indices[0]].causal[a] : "";
    const note = status === "n/c" ? " — not causal here" : status === "borderline" ? " — borderline causal" : "";
    const kind = state.kind === "edit_accuracy" ? "edit accuracy" : "aware edit accuracy";
    Plotly.react("plot-k", traces, layout(`${kind} vs k, attribute ${esc(a ?? "")}${note}`, {
      annotations: [{ text: "colour: architecture · dotted: trained on general text", showarrow: false,
        xref: "paper", yref: "paper", x: 0, y: 1.0, xanchor: "left", yanchor: "bottom", font: { size: 10, color: "#777" } }],
      xaxis: { title: { text: "k (latents changed)" }, type: "log", tickvals: ks, ticktext: ks.map(String) },
      yaxis: { title: { text: kind }, range: [-0.05, 1.05] },
      legend: { font: { size: 9 } } }), CONFIG);
  }

  function plotL0(indices) {
    const v = view(), series = [["sufficiency", "#1f77b4"], ["necessity", "#d62728"], ["fvu", "#2ca02c"]];
    const traces = series.filter(([c]) => v.columns.includes(c)).map(([c, color]) => {
      const pts = indices.filter((i) => num(v.rows[i], "l0") != null && num(v.rows[i], c) != null);
      return { x: pts.map((i) => num(v.rows[i], "l0")), y: pts.map((i) => num(v.rows[i], c)),
        customdata: pts, text: pts.map((i) => esc(rowName(v.rows[i]))), type: "scatter", mode: "markers",
        name: (v.meta[c] || {}).label || c, hovertemplate: "%{text}<br>L0 = %{x:.3g}<br>%{y:.3f}<extra>%{fullData.name}</extra>",
        marker: { color, size: pts.map((i) => emphasis(i).size), opacity: pts.map((i) => emphasis(i).opacity),
          line: { width: pts.map((i) => (i === state.selected ? 2 : 0)), color: "black" } } };
    });
    Plotly.react("plot-l0", traces, layout("L0 vs fidelity", {
      xaxis: { title: { text: "L0 (active latents, log)" }, type: "log", dtick: "D2" }, yaxis: { title: { text: "value" } } }), CONFIG);
  }

  function plotCoverage(indices) {
    const v = view(), seen = new Map();
    const labels = indices.map((i) => { // unique category labels, escaped for plotly
      const n = esc(rowName(v.rows[i])), c = (seen.get(n) || 0) + 1;
      seen.set(n, c);
      return c > 1 ? `${n} (${c})` : n;
    });
    const traces = v.attributes.filter((a) => v.columns.includes(`f1_coverage_${a}`)).map((a) => {
      const c = `f1_coverage_${a}`, y = indices.map((i) => num(v.rows[i], c));
      const iv = indices.map((i, j) => interval(v.rows[i], c, y[j]));
      return { type: "bar", name: `cov ${esc(a)}`, x: labels, y, customdata: indices,
        hovertemplate: "%{x}<br>%{y:.3f}<extra>%{fullData.name}</extra>",
        marker: { opacity: indices.map((i) => emphasis(i).opacity),
          line: { width: indices.map((i) => (i === state.selected ? 2.5 : 0)), color: "black" } },
        error_y: { type: "data", symmetric: false, array: iv.map((p) => p[0]),
          arrayminus: iv.map((p) => p[1]), visible: iv.some((p) => p[0] || p[1]) } };
    });
    Plotly.react("plot-cov", traces, layout("Interpretability coverage (F1 ≥ tau)", {
      barmode: "group", xaxis: { tickangle: -45, automargin: true }, yaxis: { range: [0, 1.05] } }), CONFIG);
  }

  function plotMap() {
    const m = view().map;
    if (!window.Plotly) return;
    $("map-missing").hidden = !!m;
    $("plot-map").hidden = !m;
    if (!m) return;
    const ylab = [], yinfo = new Map(), xlab = [], z = [], hover = [];
    const nodeLabel = (c) => esc(c.hook) + (c.head != null ? ` head ${c.head}` : "");
    for (const c of m.cells) {
      const y = nodeLabel(c), x = `${esc(c.position)} · ${esc(c.attribute)}`;
      if (!yinfo.has(y)) { yinfo.set(y, { hook: c.hook, head: c.head }); ylab.push(y); }
      if (!xlab.includes(x)) xlab.push(x);
    }
    ylab.forEach(() => { z.push(xlab.map(() => null)); hover.push(xlab.map(() => "")); });
    for (const c of m.cells) {
      const yi = ylab.indexOf(nodeLabel(c)), xi = xlab.indexOf(`${esc(c.position)} · ${esc(c.attribute)}`);
      z[yi][xi] = c.noint_accuracy == null ? null : 1 - c.noint_accuracy;
      hover[yi][xi] = `noint ${fmt(c.noint_accuracy)} · sup edit ${fmt(c.sup_edit_accuracy)}` +
        ` · causal ${esc(c.causal ?? "")} · editable ${esc(c.editable ?? "")}`;
    }
    const keys = new Set(view().nodes.map((n) => n.key)), mx = [], my = [], mc = [];
    ylab.forEach((y) => xlab.forEach((x) => {
      const info = yinfo.get(y), pos = m.cells.find((c) => nodeLabel(c) === y && `${esc(c.position)} · ${esc(c.attribute)}` === x);
      const key = `${info.hook}|${info.head ?? ""}|${pos ? pos.position : ""}`;
      if (pos && keys.has(key)) { mx.push(x); my.push(y); mc.push(key === state.node ? "#ff00aa" : "white"); }
    }));
    Plotly.react("plot-map", [
      { type: "heatmap", x: xlab, y: ylab, z, text: hover, zmin: 0, zmax: 1, colorscale: "Viridis",
        hovertemplate: "%{y} @ %{x}<br>%{text}<extra></extra>", colorbar: { title: { text: "1 − noint" } } },
      { type: "scatter", mode: "markers", x: mx, y: my, name: "nodes with rows", hoverinfo: "skip",
        marker: { symbol: "circle-open", size: 12, color: mc, line: { width: 3 } } },
    ], layout("", { margin: { l: 190, r: 10, t: 10, b: 70 }, height: Math.max(260, 14 * ylab.length + 90), showlegend: false,
      yaxis: { autorange: "reversed", type: "category", dtick: 1, tickfont: { size: 10 } },
      xaxis: { type: "category", dtick: 1 } }), CONFIG);
    const plot = $("plot-map");
    if (!plot.dataset.bound) {
      plot.dataset.bound = "1";
      plot.on("plotly_click", (ev) => {
        const p = ev.points[0], mm = view().map, info = [...new Set(mm.cells.map((c) => c))]
          .find((c) => nodeLabel(c) === p.y && `${esc(c.position)} · ${esc(c.attribute)}` === p.x);
        if (!info) return;
        const key = `${info.hook}|${info.head ?? ""}|${info.position}`;
        if (view().nodes.some((n) => n.key === key)) setNode(key);
      });
    }
  }

  function renderPlots() {
    if (!window.Plotly) return; // still loading: drawn when plotly.min.js arrives
    const indices = nodeRows();
    plotK(indices); plotL0(indices); plotCoverage(indices);
  }

  function renderDetail() {
    const body = $("detail-body"), v = view(), r = state.selected == null ? null : v.rows[state.selected];
    $("detail-empty").hidden = !!r;
    $("detail-name").textContent = r ? rowName(r) : "";
    if (!r) { body.replaceChildren(); return; }
    const blocks = [];
    const metrics = v.columns.filter((c) => (v.meta[c] || {}).metric && r.values[c] != null);
    const groups = Object.entries(v.detail).concat([["metrics", metrics]]);
    for (const [title, cols] of groups) {
      if (!cols.length) continue;
      const div = el("div", null, title === "metrics" ? "metrics" : ""), dl = el("dl");
      div.appendChild(el("h3", title));
      for (const c of cols) { dl.appendChild(el("dt", c)); dl.appendChild(el("dd", cell(r, c)[0])); }
      div.appendChild(dl);
      blocks.push(div);
    }
    const links = el("div");
    links.appendChild(el("h3", "JSON"));
    for (const [href, text] of [[r.json, "this row (all its cells)"], [r.saebench_json, "SAEBench eval-results format"]]) {
      if (!href) continue;
      const a = el("a", text); a.href = href; a.target = "_blank";
      links.appendChild(a); links.appendChild(el("br"));
    }
    blocks.unshift(links);
    body.replaceChildren(...blocks);
  }

  function select(i) {
    state.selected = state.selected === i ? null : i;
    for (const tr of document.querySelectorAll("#rows tbody tr"))
      tr.classList.toggle("selected", Number(tr.dataset.row) === state.selected);
    renderPlots(); renderDetail();
  }

  function setNode(key) {
    state.node = key; state.selected = null;
    $("node-picker").value = key;
    renderTable(); renderPlots(); renderDetail(); plotMap();
  }

  function setView(index) {
    state.view = index;
    const v = view();
    $("node-picker").replaceChildren(...v.nodes.map((n) => option(n.key, n.label)));
    $("node-count").textContent = `${v.nodes.length} node(s), ${v.rows.length} rows`;
    $("k-picker").replaceChildren(...v.ks.map((k) => option(String(k), String(k))));
    state.k = v.ks.includes(2) ? 2 : v.ks[0] ?? null;
    if (state.k != null) $("k-picker").value = String(state.k);
    $("attr-picker").replaceChildren(...v.attributes.map((a) => option(a, a)));
    const first = v.rows.find((r) => r.node === v.nodes[0].key); // open on a causal attribute
    state.attr = v.attributes.find((a) => first && first.causal[a] === "causal") ?? v.attributes[0] ?? null;
    if (state.attr != null) $("attr-picker").value = state.attr;
    setNode(v.nodes[0].key);
  }

  function init() {
    $("view-picker").replaceChildren(...DATA.views.map((v, i) => option(String(i), v.label)));
    $("view-picker").addEventListener("change", (e) => setView(Number(e.target.value)));
    $("node-picker").addEventListener("change", (e) => setNode(e.target.value));
    $("k-picker").addEventListener("change", (e) => { state.k = Number(e.target.value); renderTable(); });
    $("attr-picker").addEventListener("change", (e) => { state.attr = e.target.value; renderPlots(); });
    $("kind-picker").addEventListener("change", (e) => { state.kind = e.target.value; renderPlots(); });
    $("filter").addEventListener("input", (e) => { state.filter = e.target.value; renderTable(); renderPlots(); });
    const toggles = $("group-toggles");
    for (const g of [...DATA.groups, "all metrics"]) {
      const label = el("label"), box = el("input");
      box.type = "checkbox"; box.checked = g === "all metrics" ? state.all : state.groups[g];
      box.dataset.group = g;
      box.addEventListener("change", () => {
        if (g === "all metrics") state.all = box.checked; else state.groups[g] = box.checked;
        renderTable();
      });
      label.append(box, " " + g);
      toggles.appendChild(label);
    }
    for (const a of document.querySelectorAll("a.doc")) {
      if (DATA.docs) a.href = `${DATA.docs}#${DATA.doc_sections[a.dataset.section] || ""}`;
      else a.removeAttribute("href");
    }
    $("sources").textContent = DATA.sources.join(", ") || "data frames";
    setView(0);
    window.__tableReady = performance.now();
    // The table works at once; plotly (4.8 MB) loads after it and then draws the figures.
    const script = document.createElement("script");
    script.src = "plotly.min.js";
    script.onerror = () => console.error("plotly.min.js is missing next to index.html");
    script.onload = () => {
      renderPlots(); plotMap();
      for (const id of ["plot-k", "plot-l0", "plot-cov"]) {
        $(id).on("plotly_click", (ev) => {
          const i = ev.points[0].customdata;
          if (typeof i === "number") select(i);
        });
      }
      window.__siteReady = performance.now();
      document.body.dataset.ready = "1";
    };
    document.head.appendChild(script);
  }
  init();
})();
