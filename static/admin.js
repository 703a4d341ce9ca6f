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

function init() {
  $("#save").addEventListener("click", save);
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
