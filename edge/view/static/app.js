// bess-edge live view: one EventSource for every change, trends from the gateway's history.
// The page never polls: after the first load it only listens, and every list it keeps is
// bounded (events, trend points), so a page left open for days uses flat memory.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const RUNNING = ["holding", "charging", "discharging", "soc_recovery"];
  const TRANSIT = ["starting", "connecting", "stopping"];
  const SPANS = { hour: 3600, day: 86400, week: 7 * 86400 };
  const MAX_EVENTS = 50;
  const MODE_PARAMS = {
    manual: { power_w: 0 },
    peak_shaving: { target_w: 50000, recharge_below_w: 40000, recharge_w: 10000 },
    self_consumption: { deadband_w: 100, zero_export: false },
    soc_target: { target_soc: 80, by: new Date(Date.now() + 4 * 3600e3).toISOString(), max_power_w: 20000 },
    schedule: {},
  };
  let S = null; // the site as last pushed
  let offset = 0; // server clock minus ours, s
  let me = null;
  let source = null;
  let chart = null;
  let trend = { range: "hour", step: 10, t: [], soc: [], battery_w: [], grid_w: [], pv_w: [], load_w: [] };
  let lastTrendT = 0;

  const fmtW = (w) => (w === null || w === undefined ? "—" : (w / 1000).toFixed(2) + " kW");
  const fmtTime = (ts) => new Date(ts * 1000).toLocaleTimeString();
  const now = () => Date.now() / 1000 + offset;

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function rows(table, data) {
    const frag = document.createDocumentFragment();
    for (const r of data) {
      const tr = el("tr", null, r.cls);
      for (const c of r.cells) {
        const td = c && typeof c === "object" ? el("td", c.text, c.cls) : el("td", c);
        tr.appendChild(td);
      }
      if (r.id) tr.dataset.name = r.id;
      frag.appendChild(tr);
    }
    table.replaceChildren(frag);
  }

  // -- login ---------------------------------------------------------------------------
  async function init() {
    const r = await fetch("/api/me");
    if (r.status === 401) return showLogin();
    me = await r.json();
    startLive();
  }
  function showLogin(message) {
    $("main").hidden = true;
    $("login").hidden = false;
    if (message) $("login-error").textContent = message;
  }
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await fetch("/api/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user: $("login-user").value, password: $("login-password").value }),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      $("login-error").textContent = `${r.status}: ${(body.error && body.error.message) || "refused"}`;
      return;
    }
    $("login-error").textContent = "";
    $("login-password").value = "";
    init();
  });
  $("btn-logout").addEventListener("click", async () => {
    await fetch("/api/logout", { method: "POST" });
    location.reload();
  });

  function startLive() {
    $("login").hidden = true;
    $("main").hidden = false;
    $("user").textContent = `${me.user} (${me.role})`;
    $("btn-logout").hidden = !me.login;
    const operator = me.role === "operator";
    $("controls").hidden = !operator;
    $("btn-stop").hidden = !operator;
    if (!operator) {
      $("controls").remove(); // a viewer gets no controls at all (the server refuses anyway)
      $("btn-stop").remove();
    }
    source = new EventSource("/api/stream");
    source.onopen = () => { $("conn").textContent = "live"; $("conn").className = "conn"; };
    source.onerror = () => {
      $("conn").textContent = "connection lost, retrying…";
      $("conn").className = "conn down";
      if (source.readyState === EventSource.CLOSED) showLogin("session ended: log in again");
    };
    source.onmessage = (ev) => apply(JSON.parse(ev.data));
    loadTrend("hour");
    setInterval(renderAges, 1000);
  }

  // -- live data -----------------------------------------------------------------------
  function apply(msg) {
    offset = msg.now - Date.now() / 1000;
    if (msg.kind === "snapshot") {
      S = msg;
      S.events = S.events.slice(-MAX_EVENTS);
    } else if (S) {
      if (msg.controller) S.controller = msg.controller;
      if (msg.power) S.power = msg.power;
      if (msg.devices) Object.assign(S.devices, msg.devices);
      if (msg.events) {
        S.events.push(...msg.events);
        if (S.events.length > MAX_EVENTS) S.events.splice(0, S.events.length - MAX_EVENTS);
      }
    }
    if (S) { render(); liveTrend(); }
  }

  function socValue() {
    const b = S.devices[S.roles.battery];
    const v = b && !b.stale ? b.values["802/SoC"] : null;
    if (typeof v === "number") return v;
    const st = S.controller.state;
    return st && typeof st.soc === "number" ? st.soc : null;
  }

  function render() {
    $("site").textContent = `bess-edge · ${S.site}`;
    const st = S.controller.state || {};
    const offline = S.controller.status === "offline";
    const state = offline ? "controller offline" : st.state || "unknown";
    const badge = $("state");
    badge.textContent = state;
    badge.dataset.state = st.state || "";
    badge.className = "badge " + (offline || st.state === "fault" ? "fault"
      : RUNNING.includes(st.state) ? "running" : TRANSIT.includes(st.state) ? "transit" : "stopped");
    const mode = st.mode;
    $("mode").textContent = mode ? `mode ${mode.name}${mode.source ? " (" + mode.source + ")" : ""}` : "mode —";
    $("why").textContent = st.why || (st.reason ? `reason: ${st.reason}` : "");

    const faults = st.faults || [];
    $("faults-card").classList.toggle("active", faults.length > 0);
    const fl = $("faults");
    fl.replaceChildren(...(faults.length ? faults.map((f) => el("li", `${f.code}: ${f.detail || ""}`, "fault"))
      : [el("li", "none", "muted")]));

    const soc = socValue();
    $("soc").textContent = soc === null ? "—" : soc.toFixed(1) + " %";
    $("gauge-fill").setAttribute("stroke-dasharray", `${soc === null ? 0 : soc} 100`);

    const p = S.power || {};
    rows($("power"), [
      { id: "battery", cells: ["battery (DC)", { text: fmtW(p.battery_w), cls: "num" }] },
      { id: "inverter", cells: ["inverter (AC)", { text: fmtW(p.inverter_w), cls: "num" }] },
      { id: "grid", cells: ["grid (+ import)", { text: fmtW(p.grid_w), cls: "num" }] },
      { id: "load", cells: ["load", { text: fmtW(p.load_w), cls: "num" }] },
      { id: "pv", cells: ["PV", { text: fmtW(p.pv_w), cls: "num" }] },
    ]);
    const lim = st.limits || {};
    const sp = st.setpoint || {};
    rows($("limits"), [
      { cells: ["charge limit", { text: fmtW(lim.charge_w), cls: "num" }] },
      { cells: ["discharge limit", { text: fmtW(lim.discharge_w), cls: "num" }] },
      { cells: ["limit from", lim.source || "—"] },
      { cells: ["setpoint requested", { text: fmtW(sp.requested_w), cls: "num" }] },
      { cells: ["setpoint applied", { text: fmtW(sp.applied_w), cls: "num" }] },
    ]);
    renderDevices();
    renderEvents();
  }

  function renderDevices() {
    const der = new Set(S.roles.der);
    const devs = [], ders = [];
    for (const [name, d] of Object.entries(S.devices)) {
      const age = d.ts ? Math.max(0, now() - d.ts) : null;
      const status = d.stale && d.status === "online" ? "stale" : d.status || "unknown";
      const cells = [name, { text: status, cls: "tag-" + (d.status === "online" && !d.stale ? "online" : d.status === "offline" ? "offline" : "stale") },
        { text: age === null ? "—" : age.toFixed(0) + " s", cls: "num age" }];
      if (der.has(name) || d.kind === "ieee2030_5") {
        const ctl = d.values["124/WChaMax"];
        cells.push(typeof ctl === "number" ? `fixed ${fmtW(ctl)}` : "no active control");
        cells.push(typeof d.values["802/SoC"] === "number" ? d.values["802/SoC"].toFixed(1) + " %" : "—");
        ders.push({ id: name, cls: d.stale ? "stale" : "", cells });
      } else {
        const w = d.values["701/W"] ?? d.values["802/W"] ?? d.values["203/W"] ?? d.values["103/W"];
        cells.push({ text: fmtW(typeof w === "number" ? w : null), cls: "num" });
        devs.push({ id: name, cls: d.stale ? "stale" : "", cells });
      }
    }
    rows($("devices"), devs);
    rows($("der"), ders.length ? ders : [{ cells: [{ text: "none on this site", cls: "muted" }] }]);
  }

  function renderAges() {
    if (!S) return;
    for (const tr of document.querySelectorAll("#devices tr, #der tr")) {
      const d = S.devices[tr.dataset.name];
      const cell = tr.querySelector(".age");
      if (d && d.ts && cell) cell.textContent = Math.max(0, now() - d.ts).toFixed(0) + " s";
    }
  }

  function eventText(e) {
    if (e.kind === "transition") return `${e.from} → ${e.to} (${e.reason || ""})`;
    if (e.kind === "fault") return `FAULT ${e.code}: ${e.detail || ""}`;
    if (e.kind === "refused") return `refused ${e.command || ""}: ${(e.error && e.error.message) || e.user || ""}`;
    if (e.kind === "mode") return `mode ${e.name} (${e.source || ""}) ${e.reason || ""}`;
    if (e.kind === "schedule") return e.schedule ? "schedule replaced" : "schedule cleared";
    if (e.kind === "command") return `${e.user} sent ${e.command}: ${e.ok ? "accepted" : "refused " + ((e.error && e.error.code) || "")}`;
    return `${e.kind || "event"} ${JSON.stringify(e).slice(0, 160)}`;
  }
  function renderEvents() {
    const items = S.events.slice(-MAX_EVENTS).reverse()
      .map((e) => el("li", `${e.ts ? fmtTime(e.ts) : ""} [${e.origin || ""}] ${eventText(e)}`, e.kind === "fault" ? "error" : ""));
    $("events").replaceChildren(...items);
  }

  // -- trends --------------------------------------------------------------------------
  async function loadTrend(range) {
    for (const b of document.querySelectorAll("button.range")) b.classList.toggle("on", b.dataset.range === range);
    const r = await fetch(`/api/trend?range=${range}`);
    const body = await r.json().catch(() => ({}));
    const keep = { range, step: body.step || (range === "hour" ? 10 : range === "day" ? 120 : 900) };
    for (const k of ["t", "soc", "battery_w", "grid_w", "pv_w", "load_w"]) keep[k] = (r.ok && body[k]) || [];
    if (!keep.t.length) keep.t = [];
    for (const k of ["soc", "battery_w", "grid_w", "pv_w", "load_w"]) if (keep[k].length !== keep.t.length) keep[k] = keep.t.map(() => null);
    trend = keep;
    $("trend-note").textContent = r.ok ? "" : "no history on this gateway: live values since the page opened";
    drawTrend();
  }
  document.querySelectorAll("button.range").forEach((b) => b.addEventListener("click", () => loadTrend(b.dataset.range)));

  function liveTrend() {
    const t = Math.floor(now());
    if (t - lastTrendT < trend.step) return;
    lastTrendT = t;
    const p = S.power || {};
    trend.t.push(t);
    trend.soc.push(socValue());
    trend.battery_w.push(p.inverter_w ?? p.battery_w ?? null);
    trend.grid_w.push(p.grid_w ?? null);
    trend.pv_w.push(p.pv_w ?? null);
    trend.load_w.push(p.load_w ?? null);
    const cut = t - SPANS[trend.range];
    let drop = 0;
    while (drop < trend.t.length && trend.t[drop] < cut) drop++;
    if (drop) for (const k of ["t", "soc", "battery_w", "grid_w", "pv_w", "load_w"]) trend[k].splice(0, drop);
    if (chart) chart.setData(trendData());
  }
  const kw = (a) => a.map((v) => (v === null || v === undefined ? null : v / 1000));
  function trendData() {
    return [trend.t, trend.soc, kw(trend.battery_w), kw(trend.grid_w), kw(trend.pv_w), kw(trend.load_w)];
  }
  function drawTrend() {
    const box = $("chart");
    const opts = {
      width: Math.max(300, box.clientWidth || 900), height: 260,
      scales: { x: { time: true, range: () => [now() - SPANS[trend.range], now()] }, soc: { range: [0, 100] } },
      series: [{}, { label: "SoC %", scale: "soc", stroke: "#2563eb", width: 2 },
        { label: "battery kW", scale: "kw", stroke: "#16a34a" }, { label: "grid kW", scale: "kw", stroke: "#dc2626" },
        { label: "PV kW", scale: "kw", stroke: "#ca8a04" }, { label: "load kW", scale: "kw", stroke: "#7c3aed" }],
      axes: [{}, { scale: "soc", label: "%" }, { scale: "kw", side: 1, label: "kW", grid: { show: false } }],
    };
    if (chart) chart.destroy();
    chart = new uPlot(opts, trendData(), box);
  }

  // -- commands ------------------------------------------------------------------------
  function confirmThen(text, fn) {
    const dlg = $("confirm");
    $("confirm-text").textContent = text;
    const ok = $("confirm-ok"), cancel = $("confirm-cancel");
    const done = (go) => { ok.onclick = cancel.onclick = null; dlg.close(); if (go) fn(); };
    ok.onclick = () => done(true);
    cancel.onclick = () => done(false);
    dlg.showModal();
  }
  async function send(name, body) {
    const out = $("reply");
    out.className = "reply";
    out.textContent = `${name}: sent, waiting for the reply…`;
    const r = await fetch(`/api/cmd/${name}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}),
    });
    const res = await r.json().catch(() => ({}));
    const reply = res.reply || res;
    if (reply.ok) {
      const sp = reply.setpoint ? `, applied ${fmtW(reply.setpoint.applied_w)}` : "";
      const md = reply.mode && reply.mode.name ? `, mode ${reply.mode.name}` : "";
      out.textContent = `${name}: accepted (state ${reply.state || "?"}${sp}${md})`;
      out.className = "reply ok";
    } else {
      const e = reply.error || {};
      out.textContent = `${name}: refused: ${e.code || r.status}: ${e.message || ""}`;
      out.className = "reply refused";
    }
  }
  function parseJson(id, what) {
    try { return JSON.parse($(id).value || "null"); } catch (e) {
      $("reply").textContent = `${what}: not JSON (${e.message}); nothing sent`;
      $("reply").className = "reply refused";
      return undefined;
    }
  }
  const on = (id, fn) => { const b = $(id); if (b) b.addEventListener("click", fn); };
  on("btn-stop", () => send("stop", {})); // one click, no confirmation: stopping is always safe
  on("btn-start", () => confirmThen("Start the site? (reset alarms, close contactors, hold)", () => send("start", {})));
  on("btn-hold", () => confirmThen("Hold (power 0, stay connected)?", () => send("hold", {})));
  on("btn-reset", () => confirmThen("Reset latched faults?", () => send("reset", {})));
  on("btn-charge", () => {
    const w = Number($("charge-w").value);
    confirmThen(`Charge at ${fmtW(w)}?`, () => send("charge", { power_w: w }));
  });
  on("btn-discharge", () => {
    const w = Number($("discharge-w").value);
    confirmThen(`Discharge at ${fmtW(w)}?`, () => send("discharge", { power_w: w }));
  });
  const modeSel = $("mode-name");
  if (modeSel) {
    const fill = () => { $("mode-params").value = JSON.stringify(MODE_PARAMS[modeSel.value] || {}); };
    modeSel.addEventListener("change", fill);
    fill();
  }
  on("btn-mode", () => {
    const params = parseJson("mode-params", "mode parameters");
    if (params === undefined) return;
    const name = modeSel.value;
    if (name === "schedule") {
      confirmThen("Hand control back to the schedule?", () => send("mode", { mode: "schedule" }));
      return;
    }
    confirmThen(`Switch to mode ${name} with ${JSON.stringify(params)}?`, () => send("mode", { mode: name, params }));
  });
  on("btn-schedule", () => {
    const schedule = parseJson("schedule", "schedule");
    if (schedule === undefined) return;
    confirmThen("Replace the schedule?", () => send("schedule", { schedule }));
  });
  on("btn-schedule-clear", () => confirmThen("Clear the schedule?", () => send("schedule", { schedule: null })));

  init();
})();
