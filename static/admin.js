// poe2openai admin page: plain JavaScript, no build step. All URLs are relative so the page
// works behind a path prefix. Data is only ever put in the page with textContent.
"use strict";

const STRINGS = {
  en: {
    save: "Save", saving: "Saving…", saved: "Saved", unsaved: "Unsaved changes", loadFailed: "Could not load",
    saveFailed: "Save failed", enable: "Apply my rules: hide, rename and add models",
    enableHint: "When off, clients see Poe's full list and the names as Poe spells them. Per-model options always apply.",
    search: "Search models", all: "All", shown: "Shown", hidden: "Hidden", renamed: "Renamed", custom: "Custom",
    refresh: "Refresh Poe list", refreshed: "Poe list refreshed", addId: "Custom bot id, e.g. my-private-bot",
    addOwner: "Owner (optional)", add: "Add custom model", empty: "No model matches.", show: "Show",
    publicName: "Public name", reset: "Reset", remove: "Delete", tools: "Tools", systemAsUser: "System as user",
    flags: "Reasoning flags", customTag: "custom", duplicate: "A model with this id already exists",
    confirmDelete: "Delete custom model {id}?",
    defaultPassword: "The admin password is still the default 123456. Set ADMIN_PASSWORD before exposing this page.",
    leave: "You have unsaved changes.",
    viewModels: "Models", viewTraffic: "Traffic", trafficModel: "Model", allModels: "All models",
    chartRequests: "Requests per minute", chartTtft: "Time to first token, p50 and p95 (s)",
    chartErrors: "Errors per minute", chartStreams: "Open streams (most at once)",
    trafficHint: "The last hour, one bar per minute; refreshes every 5 seconds.",
    processes: "{n} gateway processes", notSent: "(not sent to Poe)", minutesAgo: "60 min ago", now: "now",
  },
  zh: {
    save: "保存", saving: "保存中…", saved: "已保存", unsaved: "有未保存的更改", loadFailed: "載入失敗",
    saveFailed: "保存失敗", enable: "啟用自定義規則：隱藏、重命名與新增模型",
    enableHint: "關閉時，客戶端看到 Poe 的完整列表與原始名稱。每個模型的選項始終生效。",
    search: "搜尋模型", all: "全部", shown: "顯示", hidden: "隱藏", renamed: "已重命名", custom: "自訂",
    refresh: "重新取得 Poe 列表", refreshed: "已更新 Poe 列表", addId: "自訂 Bot ID，例如 my-private-bot",
    addOwner: "擁有者（可選）", add: "新增自訂模型", empty: "沒有符合的模型。", show: "顯示",
    publicName: "對外名稱", reset: "重設", remove: "刪除", tools: "工具調用", systemAsUser: "System 轉 User",
    flags: "推理參數旗標", customTag: "自訂", duplicate: "已有相同 ID 的模型",
    confirmDelete: "刪除自訂模型 {id}？",
    defaultPassword: "管理密碼仍是預設的 123456。對外開放前請設定 ADMIN_PASSWORD。",
    leave: "有未保存的更改。",
    viewModels: "模型", viewTraffic: "流量", trafficModel: "模型", allModels: "全部模型",
    chartRequests: "每分鐘請求數", chartTtft: "首個 token 時間 p50 與 p95（秒）",
    chartErrors: "每分鐘錯誤數", chartStreams: "同時開啟的串流（最多）",
    trafficHint: "最近一小時，每分鐘一柱；每 5 秒自動更新。",
    processes: "{n} 個閘道程序", notSent: "（未送往 Poe）", minutesAgo: "60 分鐘前", now: "現在",
  },
};

let lang = localStorage.getItem("poe2openai.lang") ||
  ((navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en");
const t = (key) => (STRINGS[lang] && STRINGS[lang][key]) || STRINGS.en[key] || key;

const state = { config: null, poeModels: [], filter: "all", query: "", dirty: false, saving: false };
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, "");
    else if (v !== false && v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

function applyLanguage() {
  document.documentElement.lang = lang === "zh" ? "zh-Hant" : "en";
  $("#lang").textContent = lang === "zh" ? "English" : "中文";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
  render();
  renderTraffic();
  setStatus(state.dirty ? "dirty" : "", state.dirty ? t("unsaved") : "");
}

function setStatus(kind, text) {
  const s = $("#status");
  s.className = kind;
  s.textContent = text;
}

function markDirty() {
  state.dirty = true;
  $("#save").disabled = false;
  setStatus("dirty", t("unsaved"));
}

function rule(id) {
  return state.config.models[id.toLowerCase()] || null;
}

function setRule(id, key, value) {
  const k = id.toLowerCase();
  const entry = { ...(state.config.models[k] || {}) };
  if (value === null || value === undefined || value === "" || value === false && key !== "enable") delete entry[key];
  else entry[key] = value;
  if (key === "enable" && value === true) delete entry.enable;
  if (Object.keys(entry).length) state.config.models[k] = entry;
  else delete state.config.models[k];
  markDirty();
}

function allModels() {
  const rows = state.poeModels.map((m) => ({ ...m, custom: false }));
  const known = new Set(rows.map((m) => m.id.toLowerCase()));
  for (const c of state.config.custom_models) {
    if (!known.has(c.id.toLowerCase())) rows.push({ id: c.id, name: c.id, owned_by: c.owned_by || "poe", custom: true });
  }
  return rows;
}

function classify(m) {
  const r = rule(m.id) || {};
  return { hidden: r.enable === false, renamed: !!r.mapping, custom: m.custom };
}

function matches(m) {
  const c = classify(m);
  if (state.filter === "shown" && c.hidden) return false;
  if (state.filter === "hidden" && !c.hidden) return false;
  if (state.filter === "renamed" && !c.renamed) return false;
  if (state.filter === "custom" && !c.custom) return false;
  if (!state.query) return true;
  const r = rule(m.id) || {};
  const hay = `${m.id} ${m.name || ""} ${m.owned_by || ""} ${r.mapping || ""}`.toLowerCase();
  return hay.includes(state.query);
}

function row(m) {
  const r = rule(m.id) || {};
  const hidden = r.enable === false;
  const show = el("input", { type: "checkbox", "aria-label": `${t("show")} ${m.id}`, class: "show" });
  show.checked = !hidden;
  show.addEventListener("change", () => { setRule(m.id, "enable", show.checked ? null : false); render(); });

  const name = el("div", { class: "name" },
    el("span", { class: "id", text: m.id }),
    m.custom ? el("span", { class: "tag", text: t("customTag") }) : null,
    el("div", { class: "sub", text: [m.name !== m.id ? m.name : "", m.owned_by].filter(Boolean).join(" · ") }));

  const rename = el("input", { type: "text", placeholder: t("publicName"), "aria-label": `${t("publicName")} ${m.id}`,
    class: "mapping", value: r.mapping || "" });
  rename.addEventListener("input", () => setRule(m.id, "mapping", rename.value.trim() || null));
  const reset = el("button", { type: "button", text: t("reset"), class: "ghost reset",
    onclick: () => { rename.value = ""; setRule(m.id, "mapping", null); } });

  const mode = el("select", { "aria-label": `${t("tools")} ${m.id}`, class: "tool-mode" },
    ...["xml", "native", "auto"].map((v) => el("option", { value: v, text: v })));
  mode.value = r.tool_mode || "xml";
  mode.addEventListener("change", () => setRule(m.id, "tool_mode", mode.value === "xml" ? null : mode.value));
  const asUser = el("input", { type: "checkbox", class: "system-as-user" });
  asUser.checked = !!r.replace_response;
  asUser.addEventListener("change", () => setRule(m.id, "replace_response", asUser.checked || null));
  const flags = el("input", { type: "checkbox", class: "reasoning-flags" });
  flags.checked = !!r.reasoning_flags;
  flags.addEventListener("change", () => setRule(m.id, "reasoning_flags", flags.checked || null));

  const opts = el("div", { class: "opts" },
    el("label", {}, el("span", { text: t("tools") }), mode),
    el("label", {}, asUser, el("span", { text: t("systemAsUser") })),
    el("label", {}, flags, el("span", { text: t("flags") })),
    m.custom ? el("button", { type: "button", class: "danger delete", text: t("remove"), onclick: () => {
      if (!confirm(t("confirmDelete").replace("{id}", m.id))) return;
      state.config.custom_models = state.config.custom_models.filter((c) => c.id !== m.id);
      delete state.config.models[m.id.toLowerCase()];
      markDirty();
      render();
    } }) : null);

  return el("div", { class: `row${hidden ? " hidden-model" : ""}`, "data-id": m.id },
    show, name, el("div", { class: "rename" }, rename, reset), opts);
}

function render() {
  if (!state.config) return;
  const models = allModels();
  const counts = { all: models.length, shown: 0, hidden: 0, renamed: 0, custom: 0 };
  for (const m of models) {
    const c = classify(m);
    if (c.hidden) counts.hidden++; else counts.shown++;
    if (c.renamed) counts.renamed++;
    if (c.custom) counts.custom++;
  }
  for (const [k, v] of Object.entries(counts)) $(`#count-${k}`).textContent = String(v);
  const list = $("#models");
  const visible = models.filter(matches);
  // keep the focused input when re-rendering while typing elsewhere
  list.replaceChildren(...visible.map(row));
  $("#empty").hidden = visible.length > 0;
  $("#enable").checked = !!state.config.enable;
}

async function api(path, options = {}) {
  const resp = await fetch(path, { credentials: "same-origin", headers: { "Content-Type": "application/json" }, ...options });
  let body = null;
  try { body = await resp.json(); } catch (e) { body = null; }
  if (!resp.ok) {
    const err = body && body.error ? body.error : { message: `HTTP ${resp.status}` };
    throw Object.assign(new Error(err.message), { param: err.param });
  }
  return body;
}

function showBanner(id, text) {
  const node = $(id);
  node.hidden = !text;
  node.textContent = text || "";
}

async function load() {
  try {
    const s = await api("admin/api/state");
    state.config = s.config;
    state.config.models = state.config.models || {};
    state.config.custom_models = state.config.custom_models || [];
    state.poeModels = s.poe_models;
    showBanner("#config-error", s.config_error);
    showBanner("#models-error", s.models_error);
    state.dirty = false;
    $("#save").disabled = true;
    render();
  } catch (e) {
    setStatus("error", `${t("loadFailed")}: ${e.message}`);
  }
}

async function save() {
  if (state.saving) return;
  state.saving = true;
  $("#save").disabled = true;
  setStatus("", t("saving"));
  try {
    const result = await api("admin/api/config", { method: "PUT", body: JSON.stringify(state.config) });
    state.config = result.config;
    state.dirty = false;
    showBanner("#config-error", "");
    setStatus("ok", t("saved"));
    render();
  } catch (e) {
    // keep every edit: nothing is reloaded after a failed save
    $("#save").disabled = false;
    setStatus("error", `${t("saveFailed")}: ${e.message}`);
  } finally {
    state.saving = false;
  }
}

// --- the Traffic view: SVG drawn from the numbers, no library, nothing inline -------------

const SVG = "http://www.w3.org/2000/svg";
const traffic = { data: null, model: "*", timer: null };

function svgEl(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

const W = 600, H = 150, LEFT = 34, BOTTOM = 16, TOP = 6;

function frame(svg, max, fmt) {
  const nodes = [];
  for (const f of [0, 0.5, 1]) {
    const y = TOP + (H - TOP - BOTTOM) * (1 - f);
    nodes.push(svgEl("line", { class: "grid", x1: LEFT, x2: W, y1: y, y2: y }));
    nodes.push(svgEl("text", { class: "axis", x: LEFT - 4, y: y + 4, "text-anchor": "end" }, fmt(max * f)));
  }
  nodes.push(svgEl("text", { class: "axis", x: LEFT, y: H - 3 }, t("minutesAgo")));
  nodes.push(svgEl("text", { class: "axis", x: W, y: H - 3, "text-anchor": "end" }, t("now")));
  svg.replaceChildren(...nodes);
}

function clock(ts) {
  return new Date(ts * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function bars(id, values, minutes, kind) {
  const svg = $(`#${id} svg`);
  const max = Math.max(1, ...values);
  frame(svg, max, (v) => (Number.isInteger(v) ? String(v) : ""));
  const step = (W - LEFT) / values.length;
  values.forEach((v, i) => {
    const h = (H - TOP - BOTTOM) * (v / max);
    const bar = svgEl("rect", { class: `bar ${kind}`, x: LEFT + i * step + 1, y: H - BOTTOM - h,
      width: Math.max(1, step - 2), height: h, "data-value": v, "data-minute": minutes[i] });
    bar.append(svgEl("title", {}, `${clock(minutes[i])}: ${v}`));
    svg.append(bar);
  });
  svg.dataset.total = String(values.reduce((a, b) => a + b, 0));
}

function lines(id, series, minutes) {
  const svg = $(`#${id} svg`);
  const all = series.flatMap((s) => s.values.filter((v) => v !== null));
  const max = Math.max(0.1, ...all);
  frame(svg, max, (v) => v.toFixed(max < 3 ? 2 : 1));
  const step = (W - LEFT) / minutes.length;
  for (const s of series) {
    const points = [];
    s.values.forEach((v, i) => {
      if (v === null) return;
      const x = LEFT + i * step + step / 2;
      const y = H - BOTTOM - (H - TOP - BOTTOM) * (v / max);
      points.push(`${x.toFixed(1)},${y.toFixed(1)}`);
      const dot = svgEl("circle", { class: `dot ${s.kind}`, cx: x, cy: y, r: 2.5, "data-value": v });
      dot.append(svgEl("title", {}, `${clock(minutes[i])} ${s.kind}: ${v}s`));
      svg.append(dot);
    });
    if (points.length > 1) svg.append(svgEl("polyline", { class: `line ${s.kind}`, points: points.join(" ") }));
  }
  svg.dataset.points = String(all.length);
}

function renderTraffic() {
  const d = traffic.data;
  if (!d) return;
  const select = $("#traffic-model");
  const names = Object.keys(d.models).filter((n) => n !== "*").sort();
  const options = [["*", t("allModels")], ...names.map((n) => [n, n === "-" ? t("notSent") : n])];
  if (!d.models[traffic.model]) traffic.model = "*";
  select.replaceChildren(...options.map(([v, label]) => el("option", { value: v, text: label })));
  select.value = traffic.model;
  const zeros = d.minutes.map(() => 0);
  const m = d.models[traffic.model] || { requests: zeros, errors: zeros, p50: zeros.map(() => null), p95: zeros.map(() => null) };
  bars("chart-requests", m.requests, d.minutes, "requests");
  lines("chart-ttft", [{ kind: "p50", values: m.p50 }, { kind: "p95", values: m.p95 }], d.minutes);
  bars("chart-errors", m.errors, d.minutes, "errors");
  bars("chart-streams", d.open_streams, d.minutes, "streams");
  $("#traffic-note").textContent = d.processes > 1 ? t("processes").replace("{n}", d.processes) : "";
}

async function loadTraffic() {
  try {
    traffic.data = await api("admin/api/traffic");
    renderTraffic();
  } catch (e) {
    setStatus("error", `${t("loadFailed")}: ${e.message}`);
  }
}

function showView(name) {
  for (const b of document.querySelectorAll("[data-view]")) b.classList.toggle("active", b.dataset.view === name);
  $("#models-view").hidden = name !== "models";
  $("#traffic-view").hidden = name !== "traffic";
  clearInterval(traffic.timer);
  traffic.timer = null;
  if (name === "traffic") {
    loadTraffic();
    traffic.timer = setInterval(loadTraffic, 5000);
  }
}

function init() {
  $("#save").addEventListener("click", save);
  for (const b of document.querySelectorAll("[data-view]")) b.addEventListener("click", () => showView(b.dataset.view));
  $("#traffic-model").addEventListener("change", (ev) => { traffic.model = ev.target.value; renderTraffic(); });
  $("#lang").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem("poe2openai.lang", lang);
    applyLanguage();
  });
  $("#enable").addEventListener("change", (ev) => { state.config.enable = ev.target.checked; markDirty(); });
  $("#search").addEventListener("input", (ev) => { state.query = ev.target.value.trim().toLowerCase(); render(); });
  for (const b of document.querySelectorAll("[data-filter]")) {
    b.addEventListener("click", () => {
      state.filter = b.dataset.filter;
      for (const o of document.querySelectorAll("[data-filter]")) o.classList.toggle("active", o === b);
      render();
    });
  }
  $("#refresh").addEventListener("click", async () => {
    try {
      const r = await api("admin/api/refresh", { method: "POST", body: "{}" });
      state.poeModels = r.poe_models;
      showBanner("#models-error", "");
      render();
      if (!state.dirty) setStatus("ok", t("refreshed"));
    } catch (e) {
      showBanner("#models-error", e.message);
    }
  });
  $("#add-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = $("#add-id").value.trim();
    const owner = $("#add-owner").value.trim();
    if (!id) return;
    if (allModels().some((m) => m.id.toLowerCase() === id.toLowerCase())) {
      setStatus("error", t("duplicate"));
      return;
    }
    const entry = { id, created: Math.floor(Date.now() / 1000) };
    if (owner) entry.owned_by = owner;
    state.config.custom_models.push(entry);
    $("#add-id").value = "";
    $("#add-owner").value = "";
    markDirty();
    render();
  });
  window.addEventListener("beforeunload", (ev) => {
    if (state.dirty) { ev.preventDefault(); ev.returnValue = t("leave"); }
  });
  applyLanguage();
  load();
}

init();
