// The OneWindow operator console: one page served by audit. It calls audit on its own origin, and
// router and intake on theirs (config.json names them; they answer CORS for this origin). The
// operator's token lives in this tab's sessionStorage only and is never written to any log.
"use strict";

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

// ------------------------------------------------------------------ words (Chinese first, English toggle)
const WORDS = {
  zh: {
    title: "OneWindow 指挥中心", "nav.queues": "工作队列", "nav.case": "案件", "nav.county": "全域一览", "nav.live": "实时",
    "status.signed_out": "未登录", "status.live": "实时", "status.reconnecting": "重新连接中", signout: "退出",
    "signin.title": "登录", "signin.explain": "使用本市统一身份认证登录；令牌只保存在本浏览器标签页内。",
    "signin.oidc": "通过统一身份认证登录", "signin.dev": "开发环境：粘贴 onewindow dev 或 onewindow token 打印的令牌。",
    "signin.connect": "登录", "signin.none": "未配置登录方式：请设置 ONEWINDOW_CONSOLE_OIDC_CLIENT_ID。",
    "signin.expired": "登录已过期，请重新登录", "signin.failed": "登录失败",
    "queue.manual": "人工分拨", "queue.callback": "回访", "queue.review": "办结审核", "queue.returns": "退单/转办审核", "queue.extension": "延期申请",
    "queue.overdue": "超期", "queue.empty": "队列为空", "queue.pick": "选择左侧案件进行处理",
    "col.number": "案件编号", "col.category": "类别", "col.division": "地区", "col.risk": "风险", "col.unit": "承办单位",
    "col.since": "时间", "col.status": "状态", "col.supervision": "督办", "col.escalations": "升级",
    "case.number_hint": "案件编号，如 339901-20261123-00001", "case.search": "查询", "case.none": "没有这个案件（或不在您的辖区内）",
    "case.report": "诉求内容", "case.facts": "案件概况", "case.timeline": "处置过程", "case.explain": "分拨依据",
    "case.verify": "留痕校验", "case.intact": "全程留痕完整", "case.broken": "留痕异常", "case.clocks": "时限",
    "case.open": "打开案件页", "case.left": "剩余", "case.over": "已超期", "case.paused": "已暂停",
    "f.number": "编号", "f.status": "状态", "f.category": "类别", "f.risk": "风险等级", "f.division": "地区",
    "f.holder": "承办单位", "f.units": "参与单位", "f.trace": "追踪编号", "f.channel": "渠道", "f.received": "受理时间",
    "f.rules": "规则", "f.model": "模型", "f.catalogue": "事项清单版本", "f.reason": "原因", "f.returns": "退回次数",
    "f.reporter": "反映人", "f.personal": "个人信息已按权限脱敏",
    "act.dispatch": "派发", "act.reassign": "改派", "act.close": "直接办结", "act.refuse": "不予受理",
    "act.callback": "记录回访", "act.approve": "审核通过", "act.keep": "不同意（原单位继续办理）", "act.rework": "退回重办", "act.ext_approve": "同意延期",
    "act.ext_deny": "不同意延期", "act.urge": "催办", "act.supervise": "督办单", "act.pause": "暂停计时",
    "act.resume": "恢复计时", "act.done": "已完成", "act.note": "说明", "act.code": "原因",
    "cands": "系统推荐（按概率）", "cands.none": "模型没有推荐；请选择事项", "cands.manual": "选择事项与单位",
    "confirm": "确认", cancel: "取消", "confirm.ask": "确认执行：",
    "cb.satisfied": "满意", "cb.basically_satisfied": "基本满意", "cb.unsatisfied": "不满意", "cb.unreachable": "未接通",
    "map.title": "地图", "map.open": "在办案件", "map.overdue": "超期案件", "map.risk": "风险",
    "level.town": "乡镇/街道", "level.county": "区县", "trend.title": "每日收件与办结", "trend.category": "按类别",
    "trend.channel": "按渠道", "trend.received": "收件", "trend.closed": "办结", "trend.unknown": "未分类",
    "rank.title": "排名", "rank.unit": "单位", "rank.quarter": "季度", "rank.month": "月度", "rank.csv": "导出 CSV",
    "rank.print": "打印报告", "rank.rank": "名次", "rank.name": "名称", "rank.dispatches": "派单", "rank.ack": "及时签收率",
    "rank.ontime": "及时处置率", "rank.satisfaction": "满意率", "rank.mediation": "调解成功率", "rank.returns": "退回",
    "rank.escalations": "升级", "rank.none": "该期间没有数据", "report.month": "月报", "report.quarter": "季报",
    "live.feed": "实时事件", "live.board": "督办看板", "board.empty": "目前没有黄牌、红牌或升级的案件",
    "problem.status": "状态码",
    "risk.green": "绿", "risk.yellow": "黄", "risk.orange": "橙", "risk.red": "红", "risk.white": "白",
  },
  en: {
    title: "OneWindow command centre", "nav.queues": "Work queues", "nav.case": "Case", "nav.county": "At a glance",
    "nav.live": "Live", "status.signed_out": "signed out", "status.live": "live", "status.reconnecting": "reconnecting",
    signout: "Sign out", "signin.title": "Sign in",
    "signin.explain": "Sign in with the city's identity provider; the token stays in this browser tab only.",
    "signin.oidc": "Sign in with the identity provider", "signin.dev": "Development: paste a token printed by onewindow dev or onewindow token.",
    "signin.connect": "Sign in", "signin.none": "No sign-in configured: set ONEWINDOW_CONSOLE_OIDC_CLIENT_ID.",
    "signin.expired": "Your sign-in expired; sign in again", "signin.failed": "Sign-in failed",
    "queue.manual": "Manual triage", "queue.callback": "Callback", "queue.review": "Resolution review", "queue.returns": "Return review",
    "queue.extension": "Extensions", "queue.overdue": "Overdue", "queue.empty": "The queue is empty",
    "queue.pick": "Pick a case on the left to work on it",
    "col.number": "Case number", "col.category": "Category", "col.division": "Division", "col.risk": "Risk",
    "col.unit": "Unit", "col.since": "Since", "col.status": "Status", "col.supervision": "Supervision",
    "col.escalations": "Escalations", "case.number_hint": "case number, e.g. 339901-20261123-00001", "case.search": "Search",
    "case.none": "No such case (or not in your jurisdiction)", "case.report": "The report", "case.facts": "The case",
    "case.timeline": "Timeline", "case.explain": "Why it went where it went", "case.verify": "Trace verification",
    "case.intact": "trace intact", "case.broken": "trace NOT intact", "case.clocks": "Clocks", "case.open": "Open the case page",
    "case.left": "left", "case.over": "overdue by", "case.paused": "paused",
    "f.number": "Number", "f.status": "Status", "f.category": "Category", "f.risk": "Risk", "f.division": "Division",
    "f.holder": "Holder", "f.units": "Units involved", "f.trace": "Trace id", "f.channel": "Channel",
    "f.received": "Received", "f.rules": "Rules", "f.model": "Model", "f.catalogue": "Catalogue version",
    "f.reason": "Reason", "f.returns": "Returns", "f.reporter": "Reporter", "f.personal": "personal data masked for your role",
    "act.dispatch": "Dispatch", "act.reassign": "Reassign", "act.close": "Close directly", "act.refuse": "Refuse",
    "act.callback": "Record callback", "act.approve": "Approve", "act.keep": "Refuse (the unit keeps it)", "act.rework": "Send back for rework",
    "act.ext_approve": "Approve extension", "act.ext_deny": "Deny extension", "act.urge": "Urge", "act.supervise": "Supervision order",
    "act.pause": "Pause clocks", "act.resume": "Resume clocks", "act.done": "Done", "act.note": "Note", "act.code": "Reason",
    "cands": "The model's candidates (most probable first)", "cands.none": "No candidates: choose a category",
    "cands.manual": "Choose a category and unit", "confirm": "Confirm", cancel: "Cancel", "confirm.ask": "Confirm: ",
    "cb.satisfied": "Satisfied", "cb.basically_satisfied": "Basically satisfied", "cb.unsatisfied": "Unsatisfied",
    "cb.unreachable": "Unreachable", "map.title": "Map", "map.open": "Open cases", "map.overdue": "Overdue cases",
    "map.risk": "Risk", "level.town": "Towns", "level.county": "Counties", "trend.title": "Received and closed per day",
    "trend.category": "by category", "trend.channel": "by channel", "trend.unknown": "not categorised", "trend.received": "Received", "trend.closed": "Closed",
    "rank.title": "Rankings", "rank.unit": "Units", "rank.quarter": "Quarter", "rank.month": "Month", "rank.csv": "Export CSV",
    "rank.print": "Printable report", "rank.rank": "Rank", "rank.name": "Name", "rank.dispatches": "Dispatches",
    "rank.ack": "Acknowledged on time", "rank.ontime": "Handled on time", "rank.satisfaction": "Satisfaction",
    "rank.mediation": "Mediation success", "rank.returns": "Returns", "rank.escalations": "Escalations",
    "rank.none": "No figures for this period", "report.month": "Monthly report", "report.quarter": "Quarterly report",
    "live.feed": "Live feed", "live.board": "Supervision board", "board.empty": "No yellow, red or escalated cases now",
    "problem.status": "status",
    "risk.green": "green", "risk.yellow": "yellow", "risk.orange": "orange", "risk.red": "red", "risk.white": "white",
  },
};
const STATUS = {
  zh: { received: "已受理", routed: "已分拨", manual_triage: "待人工分拨", dispatched: "已派发", accepted: "已签收",
        in_progress: "办理中", resolved: "已办结待回访", returned: "已退回", transferred: "已转办", reopened: "重办",
        closed: "已结案", refused: "不予受理", merged: "已并单", court_referral: "诉前调解", awaiting_callback: "待回访",
        resolution_review: "办结审核", return_review: "退单/转办审核", extension_requested: "延期申请中",
        split: "已拆单" },
  en: {},
};
// Event names as an operator says them (the type stays visible in English).
const EVENT_NAMES = { "case.received": "受理", "case.duplicate_reported": "重复件", "case.routed": "分拨",
  "case.manual_triage_required": "转人工分拨", "case.triage_corrected": "分拨更正", "case.dispatched": "派发",
  "dispatch.accepted": "签收", "dispatch.resolved": "办结", "dispatch.returned": "退回", "dispatch.transferred": "转办",
  "dispatch.progress": "进展", "supervision.notice": "督办", "case.escalated": "升级", "case.callback_recorded": "回访",
  "case.reopened": "重办", "case.closed": "结案", "case.closed_directly": "直接办结", "case.refused": "不予受理",
  "case.merged": "并单", "dispatch.resolution_reviewed": "办结审核", "dispatch.urged": "催办", "dispatch.clock_paused": "暂停计时",
  "dispatch.clock_resumed": "恢复计时", "dispatch.extension_requested": "延期申请", "dispatch.extension_decided": "延期审批",
  "mediation.transitioned": "调解", "court.referral": "诉前调解", "court.confirmation_decided": "司法确认",
  "mediation.to_court": "调解转诉讼", "feedback.rejected": "反馈被拒" };
const eventName = (type) => {
  const short = type.replace("org.onewindow.", "").replace(/\.v\d+$/, "");
  return lang === "zh" && EVENT_NAMES[short] ? `${EVENT_NAMES[short]} ${short}` : short;
};
const DISPOSITIONS = ["answered", "information_given", "resolved_on_the_spot", "not_government_matter", "in_litigation",
                      "handled_already", "insufficient_information", "unlawful_demand", "other"];
const DISPOSITION_NAMES = { answered: "咨询已答复", information_given: "已告知办理途径", resolved_on_the_spot: "当场解决",
  not_government_matter: "非政府职能", in_litigation: "已进入诉讼、仲裁、行政复议程序", handled_already: "已依法处理完毕",
  insufficient_information: "诉求不明确、无法联系", unlawful_demand: "诉求不合法", other: "其他" };

let lang = localStorage.getItem("onewindow.lang") || "zh";
const t = (key) => WORDS[lang][key] ?? WORDS.zh[key] ?? key;
const statusName = (s) => (lang === "zh" && STATUS.zh[s]) || s;

function applyWords() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
  document.querySelectorAll("[data-tp]").forEach((el) => { el.placeholder = t(el.dataset.tp); });
  $("lang").textContent = lang === "zh" ? "EN" : "中文";
  document.title = t("title");
}

// ------------------------------------------------------------------ state
const state = { config: null, grant: null, units: {}, categories: {}, divisions: {}, view: "queues", queue: "manual",
                selected: null, rankFigures: null, shapes: null };

// ------------------------------------------------------------------ errors: RFC 9457 shown plainly
class ProblemError extends Error {
  constructor(problem) { super(problem.title); this.problem = problem; }
}

function showProblem(e) {
  const p = e instanceof ProblemError ? e.problem : { title: String(e.message || e) };
  const errors = (p.errors || []).map((x) => `<li>${esc(x.field || x.pointer || "")}: ${esc(x.detail)}</li>`).join("");
  $("problem").innerHTML = `<strong>${esc(p.title)}</strong>${p.detail ? `<span>${esc(p.detail)}</span>` : ""}` +
    (p.status ? ` <span class="note">(${t("problem.status")} ${p.status})</span>` : "") + (errors ? `<ul>${errors}</ul>` : "");
  $("problem").hidden = false;
}
const clearProblem = () => { $("problem").hidden = true; $("problem").textContent = ""; };

function base(service) {
  return (service !== "audit" && state.config.services[service]) || "";
}
const reachable = (service) => service === "audit" || !!state.config.services[service];

async function api(service, path, { method = "GET", body } = {}) {
  if (!reachable(service)) {  // not configured: say so, never ask audit in its place
    throw new ProblemError({ title: `${service}: ONEWINDOW_CONSOLE_${service.toUpperCase()}_URL`, status: 0 });
  }
  const headers = { Authorization: "Bearer " + sessionStorage.getItem("onewindow.token") };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(base(service) + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.ok) return r.json();
  let problem;
  try { problem = await r.json(); } catch { problem = {}; }
  problem.status = problem.status || r.status;
  problem.title = problem.title || r.statusText || "HTTP " + r.status;
  if (r.status === 401) { signOut(); problem.title = t("signin.expired"); }
  throw new ProblemError(problem);
}

// ------------------------------------------------------------------ sign-in
const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const randomString = () => b64url(crypto.getRandomValues(new Uint8Array(32)));
const redirectUri = () => location.origin + location.pathname;

async function oidcEndpoints() {
  const o = state.config.signin.oidc;
  if (o.authorization_endpoint && o.token_endpoint) return o;
  const r = await fetch(o.issuer.replace(/\/$/, "") + "/.well-known/openid-configuration");
  if (!r.ok) throw new Error(t("signin.failed") + ": discovery " + r.status);
  const d = await r.json();
  return { ...o, authorization_endpoint: d.authorization_endpoint, token_endpoint: d.token_endpoint };
}

// Authorization code with PKCE (RFC 7636): a public client, no secret in the page.
async function oidcStart() {
  const o = await oidcEndpoints();
  const verifier = randomString(), stateValue = randomString();
  sessionStorage.setItem("onewindow.pkce", JSON.stringify({ verifier, state: stateValue }));
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const q = new URLSearchParams({ response_type: "code", client_id: o.client_id, redirect_uri: redirectUri(),
    scope: "openid", state: stateValue, code_challenge: challenge, code_challenge_method: "S256" });
  location.assign(o.authorization_endpoint + "?" + q);
}

async function oidcFinish(params) {
  const pending = JSON.parse(sessionStorage.getItem("onewindow.pkce") || "null");
  sessionStorage.removeItem("onewindow.pkce");
  history.replaceState(null, "", redirectUri());  // the code is single-use: keep it out of the address bar
  if (params.get("error")) throw new Error(t("signin.failed") + ": " + params.get("error"));
  if (!pending || pending.state !== params.get("state")) throw new Error(t("signin.failed") + ": state");
  const o = await oidcEndpoints();
  const r = await fetch(o.token_endpoint, { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "authorization_code", code: params.get("code"), redirect_uri: redirectUri(),
                                client_id: o.client_id, code_verifier: pending.verifier }) });
  if (!r.ok) throw new Error(t("signin.failed") + ": " + r.status);
  return (await r.json()).access_token;
}

function claimsOf(token) {
  // for display and expiry only: every service verifies the token itself
  try { return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))); } catch { return null; }
}

function signOut() {
  sessionStorage.removeItem("onewindow.token");
  state.grant = null;
  $("nav").hidden = true; $("signout").hidden = true; $("who").textContent = "";
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== "signin"; });
  $("status").textContent = t("status.signed_out");
}

async function signedIn(token) {
  const claims = claimsOf(token);
  if (!claims || (claims.exp && claims.exp * 1000 < Date.now())) { signOut(); throw new Error(t("signin.expired")); }
  sessionStorage.setItem("onewindow.token", token);
  state.grant = claims;
  $("who").textContent = `${claims.preferred_username || claims.sub} · ${claims.role ?? ""} · ${(claims.divisions || []).join(",")}`;
  $("signin").hidden = true; $("nav").hidden = false; $("signout").hidden = false;
  await loadReference();
  follow();
  show(location.hash.startsWith("#case=") ? "case" : state.view);
  if (location.hash.startsWith("#case=")) openCase(decodeURIComponent(location.hash.slice(6)));
}

// ------------------------------------------------------------------ names instead of ids
async function loadReference() {
  const [divisions, reference] = await Promise.all([
    fetch("/v1/console/divisions.json").then((r) => r.json()),
    api("router", "/v1/reference").catch(() => ({ units: [], categories: [] })),  // auditors: ids only
  ]);
  for (const d of divisions.divisions) state.divisions[d.code] = d;
  for (const u of reference.units) state.units[u.id] = u;
  for (const c of reference.categories) state.categories[c.code] = c;
}
const unitName = (id) => (id ? state.units[id]?.name || id : "–");
const categoryName = (code) => (code ? state.categories[code]?.name || code : "–");
function divisionName(code) {
  if (!code) return "–";
  const parts = [6, 9, 12].filter((n) => code.length >= n).map((n) => state.divisions[code.slice(0, n)]?.name);
  return parts.filter(Boolean).join(" ") || code;
}
const colour = (c) => (c ? `<span class="risk ${esc(c)}">${esc(t("risk." + c))}</span>` : "–");
const when = (iso) => (iso ? new Date(iso).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { hour12: false }) : "–");

// ------------------------------------------------------------------ views
function show(view) {
  state.view = view;
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== "view-" + view; });
  document.querySelectorAll("#nav button").forEach((b) => b.classList.toggle("on", b.dataset.view === view));
  clearProblem();
  const load = { queues: loadQueue, county: loadCounty, live: loadBoard, case: async () => {} }[view];
  load().catch(showProblem);
}

// ------------------------------------------------------------------ work queues
async function loadQueue() {
  document.querySelectorAll("#queue-tabs button").forEach((b) => b.classList.toggle("on", b.dataset.queue === state.queue));
  const q = await api("router", "/v1/queues/" + state.queue);
  const body = $("queue").tBodies[0];
  body.innerHTML = q.cases.map((c) => `<tr data-case="${esc(c.case_id)}" class="${c.case_id === state.selected ? "on" : ""}">` +
    `<td>${esc(c.case_number)}</td><td>${esc(categoryName(c.category))}</td><td>${esc(divisionName(c.division_code))}</td>` +
    `<td>${colour(c.risk)}</td><td>${esc(unitName(c.unit_id))}</td><td>${esc(when(c.since))}</td></tr>`).join("");
  $("queue-empty").hidden = q.cases.length > 0;
}

async function selectCase(caseId) {
  state.selected = caseId;
  document.querySelectorAll("#queue tbody tr").forEach((r) => r.classList.toggle("on", r.dataset.case === caseId));
  const [routing, timeline] = await Promise.all([api("router", "/v1/cases/" + caseId),
    api("audit", `/v1/cases/${caseId}/timeline`).catch(() => ({ events: [] }))]);
  $("work").innerHTML = workPanel(routing, timeline.events);
}

function lastOf(events, suffix) {
  return [...events].reverse().find((e) => e.type.endsWith(suffix));
}

function workPanel(r, events) {
  const manual = lastOf(events, ".manual_triage_required.v1");
  const open = r.dispatches.filter((d) => d.status === "dispatched" || d.status === "accepted");
  let html = `<h3>${esc(r.case_number)} · ${esc(statusName(r.status))} ${colour(r.risk)}</h3>` +
    `<p class="note">${esc(categoryName(r.category))} · ${esc(divisionName(r.division_code))} · ` +
    `<a href="#case=${esc(r.case_id)}" data-open="${esc(r.case_id)}">${t("case.open")}</a></p>`;
  const acts = new Set(r.acts);
  if (acts.has("dispatch") || r.status === "manual_triage") {
    const cands = manual?.data?.candidates || [];
    if (manual?.data?.reason) html += `<p class="note">${t("f.reason")}: ${esc(manual.data.reason)}</p>`;
    html += `<fieldset><legend>${t("cands")}</legend>` + (cands.length ? `<ol class="cands">` + cands.map((c) =>
      `<li><button data-act="dispatch" data-category="${esc(c.category)}">${t("act.dispatch")}</button> ` +
      `${esc(categoryName(c.category))} <span class="note">${esc(c.category)} · ${Math.round(c.probability * 100)}% · ` +
      `${esc(unitsFor(c.category, r.division_code))}</span></li>`).join("") + "</ol>" : `<p class="note">${t("cands.none")}</p>`) +
      "</fieldset>";
  }
  if (acts.has("dispatch") || acts.has("reassign") || r.status === "manual_triage" || state.queue === "overdue") {
    html += `<fieldset><legend>${t("cands.manual")}</legend><div class="acts">` +
      `<select id="pick-category">${Object.values(state.categories).map((c) =>
        `<option value="${esc(c.code)}" ${c.code === r.category ? "selected" : ""}>${esc(c.name)} (${esc(c.code)})</option>`).join("")}</select>` +
      `<select id="pick-unit"><option value="">—</option>${Object.values(state.units).filter((u) => servesDivision(u, r.division_code))
        .map((u) => `<option value="${esc(u.id)}">${esc(u.name)}</option>`).join("")}</select>` +
      `<button data-act="pick">${r.status === "manual_triage" ? t("act.dispatch") : t("act.reassign")}</button></div></fieldset>`;
  }
  if (r.status === "manual_triage") {
    html += `<fieldset><legend>${t("act.close")} / ${t("act.refuse")}</legend><div class="acts">` +
      `<select id="dispose-code">${DISPOSITIONS.map((c) => `<option value="${c}">${esc(lang === "zh" ? DISPOSITION_NAMES[c] : c)}</option>`).join("")}</select>` +
      `<input id="dispose-note" placeholder="${t("act.note")}" size="24">` +
      `<button data-act="close">${t("act.close")}</button><button data-act="refuse">${t("act.refuse")}</button></div></fieldset>`;
  }
  if (state.queue === "callback" || acts.has("callback")) {
    html += `<fieldset><legend>${t("act.callback")}</legend><div class="acts">` +
      ["satisfied", "basically_satisfied", "unsatisfied", "unreachable"].map((o) =>
        `<button data-act="callback" data-outcome="${o}">${t("cb." + o)}</button>`).join("") +
      `<input id="callback-note" placeholder="${t("act.note")}" size="24"></div></fieldset>`;
  }
  if (state.queue === "returns" || acts.has("approve_return")) {
    html += `<fieldset><legend>${t("queue.returns")}</legend><div class="acts"><input id="return-note" placeholder="${t("act.note")}" size="24">` +
      `<button data-act="return-review" data-approved="true">${t("act.approve")}</button>` +
      `<button data-act="return-review" data-approved="false">${t("act.keep")}</button></div></fieldset>`;
  }
  if (state.queue === "review" || acts.has("review")) {
    html += `<fieldset><legend>${t("queue.review")}</legend><div class="acts"><input id="review-note" placeholder="${t("act.note")}" size="24">` +
      `<button data-act="review" data-approved="true">${t("act.approve")}</button>` +
      `<button data-act="review" data-approved="false">${t("act.rework")}</button></div></fieldset>`;
  }
  for (const d of open) {
    html += `<fieldset><legend>${esc(unitName(d.unit_id))} · ${esc(d.role)} · ${esc(d.status)}</legend><div class="acts">`;
    if (d.extension_due) {
      html += `<span>${t("queue.extension")}: ${esc(when(d.extension_due))} · ${esc(d.extension_reason)}</span>` +
        `<button data-act="extension" data-dispatch="${esc(d.dispatch_id)}" data-approved="true">${t("act.ext_approve")}</button>` +
        `<button data-act="extension" data-dispatch="${esc(d.dispatch_id)}" data-approved="false">${t("act.ext_deny")}</button>`;
    }
    html += `<input class="dispatch-note" data-dispatch="${esc(d.dispatch_id)}" placeholder="${t("act.note")}" size="18">` +
      `<button data-act="urge" data-dispatch="${esc(d.dispatch_id)}">${t("act.urge")}</button>` +
      `<button data-act="supervise" data-dispatch="${esc(d.dispatch_id)}" data-colour="red">${t("act.supervise")} ${t("risk.red")}</button>` +
      `<button data-act="pause" data-dispatch="${esc(d.dispatch_id)}">${t("act.pause")}</button>` +
      `<button data-act="resume" data-dispatch="${esc(d.dispatch_id)}">${t("act.resume")}</button></div></fieldset>`;
  }
  return html + `<div id="act-result"></div>`;
}

function servesDivision(u, code) { return !code || u.serves.some((s) => code.startsWith(s)); }
function unitsFor(category, code) {
  const kind = state.categories[category]?.unit_kind;
  const local = Object.values(state.units).filter((u) => u.kind === kind && servesDivision(u, code));
  local.sort((a, b) => Math.max(...b.serves.map((s) => s.length)) - Math.max(...a.serves.map((s) => s.length)));
  return local[0]?.name || kind || "";
}

// Every act: a confirmation naming what will happen, then the call; a refusal shows its problem.
function confirmAct(text) {
  return new Promise((resolve) => {
    $("confirm-text").textContent = t("confirm.ask") + text;
    $("confirm").returnValue = "";
    $("confirm").onclose = () => resolve($("confirm").returnValue === "ok");
    $("confirm").showModal();
  });
}

async function act(button) {
  const caseId = state.selected, a = button.dataset.act, d = button.dataset.dispatch;
  const note = (id) => ($(id)?.value || "").trim() || undefined;
  const dispatchNote = () => document.querySelector(`.dispatch-note[data-dispatch="${d}"]`)?.value.trim() || undefined;
  let path, body, service = "router", label = button.textContent;
  switch (a) {
    case "dispatch": path = `/v1/cases/${caseId}/dispatch`; body = { category: button.dataset.category };
      label += " " + categoryName(button.dataset.category); break;
    case "pick": path = `/v1/cases/${caseId}/dispatch`;
      body = { category: $("pick-category").value, ...($("pick-unit").value ? { unit_id: $("pick-unit").value } : {}) };
      label += ` ${categoryName(body.category)} → ${unitName(body.unit_id) || ""}`; break;
    case "close": case "refuse": path = `/v1/cases/${caseId}/${a}`; body = { code: $("dispose-code").value, note: note("dispose-note") }; break;
    case "callback": path = `/v1/cases/${caseId}/callback`; body = { outcome: button.dataset.outcome, note: note("callback-note") }; break;
    case "review": path = `/v1/cases/${caseId}/review`; body = { approved: button.dataset.approved === "true", note: note("review-note") }; break;
    case "return-review": path = `/v1/cases/${caseId}/return-review`; body = { approved: button.dataset.approved === "true", note: note("return-note") }; break;
    case "extension": path = `/v1/dispatches/${d}/extension`; body = { approved: button.dataset.approved === "true", note: dispatchNote() }; break;
    case "urge": path = `/v1/dispatches/${d}/urge`; body = { note: dispatchNote() }; break;
    case "supervise": path = `/v1/dispatches/${d}/supervise`; body = { colour: button.dataset.colour, note: dispatchNote() }; break;
    case "pause": case "resume": path = `/v1/dispatches/${d}/${a}`; body = { reason: dispatchNote() }; break;
    default: return;
  }
  if (!(await confirmAct(label))) return;
  clearProblem();
  try {
    await api(service, path, { method: "POST", body: JSON.parse(JSON.stringify(body)) });
    $("act-result").innerHTML = `<p class="done">${esc(label)}: ${t("act.done")}</p>`;
    await loadQueue();
    setTimeout(() => { if (state.selected === caseId) selectCase(caseId).then(() => {
      $("act-result").innerHTML = `<p class="done">${esc(label)}: ${t("act.done")}</p>`; }).catch(() => {}); }, 300);
  } catch (e) { showProblem(e); }
}

// ------------------------------------------------------------------ case page
async function searchCase(number) {
  const found = await api("audit", "/v1/cases?case_number=" + encodeURIComponent(number.trim()));
  if (!found.cases.length) { $("case").innerHTML = `<p class="note" id="case-none">${t("case.none")}</p>`; return; }
  await openCase(found.cases[0].case_id);
}

async function openCase(caseId) {
  if (state.view !== "case") show("case");
  // router and intake add to the page when this operator may read them there (and they are configured)
  const soft = (p) => p.catch((e) => (e instanceof ProblemError && [0, 403, 404].includes(e.problem.status) ? null : Promise.reject(e)));
  const [summary, timeline, verified, routing, intake] = await Promise.all([
    api("audit", "/v1/cases/" + caseId), api("audit", `/v1/cases/${caseId}/timeline`), api("audit", `/v1/cases/${caseId}/verify`),
    soft(api("router", "/v1/cases/" + caseId)), soft(api("intake", "/v1/cases/" + caseId))]);
  $("number").value = summary.case_number || "";
  const events = timeline.events, received = events.find((e) => e.type.endsWith(".case.received.v1"));
  const sub = intake?.submission || {}, trace = events[0]?.trace_id;
  const routed = lastOf(events, ".case.routed.v1") || lastOf(events, ".case.dispatched.v1");
  const explanation = routed?.data?.explanation || routed?.data?.triage || null;
  const jaeger = state.config.jaeger_url && trace ? `<a href="${esc(state.config.jaeger_url.replace(/\/$/, ""))}/trace/${esc(trace)}" target="_blank" rel="noopener">${esc(trace)}</a>` : esc(trace);
  const n = verified.findings.length;
  const riskWhy = received?.data?.risk_flags || [];  // what intake flagged (weapons, crowds, self-harm …)
  $("case").innerHTML = `<div class="case-grid"><div class="panel">
    <h3>${t("case.facts")}</h3><dl class="facts">
      <dt>${t("f.number")}</dt><dd id="case-number">${esc(summary.case_number)}</dd>
      <dt>${t("f.status")}</dt><dd id="case-status">${esc(statusName(summary.status))}</dd>
      <dt>${t("f.category")}</dt><dd>${esc(categoryName(summary.category))} <span class="note">${esc(summary.category)}</span></dd>
      <dt>${t("f.risk")}</dt><dd id="case-risk">${colour(summary.risk_colour)} <span class="note">${esc(riskWhy.join(", "))}</span></dd>
      <dt>${t("f.division")}</dt><dd>${esc(divisionName(summary.division))}</dd>
      <dt>${t("f.holder")}</dt><dd id="holder">${esc(unitName(summary.holder.unit_id))} <span class="note">${esc(summary.holder.unit_id)}</span></dd>
      <dt>${t("f.units")}</dt><dd id="units">${summary.units.map((u) => esc(unitName(u))).join("、") || "–"}</dd>
      <dt>${t("f.returns")}</dt><dd id="returns">${summary.returns}${routing ? " · " + esc(statusName(routing.status)) + (routing.reopened ? " · reopened " + routing.reopened : "") : ""}</dd>
      <dt>${t("col.supervision")}</dt><dd>${colour(summary.supervision)}${summary.overdue ? " " + t("case.over") : ""}</dd>
      <dt>${t("f.trace")}</dt><dd id="trace-link"><code id="trace">${esc(trace)}</code>${state.config.jaeger_url ? " " + jaeger : ""}</dd>
    </dl>
    <h3>${t("case.report")}</h3>
    <p class="note">${esc(sub.channel || received?.data?.channel || "")} · ${esc(when(intake?.received_at || received?.time))}${intake ? "" : ""}</p>
    <div class="report-text" id="report-text">${esc(sub.title || received?.data?.title || "")}\n${esc(sub.description || received?.data?.description || "")}</div>
    ${sub.reporter ? `<p class="note">${t("f.reporter")}: ${esc(sub.reporter.name)} ${esc(sub.reporter.phone)} · ${t("f.personal")}</p>` : ""}
    <h3>${t("case.clocks")}</h3><div id="clocks">${clocksOf(events)}</div>
    <h3>${t("case.explain")}</h3><dl class="facts">
      <dt>${t("f.rules")}</dt><dd>${esc((routing?.rule_ids || routed?.data?.rule_ids || []).join(", ") || "–")}</dd>
      <dt>${t("f.model")}</dt><dd>${explanation ? esc(`${explanation.model_version} · p=${(explanation.probability ?? 0).toFixed(2)}`) : "–"}</dd>
      <dt>${t("f.catalogue")}</dt><dd>${esc(routing?.catalogue_version || routed?.data?.catalogue_version || "–")}</dd>
    </dl>
    <h3>${t("case.verify")}</h3>
    <p><span class="${verified.intact ? "ok" : "broken"}" id="verified">${verified.intact ? t("case.intact") : lang === "zh" ? `${t("case.broken")}：${n} 处` : `NOT intact: ${n} finding${n === 1 ? "" : "s"}`}</span>
      <span class="note">${verified.counts.records} / ${verified.counts.checkpoints} / ${verified.counts.guards} · ${esc(verified.checked_at)}</span></p>
    <ul id="findings">${verified.findings.map((f) => `<li class="broken">${esc(f.kind)}: ${esc(f.detail)}</li>`).join("")}</ul>
  </div><div class="panel"><h3>${t("case.timeline")}</h3><table class="rows small" id="timeline"><tbody>` +
    events.map((e) => `<tr><td>${esc(when(e.time))}</td><td>${esc(eventName(e.type))}</td>` +
      `<td>${esc(e.actor ? `${e.actor.id} (${e.actor.role})` : e.source)}</td><td>${esc(eventNote(e))}</td></tr>`).join("") +
    "</tbody></table></div></div>";
}

function eventNote(e) {
  const d = e.data || {};
  return [d.unit_id && unitName(d.unit_id), d.outcome && t("cb." + d.outcome), d.colour && t("risk." + d.colour),
          d.reason, d.note].filter(Boolean).join(" · ");
}

function clocksOf(events) {
  // the latest dispatch of each unit carries its 签收 and 办结 deadlines
  const latest = {};
  for (const e of events) if (e.type.endsWith(".case.dispatched.v1")) latest[e.data.unit_id] = e.data;
  const closed = events.some((e) => /case\.(closed|refused|merged|closed_directly)\.v1$/.test(e.type));
  const rows = Object.values(latest).map((d) => {
    const due = d.resolve_by ? new Date(d.resolve_by) : null;
    const ms = due ? due - Date.now() : null;
    const left = ms === null ? "–" : closed ? when(d.resolve_by) :
      `${ms < 0 ? t("case.over") : t("case.left")} ${Math.floor(Math.abs(ms) / 3600e3)}h${Math.floor((Math.abs(ms) % 3600e3) / 60e3)}m`;
    return `<tr><td>${esc(unitName(d.unit_id))}</td><td>${esc(when(d.acknowledge_by))}</td><td>${esc(when(d.resolve_by))}</td><td>${esc(left)}</td></tr>`;
  });
  return rows.length ? `<table class="rows small"><tbody>${rows.join("")}</tbody></table>` : "–";
}

// ------------------------------------------------------------------ the county at a glance
let charts = {};
function chart(id) {
  charts[id] = charts[id] || echarts.init($(id), null, { renderer: "canvas" });
  return charts[id];
}

async function loadCounty() {
  if (!state.shapes) {
    state.shapes = await fetch("/v1/console/divisions.geojson").then((r) => r.json());
    echarts.registerMap("onewindow", state.shapes);
  }
  await Promise.all([loadMap(), loadTrends(), loadRanking()]);
}

const RISK_VALUE = { green: 0, orange: 1, red: 2 };

async function loadMap() {
  const level = $("map-level").value, measure = $("map-measure").value;
  const o = await api("audit", "/v1/overview/divisions?level=" + level);
  const mine = state.shapes.features.filter((f) => f.properties.level === level && visible(f.properties.code));
  const by = Object.fromEntries(o.divisions.map((d) => [d.code, d]));
  const value = (code) => { const d = by[code]; return !d ? 0 : measure === "risk" ? RISK_VALUE[d.risk] : d[measure]; };
  const data = mine.map((f) => ({ name: f.properties.code, value: value(f.properties.code) }));
  const max = Math.max(1, ...data.map((d) => d.value));
  echarts.registerMap("onewindow-" + level, { type: "FeatureCollection", features: mine });
  // the towns' county borders drawn over them (the same extent, so the two layers coincide)
  const counties = state.shapes.features.filter((f) => f.properties.level === "county" && visible(f.properties.code));
  echarts.registerMap("onewindow-borders", { type: "FeatureCollection", features: counties });
  const borders = level === "town" ? [{ type: "map", map: "onewindow-borders", nameProperty: "code", silent: true, z: 3,
    roam: false, label: { show: false }, itemStyle: { areaColor: "rgba(0,0,0,0)", borderColor: "#15314b", borderWidth: 2.5 },
    emphasis: { disabled: true }, select: { disabled: true }, tooltip: { show: false } }] : [];
  chart("map").setOption({
    tooltip: { formatter: (p) => `${esc(state.divisions[p.name]?.name || p.name)}: ${p.value ?? 0}` },
    visualMap: measure === "risk"
      ? { type: "piecewise", seriesIndex: 0, pieces: [{ value: 0, color: "#9bd3ae", label: t("risk.green") }, { value: 1, color: "#f59e0b", label: t("risk.orange") },
          { value: 2, color: "#d33", label: t("risk.red") }], left: 0, bottom: 0 }
      : { seriesIndex: 0, min: 0, max, inRange: { color: measure === "overdue" ? ["#f3f4f6", "#d33"] : ["#e0ecf8", "#15314b"] }, calculable: true, left: 0, bottom: 0 },
    series: [{ type: "map", map: "onewindow-" + level, nameProperty: "code", data, roam: false,
      label: { show: true, formatter: (p) => `${state.divisions[p.name]?.name || p.name}\n${p.value ?? 0}`, fontSize: 11 } },
      ...borders],
  }, true);
  // the same figures as a table (screen readers, tests, and exact numbers)
  $("map-table").tBodies[0].innerHTML = mine.map((f) => { const d = by[f.properties.code] || {};
    return `<tr data-code="${esc(f.properties.code)}" data-open="${d.open || 0}" data-overdue="${d.overdue || 0}" data-risk="${esc(d.risk || "green")}">` +
      `<td>${esc(f.properties.name)}</td><td>${t("map.open")} ${d.open || 0}</td><td>${t("map.overdue")} ${d.overdue || 0}</td>` +
      `<td>${colour(d.risk || "green")}</td></tr>`; }).join("");
}

function visible(code) {
  const divisions = state.grant?.divisions || [];
  return divisions.includes("*") || divisions.some((d) => code.startsWith(d) || d.startsWith(code));
}

async function loadTrends() {
  const by = $("trend-by").value, days = $("trend-days").value;
  const tr = await api("audit", `/v1/trends?by=${by}&days=${days}`);
  const name = (k) => (k === "unknown" ? t("trend.unknown") : by === "category" ? categoryName(k) : k);
  for (const flow of ["received", "closed"]) {
    chart("trend-" + flow).setOption({
      title: { text: t("trend." + flow), textStyle: { fontSize: 12 } }, tooltip: { trigger: "axis" },
      legend: { type: "scroll", top: 0, left: 80, textStyle: { fontSize: 10 } }, grid: { left: 30, right: 10, top: 30, bottom: 20 },
      xAxis: { type: "category", data: tr.days.map((d) => d.slice(5)) }, yAxis: { type: "value", minInterval: 1 },
      series: Object.entries(tr[flow]).map(([k, counts]) => ({ name: name(k), type: "bar", stack: flow, data: counts })),
    }, true);
  }
}

function periodName(period, kind) {
  const [y, m] = period.split("-").map(Number);
  if (kind === "quarter") return lang === "zh" ? `${y}年第${Math.floor((m - 1) / 3) + 1}季度` : `${y} Q${Math.floor((m - 1) / 3) + 1}`;
  return lang === "zh" ? `${y}年${m}月` : `${y}-${String(m).padStart(2, "0")}`;
}
const keyName = (by, key) => (by === "unit" ? unitName(key) : state.divisions[key]?.name || key);
const pct = (r) => (r === null || r === undefined ? "–" : (r * 100).toFixed(1) + "%");

async function loadRanking() {
  const by = $("rank-by").value, period = $("rank-period").value;
  const m = await api("audit", `/v1/metrics?by=${by}&period=${period}`);
  state.rankFigures = m;
  const periods = [...new Set(m.figures.map((f) => f.period))].sort().reverse();
  const chosen = periods.includes($("rank-which").value) ? $("rank-which").value : periods[0];
  $("rank-which").innerHTML = periods.map((p) => `<option value="${p}" ${p === chosen ? "selected" : ""}>${esc(periodName(p, period))}</option>`).join("");
  renderRanking();
}

// Ranked rows first (by the API's ranking), then those with nothing due yet.
function rankedRows() {
  const m = state.rankFigures, p = $("rank-which").value;
  const figures = m.figures.filter((f) => f.period === p);
  const rank = Object.fromEntries(m.ranking.filter((r) => r.period === p).map((r) => [r.key, r.rank]));
  return figures.sort((a, b) => (rank[a.key] ?? 1e9) - (rank[b.key] ?? 1e9) || a.key.localeCompare(b.key))
    .map((f) => ({ rank: rank[f.key] ?? null, ...f }));
}

function renderRanking() {
  const m = state.rankFigures, rows = rankedRows();
  $("report-title").textContent = `OneWindow ${t("report." + m.period)} · ${$("rank-which").selectedOptions[0]?.textContent || ""} · ${t("rank.title")}`;
  $("ranking").tBodies[0].innerHTML = rows.length ? rows.map((f) => `<tr data-key="${esc(f.key)}"><td>${f.rank ?? "–"}</td>` +
    `<td>${esc(keyName(m.by, f.key))}</td><td>${f.dispatches}</td><td>${pct(f.acknowledged_on_time_rate)}</td>` +
    `<td>${pct(f.handled_on_time_rate)}</td><td>${pct(f.satisfaction_rate)}</td><td>${pct(f.mediation_success_rate)}</td>` +
    `<td>${f.returns}</td><td>${f.escalations}</td></tr>`).join("") : `<tr><td colspan="9" class="note">${t("rank.none")}</td></tr>`;
}

// The CSV carries the API's figures as they are (rates as the API's fractions), plus the names.
const CSV_COLUMNS = ["rank", "key", "name", "period", "dispatches", "acknowledged_on_time_rate", "handled_on_time_rate",
                     "satisfaction_rate", "mediation_success_rate", "returns", "escalations"];
function csvCell(v) {
  const s = v === null || v === undefined ? "" : String(v);
  // quote when needed; a leading = + - @ would be a formula in a spreadsheet
  const safe = /^[=+\-@]/.test(s) ? "'" + s : s;
  return /[",\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}
function exportCsv() {
  const m = state.rankFigures;
  const lines = [CSV_COLUMNS.join(",")].concat(rankedRows().map((f) =>
    CSV_COLUMNS.map((c) => csvCell(c === "name" ? keyName(m.by, f.key) : f[c])).join(",")));
  const blob = new Blob(["\ufeff" + lines.join("\r\n") + "\r\n"], { type: "text/csv;charset=utf-8" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `onewindow-${m.by}-${m.period}-${$("rank-which").value}.csv`;
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// ------------------------------------------------------------------ live
async function loadBoard() {
  const [yellow, red, escalated] = await Promise.all(
    ["supervision=yellow", "supervision=red", "escalated=true"].map((q) => api("audit", "/v1/cases?limit=50&" + q)));
  const seen = new Set(), rows = [];
  for (const c of [...red.cases, ...yellow.cases, ...escalated.cases]) if (!seen.has(c.case_id)) { seen.add(c.case_id); rows.push(c); }
  $("board").tBodies[0].innerHTML = rows.map((c) => `<tr><td><a href="#case=${esc(c.case_id)}" data-open="${esc(c.case_id)}">${esc(c.case_number)}</a></td>` +
    `<td>${esc(unitName(c.holder.unit_id))}</td><td>${esc(statusName(c.status))}</td><td>${colour(c.supervision)}</td><td>${c.escalations}</td></tr>`).join("");
  $("board-empty").hidden = rows.length > 0;
}

let refreshTimer = null;
function onEvent(ev) {
  const line = document.createElement("div");
  line.textContent = `${ev.time.slice(11, 19)} ${eventName(ev.type)} ${ev.case_number || ev.case_id} ${ev.unit_id ? unitName(ev.unit_id) : ""}`;
  $("feed").prepend(line);
  while ($("feed").childElementCount > 500) $("feed").lastChild.remove();
  if (refreshTimer) return;  // the open view follows the events, at most twice a second however many arrive
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    const load = { queues: loadQueue, live: loadBoard, county: () => Promise.all([loadMap(), loadTrends()]) }[state.view];
    if (load) load().catch(() => {});
  }, 500);
}

let following = false;
async function follow() {
  if (following) return;
  following = true;
  let after = null;
  while (sessionStorage.getItem("onewindow.token")) {
    try {
      // a fetch stream rather than EventSource: it can send the Authorization header
      const r = await fetch("/v1/events/stream" + (after ? "?after_id=" + after : ""), {
        headers: { Authorization: "Bearer " + sessionStorage.getItem("onewindow.token") } });
      if (!r.ok) {
        $("status").textContent = "refused: " + r.status;
        if (r.status === 401 || r.status === 403) break;
      } else {
        $("status").textContent = t("status.live");
        const reader = r.body.getReader(), decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const chunk = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
            const id = chunk.split("\n").find((l) => l.startsWith("id: "));
            if (id) after = id.slice(4);
            const data = chunk.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("");
            if (data) onEvent(JSON.parse(data));
          }
        }
        $("status").textContent = t("status.reconnecting");
      }
    } catch { $("status").textContent = t("status.reconnecting"); }
    await new Promise((res) => setTimeout(res, 2000));
  }
  following = false;
}

// ------------------------------------------------------------------ wiring
async function start() {
  applyWords();
  state.config = await fetch("/v1/console/config.json").then((r) => r.json());
  const s = state.config.signin;
  $("oidc").hidden = !s.oidc; $("devform").hidden = !s.dev_token; $("nosignin").hidden = !!(s.oidc || s.dev_token);
  $("lang").onclick = () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("onewindow.lang", lang); applyWords();
    if (state.grant) show(state.view); };
  $("signout").onclick = signOut;
  $("oidc").onclick = () => oidcStart().catch(showProblem);
  $("devform").onsubmit = (e) => { e.preventDefault(); signedIn($("token").value.trim()).catch(showProblem); $("token").value = ""; };
  document.querySelectorAll("#nav button").forEach((b) => { b.onclick = () => show(b.dataset.view); });
  document.querySelectorAll("#queue-tabs button").forEach((b) => { b.onclick = () => {
    state.queue = b.dataset.queue; state.selected = null; $("work").innerHTML = ""; loadQueue().catch(showProblem); }; });
  $("queue").onclick = (e) => { const row = e.target.closest("tr[data-case]"); if (row) selectCase(row.dataset.case).catch(showProblem); };
  $("work").onclick = (e) => { const b = e.target.closest("button[data-act]"); if (b) act(b); };
  document.body.addEventListener("click", (e) => { const a = e.target.closest("a[data-open]");
    if (a) { e.preventDefault(); openCase(a.dataset.open).catch(showProblem); } });
  $("case-search").onsubmit = (e) => { e.preventDefault(); clearProblem(); searchCase($("number").value).catch(showProblem); };
  $("map-measure").onchange = $("map-level").onchange = () => loadMap().catch(showProblem);
  $("trend-by").onchange = $("trend-days").onchange = () => loadTrends().catch(showProblem);
  $("rank-by").onchange = $("rank-period").onchange = () => loadRanking().catch(showProblem);
  $("rank-which").onchange = renderRanking;
  $("csv").onclick = exportCsv;
  $("print").onclick = () => window.print();
  window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));

  const params = new URLSearchParams(location.search);
  try {
    if (s.oidc && (params.get("code") || params.get("error"))) return await signedIn(await oidcFinish(params));
    if (s.dev_token && location.hash.startsWith("#token=")) {  // `onewindow dev`'s sign-in link (dev only)
      const token = decodeURIComponent(location.hash.slice(7));
      history.replaceState(null, "", redirectUri());
      return await signedIn(token);
    }
    const kept = sessionStorage.getItem("onewindow.token");
    if (kept) return await signedIn(kept);
  } catch (e) { showProblem(e); }
  signOut();
}

start().catch(showProblem);
