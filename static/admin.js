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
    viewKeys: "Keys", viewUsage: "Usage",
    teamOff: "Team mode is off: every client sends its own Poe key.",
    teamOffHow: "To turn it on, set POE_API_KEYS or add a Poe key below; clients then use the keys issued here.",
    tokenTitle: "The new key", copy: "Copy", copied: "Copied", copyFailed: "Select it and copy it by hand",
    dismiss: "I have copied it", tokenOnce: "Copy it now: it will not be shown again. The gateway keeps only its hash.",
    clientKeys: "Client keys", newKey: "New client key", noClientKeys: "No client key yet.",
    clientKeysHint: "Keys this gateway issues to people and tools. Points are estimated from the price until the sync with Poe's points history confirms them.",
    label: "Label", models: "Models", modelsHint: "all; or e.g. gpt-*, claude-sonnet-4.5", rpm: "Requests per minute",
    budgetDay: "Daily budget (points)", budgetMonth: "Monthly budget (points)", expires: "Valid until (date)",
    noLimit: "no limit", createKey: "Create key", saveKey: "Save changes", cancel: "Cancel", edit: "Edit", revoke: "Revoke",
    confirmRevoke: "Revoke the key {label}? Clients using it get 401 from now on.",
    keyCreated: "Key created", keySaved: "Key saved", keyRevoked: "Key revoked",
    status_active: "active", status_expired: "expired", status_revoked: "revoked",
    allModelsAllowed: "all models", rpmShort: "{n} per minute", expiresOn: "valid until {d}", revokedOn: "revoked {t}",
    today: "Today (UTC)", thisMonth: "This month (UTC)", ofBudget: "{used} / {budget} points",
    noBudget: "{used} points, no budget", estimatedPart: "≈{n} estimated", estimatedShort: "≈{n} est.", counts: "requests: {r} · tokens: {k}",
    poolKeys: "Poe keys (the pool)", noPoolKeys: "The gateway holds no Poe key.", poeKey: "Poe API key",
    poolLabelHint: "e.g. team account", addPoolKey: "Add Poe key", poolAdded: "Poe key added", poolRemoved: "Poe key removed",
    poolEnabled: "Poe key enabled again", confirmRemovePool: "Stop using the Poe key {label}?",
    sync: "Sync with Poe now", syncing: "Syncing…", syncDone: "Synced with Poe ({n} matched)",
    syncFailed: "Sync failed", lastSynced: "Last sync with Poe: {t}", neverSynced: "Not synced with Poe yet",
    health_healthy: "healthy", health_disabled: "disabled", health_out_of_points: "out of points",
    health_cooling_down: "cooling down", coolingFor: "for {s} s more", sourceEnv: "from POE_API_KEYS",
    sourceAdmin: "added on this page", balance: "Balance", balanceOf: "{n} points", balanceUnknown: "not checked yet",
    checkedAt: "checked {t}", spend7d: "Spent in 7 days", topBots: "Top bots", noSpend: "none",
    enableKey: "Re-enable", removeKey: "Remove",
    period: "Period", metric: "Metric", days7: "7 days", days30: "30 days", days90: "90 days",
    metricRequests: "Requests", metricTokens: "Tokens", metricPoints: "Points",
    chartTotal: "{metric} per day", chartKeys: "{metric} per client key", chartModels: "{metric} per model",
    chartPool: "Spend per Poe key, as Poe reports it (points)", confirmed: "confirmed by Poe", estimated: "estimated",
    others: "others", usageHint: "One bar per UTC day. Only requests made with issued keys are counted.",
    usageNote: "Estimates use {n} points per US dollar (POINTS_PER_USD).", byKey: "Per client key",
    byModel: "Per model", colKey: "Key", colModel: "Model", total: "Total", nothing: "Nothing recorded in this period.",
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
    viewKeys: "金鑰", viewUsage: "用量",
    teamOff: "團隊模式未啟用：每個客戶端使用自己的 Poe 金鑰。",
    teamOffHow: "要啟用，請設定 POE_API_KEYS 或在下方新增 Poe 金鑰；之後客戶端改用這裡發出的金鑰。",
    tokenTitle: "新金鑰", copy: "複製", copied: "已複製", copyFailed: "請手動選取並複製",
    dismiss: "我已複製", tokenOnce: "請立即複製：之後不會再顯示。閘道只保存它的雜湊值。",
    clientKeys: "客戶端金鑰", newKey: "新增客戶端金鑰", noClientKeys: "尚未發出任何金鑰。",
    clientKeysHint: "閘道發給成員與工具的金鑰。點數先依價格估算，與 Poe 點數紀錄同步後以實際花費為準。",
    label: "名稱", models: "可用模型", modelsHint: "留空為全部；例如 gpt-*, claude-sonnet-4.5", rpm: "每分鐘請求數",
    budgetDay: "每日預算（點數）", budgetMonth: "每月預算（點數）", expires: "有效至（日期）",
    noLimit: "不限", createKey: "建立金鑰", saveKey: "保存更改", cancel: "取消", edit: "編輯", revoke: "撤銷",
    confirmRevoke: "撤銷金鑰 {label}？使用它的客戶端此後會收到 401。",
    keyCreated: "已建立金鑰", keySaved: "已保存金鑰", keyRevoked: "已撤銷金鑰",
    status_active: "使用中", status_expired: "已過期", status_revoked: "已撤銷",
    allModelsAllowed: "全部模型", rpmShort: "每分鐘 {n} 次", expiresOn: "有效至 {d}", revokedOn: "撤銷於 {t}",
    today: "今日（UTC）", thisMonth: "本月（UTC）", ofBudget: "{used} / {budget} 點",
    noBudget: "{used} 點，無預算", estimatedPart: "約 {n} 點為估算", estimatedShort: "估算 {n}", counts: "{r} 次請求 · {k} 個 token",
    poolKeys: "Poe 金鑰（金鑰池）", noPoolKeys: "閘道目前沒有 Poe 金鑰。", poeKey: "Poe API 金鑰",
    poolLabelHint: "例如：團隊帳號", addPoolKey: "新增 Poe 金鑰", poolAdded: "已新增 Poe 金鑰", poolRemoved: "已移除 Poe 金鑰",
    poolEnabled: "已重新啟用 Poe 金鑰", confirmRemovePool: "停止使用 Poe 金鑰 {label}？",
    sync: "立即與 Poe 同步", syncing: "同步中…", syncDone: "已與 Poe 同步：對上 {n} 筆請求",
    syncFailed: "同步失敗", lastSynced: "上次與 Poe 同步：{t}", neverSynced: "尚未與 Poe 同步",
    health_healthy: "正常", health_disabled: "已停用", health_out_of_points: "點數用盡",
    health_cooling_down: "冷卻中", coolingFor: "還有 {s} 秒", sourceEnv: "來自 POE_API_KEYS",
    sourceAdmin: "在此頁新增", balance: "餘額", balanceOf: "{n} 點", balanceUnknown: "尚未查詢",
    checkedAt: "查詢於 {t}", spend7d: "7 日花費", topBots: "花費最多的 Bot", noSpend: "無",
    enableKey: "重新啟用", removeKey: "移除",
    period: "期間", metric: "指標", days7: "7 天", days30: "30 天", days90: "90 天",
    metricRequests: "請求數", metricTokens: "Token 數", metricPoints: "點數",
    chartTotal: "每日{metric}", chartKeys: "各客戶端金鑰的{metric}", chartModels: "各模型的{metric}",
    chartPool: "各 Poe 金鑰的花費（Poe 回報的點數）", confirmed: "Poe 已確認", estimated: "估算",
    others: "其他", usageHint: "每個 UTC 日一柱。只計算使用發出金鑰的請求。",
    usageNote: "估算依據：每美元 {n} 點（POINTS_PER_USD）。", byKey: "各客戶端金鑰",
    byModel: "各模型", colKey: "金鑰", colModel: "模型", total: "合計", nothing: "此期間沒有紀錄。",
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
  for (const node of document.querySelectorAll("[data-i18n-aria]")) node.setAttribute("aria-label", t(node.dataset.i18nAria));
  render();
  renderTraffic();
  renderKeys();
  renderUsage();
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

function frame(svg, max, fmt, from = t("minutesAgo"), to = t("now")) {
  const nodes = [];
  for (const f of [0, 0.5, 1]) {
    const y = TOP + (H - TOP - BOTTOM) * (1 - f);
    nodes.push(svgEl("line", { class: "grid", x1: LEFT, x2: W, y1: y, y2: y }));
    nodes.push(svgEl("text", { class: "axis", x: LEFT - 4, y: y + 4, "text-anchor": "end" }, fmt(max * f)));
  }
  nodes.push(svgEl("text", { class: "axis", x: LEFT, y: H - 3 }, from));
  nodes.push(svgEl("text", { class: "axis", x: W, y: H - 3, "text-anchor": "end" }, to));
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

// --- shared by the Keys and Usage views -----------------------------------------------------

const locale = () => (lang === "zh" ? "zh-TW" : "en");
const num = (n) => new Intl.NumberFormat(locale()).format(n);
const fill = (key, values) => Object.entries(values).reduce((s, [k, v]) => s.replace(`{${k}}`, v), t(key));
const when = (ts) => new Date(ts * 1000).toLocaleString(locale(), { dateStyle: "medium", timeStyle: "short" });
const pad = (n) => String(n).padStart(2, "0");
const sum = (values) => values.reduce((a, b) => a + b, 0);

function clearErrors(form) {
  for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

// An API error goes next to the field it names (error.param), else below the form.
function showError(form, err) {
  const named = err.param ? form.querySelector(`.field-error[data-for="${CSS.escape(err.param)}"]`) : null;
  const target = named || form.querySelector('.field-error[data-for=""]');
  target.textContent = err.message;
  const input = err.param && form.elements[err.param];
  if (named && input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

// --- the Keys view: client keys and the pool of Poe keys ------------------------------------

const keys = { data: null, editing: null, createForm: null };

const KEY_FIELDS = [
  { name: "label", type: "text", label: "label" },
  { name: "models", type: "text", label: "models", placeholder: "modelsHint" },
  { name: "rpm", type: "number", label: "rpm", placeholder: "noLimit", min: 1 },
  { name: "budget_day", type: "number", label: "budgetDay", placeholder: "noLimit", min: 0 },
  { name: "budget_month", type: "number", label: "budgetMonth", placeholder: "noLimit", min: 0 },
  { name: "expires", type: "date", label: "expires" },
];

// A key made "valid until" a date works through that local day: it expires at the next midnight.
function lastDay(expires) {
  const d = new Date(expires * 1000 - 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

function expiryOf(date) {
  const [y, m, d] = date.split("-").map(Number);
  return new Date(y, m - 1, d + 1).getTime() / 1000;
}

function fieldText(key, name) {
  const v = key ? key[name] : null;
  if (v === null || v === undefined) return "";
  if (name === "models") return v.join(", ");
  if (name === "expires") return lastDay(v);
  return String(v);
}

function fieldValue(name, text) {
  const s = text.trim();
  if (name === "label") return s;
  if (name === "models") return s.split(/[\s,]+/).filter(Boolean);
  if (name === "expires") return s ? expiryOf(s) : null;
  return s === "" ? null : Number(s);  // the API says what is wrong with it
}

function keyForm(key) {
  const form = el("form", { class: "key-form", novalidate: true, autocomplete: "off", "data-key": key ? key.id : "new" });
  for (const f of KEY_FIELDS) {
    const input = el("input", { type: f.type, name: f.name, min: f.min, step: f.min === undefined ? null : 1,
      inputmode: f.type === "number" ? "numeric" : null, placeholder: f.placeholder ? t(f.placeholder) : null,
      "data-i18n-placeholder": f.placeholder || null, spellcheck: f.name === "models" ? "false" : null });
    input.value = fieldText(key, f.name);
    form.append(el("label", { class: `field field-${f.name}` },
      el("span", { text: t(f.label), "data-i18n": f.label }), input, el("span", { class: "field-error", "data-for": f.name })));
  }
  form.append(el("div", { class: "form-actions" },
    el("button", { type: "submit", class: "primary", text: t(key ? "saveKey" : "createKey"), "data-i18n": key ? "saveKey" : "createKey" }),
    key ? el("button", { type: "button", class: "ghost cancel", text: t("cancel"), "data-i18n": "cancel",
      onclick: () => { keys.editing = null; renderKeys(); } }) : null,
    el("span", { class: "field-error", "data-for": "" })));
  form.addEventListener("submit", (ev) => { ev.preventDefault(); submitKey(form, key); });
  return form;
}

async function submitKey(form, key) {
  clearErrors(form);
  const body = {};
  for (const f of KEY_FIELDS) {
    const text = form.elements[f.name].value;
    // an edit sends what changed (an expiry set to the second on the API stays as it was)
    if (key ? text.trim() === fieldText(key, f.name) : f.name !== "label" && !text.trim()) continue;
    body[f.name] = fieldValue(f.name, text);
  }
  try {
    if (key) {
      if (Object.keys(body).length) {
        await api(`admin/api/keys/${encodeURIComponent(key.id)}`, { method: "PATCH", body: JSON.stringify(body) });
      }
      keys.editing = null;
      setStatus("ok", t("keySaved"));
    } else {
      const made = await api("admin/api/keys", { method: "POST", body: JSON.stringify(body) });
      form.reset();
      showToken(made.key, made.token);
      setStatus("ok", t("keyCreated"));
    }
    await loadKeys();
  } catch (e) {
    showError(form, e);
  }
}

function showToken(key, token) {
  $("#token-label").textContent = key.label;
  $("#token-value").textContent = token;
  $("#token-copy").textContent = t("copy");
  $("#token-banner").hidden = false;
  $("#token-banner").scrollIntoView({ block: "nearest" });
}

function hideToken() {
  $("#token-value").textContent = "";
  $("#token-banner").hidden = true;
}

async function copyToken() {
  const node = $("#token-value");
  const button = $("#token-copy");
  try {
    await navigator.clipboard.writeText(node.textContent);
    button.textContent = t("copied");
    button.dataset.copied = "true";
  } catch (e) {
    const range = document.createRange();  // selected, for Ctrl+C
    range.selectNodeContents(node);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    button.textContent = t("copyFailed");
  }
}

function budgetBar(confirmed, estimated, budget) {
  const width = (v) => (budget > 0 ? Math.min(100, (v / budget) * 100) : v > 0 || budget === 0 ? 100 : 0);
  const used = width(confirmed);
  const guess = Math.min(100 - used, width(estimated));
  const svg = svgEl("svg", { class: "budget-bar", viewBox: "0 0 100 6", preserveAspectRatio: "none", "aria-hidden": "true" });
  svg.append(svgEl("rect", { class: "track", x: 0, y: 0, width: 100, height: 6 }),
    svgEl("rect", { class: "used", x: 0, y: 0, width: used, height: 6 }),
    svgEl("rect", { class: "estimated", x: used, y: 0, width: guess, height: 6 }));
  return svg;
}

function usageBlock(period, u, budget) {
  const over = budget !== null && u.points >= budget;
  const amount = budget === null ? fill("noBudget", { used: num(u.points) })
    : fill("ofBudget", { used: num(u.points), budget: num(budget) });
  return el("div", { class: `usage${over ? " over" : ""}`, "data-period": period, "data-requests": u.requests,
    "data-tokens": u.tokens, "data-points": u.points, "data-estimated": u.estimated_points, "data-budget": budget ?? "" },
  el("div", { class: "usage-head" },
    el("span", { class: "period", text: t(period === "day" ? "today" : "thisMonth") }),
    el("span", { class: "amount", text: amount })),
  budget === null ? null : budgetBar(u.points - u.estimated_points, u.estimated_points, budget),
  u.estimated_points ? el("div", { class: "estimated", text: fill("estimatedPart", { n: num(u.estimated_points) }) }) : null,
  el("div", { class: "sub", text: fill("counts", { r: num(u.requests), k: num(u.tokens) }) }));
}

function keyRow(k) {
  const status = k.status;  // by the gateway's clock
  const facts = [
    k.models.length ? k.models.join(", ") : t("allModelsAllowed"),
    k.rpm !== null ? fill("rpmShort", { n: num(k.rpm) }) : null,
    k.revoked !== null ? fill("revokedOn", { t: when(k.revoked) })
      : k.expires !== null ? fill("expiresOn", { d: lastDay(k.expires) }) : null,
  ].filter(Boolean);
  const actions = status === "revoked" ? null : el("div", { class: "key-actions" },
    el("button", { type: "button", class: "edit", text: t("edit"), onclick: () => { keys.editing = k.id; renderKeys(); } }),
    el("button", { type: "button", class: "danger revoke", text: t("revoke"), onclick: () => revokeKey(k) }));
  const row = el("div", { class: `key-row ${status}`, "data-id": k.id, "data-status": status },
    el("div", { class: "key-main" },
      el("div", { class: "title" }, el("span", { class: "key-label", text: k.label }),
        el("span", { class: `badge ${status}`, text: t(`status_${status}`) })),
      el("div", { class: "sub mono", text: k.id }),
      el("div", { class: "sub facts", text: facts.join(" · ") })),
    el("div", { class: "key-usage" },
      usageBlock("day", k.usage.day, k.budget_day), usageBlock("month", k.usage.month, k.budget_month)),
    actions);
  if (keys.editing === k.id) row.append(keyForm(k));
  return row;
}

async function revokeKey(k) {
  if (!confirm(fill("confirmRevoke", { label: k.label }))) return;
  try {
    await api(`admin/api/keys/${encodeURIComponent(k.id)}`, { method: "DELETE", body: "{}" });
    setStatus("ok", t("keyRevoked"));
    await loadKeys();
  } catch (e) {
    showBanner("#keys-error", e.message);
  }
}

function poolRow(p) {
  const health = [t(`health_${p.health}`)];
  if (p.health === "disabled" && p.disabled_reason) health.push(p.disabled_reason);
  if (p.health === "cooling_down") health.push(fill("coolingFor", { s: num(Math.ceil(p.cooling_seconds)) }));
  const bots = Object.entries(p.spend_by_bot_7d).slice(0, 3).map(([bot, points]) => `${bot} ${num(points)}`);
  const balance = p.balance === null ? t("balanceUnknown") : fill("balanceOf", { n: num(p.balance) });
  const actions = el("div", { class: "key-actions" },
    p.health === "disabled" ? el("button", { type: "button", class: "enable", text: t("enableKey"), onclick: () => poolAction(p, "enable") }) : null,
    p.source === "admin" ? el("button", { type: "button", class: "danger remove", text: t("removeKey"), onclick: () => poolAction(p, "remove") }) : null);
  return el("div", { class: `key-row pool-row ${p.health}`, "data-id": p.id, "data-health": p.health, "data-source": p.source,
    "data-balance": p.balance ?? "", "data-spend": p.spend_7d },
  el("div", { class: "key-main" },
    el("div", { class: "title" }, el("span", { class: "key-label", text: p.label }),
      el("span", { class: `badge ${p.health}`, text: health[0] })),
    el("div", { class: "sub mono", text: p.id }),
    el("div", { class: "sub facts", text: [t(p.source === "env" ? "sourceEnv" : "sourceAdmin"), ...health.slice(1)].join(" · ") })),
  el("div", { class: "key-usage" },
    el("div", { class: "usage balance" }, el("div", { class: "usage-head" }, el("span", { class: "period", text: t("balance") }),
      el("span", { class: "amount", text: balance })),
    p.balance_checked ? el("div", { class: "sub", text: fill("checkedAt", { t: when(p.balance_checked) }) }) : null),
    el("div", { class: "usage spend" }, el("div", { class: "usage-head" }, el("span", { class: "period", text: t("spend7d") }),
      el("span", { class: "amount", text: fill("balanceOf", { n: num(p.spend_7d) }) })),
    el("div", { class: "sub bots", text: `${t("topBots")}: ${bots.length ? bots.join(" · ") : t("noSpend")}` }))),
  actions);
}

async function poolAction(p, what) {
  if (what === "remove" && !confirm(fill("confirmRemovePool", { label: p.label }))) return;
  try {
    const path = `admin/api/pool/${encodeURIComponent(p.id)}`;
    if (what === "remove") await api(path, { method: "DELETE", body: "{}" });
    else await api(`${path}/enable`, { method: "POST", body: "{}" });
    setStatus("ok", t(what === "remove" ? "poolRemoved" : "poolEnabled"));
    await loadKeys();
  } catch (e) {
    showBanner("#keys-error", e.message);
  }
}

async function addPoolKey(ev) {
  ev.preventDefault();
  const form = $("#pool-form");
  clearErrors(form);
  const secret = $("#pool-secret");
  try {
    await api("admin/api/pool", { method: "POST", body: JSON.stringify({ key: secret.value, label: $("#pool-label").value }) });
    form.reset();  // the Poe key stays nowhere in the page
    setStatus("ok", t("poolAdded"));
    await loadKeys();
  } catch (e) {
    showError(form, e);
  }
}

function renderKeys() {
  const d = keys.data;
  if (!d) return;
  $("#team-off").hidden = d.team_mode;
  if (!keys.createForm) {
    keys.createForm = keyForm(null);
    $("#key-create").replaceChildren(el("h3", { text: t("newKey"), "data-i18n": "newKey" }), keys.createForm);
  }
  const order = { active: 0, expired: 1, revoked: 2 };
  const clients = [...d.client_keys].sort((a, b) => order[a.status] - order[b.status]);
  $("#client-keys").replaceChildren(...clients.map(keyRow));
  $("#no-client-keys").hidden = clients.length > 0;
  $("#pool-keys").replaceChildren(...(d.pool_keys.length ? d.pool_keys.map(poolRow)
    : [el("p", { class: "hint", text: t("noPoolKeys") })]));
  $("#synced").textContent = d.history_synced ? fill("lastSynced", { t: when(d.history_synced) }) : t("neverSynced");
}

async function loadKeys() {
  try {
    keys.data = await api("admin/api/keys");
    showBanner("#keys-error", "");
    renderKeys();
  } catch (e) {
    showBanner("#keys-error", `${t("loadFailed")}: ${e.message}`);
  }
}

async function syncNow(ev) {
  const button = ev.currentTarget;
  button.disabled = true;
  setStatus("", t("syncing"));
  try {
    const r = await api("admin/api/usage/sync", { method: "POST", body: "{}" });
    setStatus("ok", fill("syncDone", { n: num(r.matched) }));
    if (!$("#keys-view").hidden) await loadKeys();
    if (!$("#usage-view").hidden) await loadUsage();
  } catch (e) {
    setStatus("error", `${t("syncFailed")}: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

function initKeys() {
  $("#pool-form").addEventListener("submit", addPoolKey);
  $("#token-copy").addEventListener("click", copyToken);
  $("#token-dismiss").addEventListener("click", hideToken);
  for (const b of document.querySelectorAll(".sync")) b.addEventListener("click", syncNow);
}

// --- the Usage view: per day, per client key, per model, per pool key -----------------------

const usage = { data: null, days: 30, metric: "points", asked: 0 };
const PALETTE = 8;  // series classes s0 … s7; the rest are summed as "others"
const METRIC_NAME = { requests: "metricRequests", tokens: "metricTokens", points: "metricPoints" };

function axisNumber(v) {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (v >= 1e4) return `${+(v / 1e3).toFixed(1)}k`;
  return Number.isInteger(v) ? String(v) : "";
}

// One bar per day, its layers stacked; every rect and the svg carry their numbers.
function stacked(id, days, layers, metric) {
  const fig = $(`#${id}`);
  const svg = fig.querySelector("svg");
  const sums = days.map((_, i) => sum(layers.map((l) => l.values[i])));
  const max = Math.max(1, ...sums);
  frame(svg, max, axisNumber, days[0].slice(5), days[days.length - 1].slice(5));
  const step = (W - LEFT) / days.length;
  const gap = step > 4 ? 1 : 0;
  days.forEach((day, i) => {
    let y = H - BOTTOM;
    for (const l of layers) {
      const v = l.values[i];
      if (!v) continue;
      const h = (H - TOP - BOTTOM) * (v / max);
      y -= h;
      const bar = svgEl("rect", { class: `bar ${l.cls}`, x: LEFT + i * step + gap, y, width: Math.max(1, step - 2 * gap),
        height: h, "data-series": l.id, "data-day": day, "data-value": v });
      bar.append(svgEl("title", {}, `${day} · ${l.label}: ${num(v)}`));
      svg.append(bar);
    }
  });
  Object.assign(svg.dataset, { total: String(sum(sums)), metric, days: String(days.length), series: String(layers.length) });
  fig.querySelector(".legend").replaceChildren(...layers.map((l) => el("span",
    { class: "legend-item", "data-series": l.id, "data-total": sum(l.values) },
    el("span", { class: `swatch ${l.cls}` }), el("span", { text: `${l.label} ${num(sum(l.values))}` }))));
}

function seriesOf(map, metric, label, days) {
  const all = Object.entries(map).map(([id, s]) => ({ id, label: label(id), values: s[metric] }))
    .filter((s) => sum(s.values) > 0)
    .sort((a, b) => sum(b.values) - sum(a.values) || a.label.localeCompare(b.label));
  const shown = all.length > PALETTE ? all.slice(0, PALETTE - 1) : all;
  const layers = shown.map((s, i) => ({ ...s, cls: `s${i}` }));
  if (all.length > shown.length) {
    const rest = all.slice(shown.length);
    layers.push({ id: "*", label: t("others"), cls: "others", values: days.map((_, i) => sum(rest.map((s) => s.values[i]))) });
  }
  return layers;
}

function totalsTable(id, map, label, head) {
  const table = $(`#${id}`);
  const cols = ["requests", "tokens", "points"];
  const rows = Object.entries(map).map(([key, s]) => ({ id: key, label: label(key), requests: sum(s.requests),
    tokens: sum(s.tokens), points: sum(s.points), estimated: sum(s.estimated_points) }))
    .filter((r) => r.requests > 0)
    .sort((a, b) => b[usage.metric] - a[usage.metric] || a.label.localeCompare(b.label));
  const cell = (r, c) => el("td", { class: `n${c === usage.metric ? " sorted" : ""}`, "data-col": c },
    el("span", { text: num(r[c]) }),
    c === "points" && r.estimated ? el("span", { class: "estimated", text: fill("estimatedShort", { n: num(r.estimated) }) }) : null);
  const line = (r, cls) => el("tr", { class: cls, "data-id": r.id, "data-requests": r.requests, "data-tokens": r.tokens,
    "data-points": r.points, "data-estimated": r.estimated },
  el("th", { scope: "row" }, el("span", { text: r.label }), r.id !== "*" && r.label !== r.id ? el("span", { class: "sub mono", text: r.id }) : null),
  ...cols.map((c) => cell(r, c)));
  table.querySelector("thead").replaceChildren(el("tr", {}, el("th", { text: t(head) }),
    ...cols.map((c) => el("th", { class: `n${c === usage.metric ? " sorted" : ""}`, text: t(METRIC_NAME[c]) }))));
  const body = rows.map((r) => line(r, ""));
  if (rows.length) {
    const all = { id: "*", label: t("total"), estimated: sum(rows.map((r) => r.estimated)) };
    for (const c of cols) all[c] = sum(rows.map((r) => r[c]));
    body.push(line(all, "total"));
  } else {
    body.push(el("tr", {}, el("td", { colspan: 4, class: "hint", text: t("nothing") })));
  }
  table.querySelector("tbody").replaceChildren(...body);
}

function renderUsage() {
  const m = usage.metric;
  for (const b of document.querySelectorAll("[data-days]")) b.classList.toggle("active", Number(b.dataset.days) === usage.days);
  for (const b of document.querySelectorAll("[data-metric]")) b.classList.toggle("active", b.dataset.metric === m);
  const d = usage.data;
  if (!d) return;
  const name = t(METRIC_NAME[m]);
  const caption = (id, key) => { $(`#${id} figcaption`).textContent = fill(key, { metric: name }); };
  caption("chart-usage-total", "chartTotal");
  caption("chart-usage-keys", "chartKeys");
  caption("chart-usage-models", "chartModels");
  const tot = d.total;
  const total = m === "points"
    ? [{ id: "confirmed", label: t("confirmed"), cls: "confirmed", values: tot.points.map((v, i) => v - tot.estimated_points[i]) },
      { id: "estimated", label: t("estimated"), cls: "estimated", values: tot.estimated_points }]
    : [{ id: m, label: name, cls: "confirmed", values: tot[m] }];
  stacked("chart-usage-total", d.days, total, m);
  const keyLabel = (id) => d.labels[id] || id;
  stacked("chart-usage-keys", d.days, seriesOf(d.by_key, m, keyLabel, d.days), m);
  stacked("chart-usage-models", d.days, seriesOf(d.by_model, m, (id) => id, d.days), m);
  // several POE_API_KEYS share one label: name them by id too
  const poolLabels = Object.keys(d.pool).map(keyLabel);
  const poolLabel = (id) => (poolLabels.filter((l) => l === keyLabel(id)).length > 1 ? `${keyLabel(id)} (${id})` : keyLabel(id));
  stacked("chart-usage-pool", d.days, seriesOf(d.pool, "points", poolLabel, d.days), "points");
  totalsTable("usage-by-key", d.by_key, keyLabel, "colKey");
  totalsTable("usage-by-model", d.by_model, (id) => id, "colModel");
  const notes = [fill("usageNote", { n: num(d.points_per_usd) }),
    d.history_synced ? fill("lastSynced", { t: when(d.history_synced) }) : t("neverSynced")];
  $("#usage-note").textContent = notes.join(" ");
}

async function loadUsage() {
  const asked = ++usage.asked;
  try {
    const data = await api(`admin/api/usage?days=${usage.days}`);
    if (asked !== usage.asked) return;  // a later period was picked meanwhile
    usage.data = data;
    renderUsage();
  } catch (e) {
    setStatus("error", `${t("loadFailed")}: ${e.message}`);
  }
}

function initUsage() {
  for (const b of document.querySelectorAll("[data-days]")) {
    b.addEventListener("click", () => { usage.days = Number(b.dataset.days); renderUsage(); loadUsage(); });
  }
  for (const b of document.querySelectorAll("[data-metric]")) {
    b.addEventListener("click", () => { usage.metric = b.dataset.metric; renderUsage(); });
  }
}

const VIEWS = ["models", "traffic", "keys", "usage"];

function showView(wanted) {
  const name = VIEWS.includes(wanted) ? wanted : "models";
  for (const b of document.querySelectorAll("[data-view]")) b.classList.toggle("active", b.dataset.view === name);
  for (const v of VIEWS) $(`#${v}-view`).hidden = v !== name;
  clearInterval(traffic.timer);
  traffic.timer = null;
  if (name === "traffic") {
    loadTraffic();
    traffic.timer = setInterval(loadTraffic, 5000);
  }
  if (name === "keys") loadKeys();
  if (name === "usage") loadUsage();
  // the view survives a reload; the Models view is the page's plain address
  const hash = name === "models" ? "" : `#${name}`;
  if (location.hash !== hash) history.replaceState(null, "", hash || location.pathname + location.search);
}

function init() {
  $("#save").addEventListener("click", save);
  for (const b of document.querySelectorAll("[data-view]")) b.addEventListener("click", () => showView(b.dataset.view));
  $("#traffic-model").addEventListener("change", (ev) => { traffic.model = ev.target.value; renderTraffic(); });
  initKeys();
  initUsage();
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
  showView(location.hash.slice(1));
}

init();
