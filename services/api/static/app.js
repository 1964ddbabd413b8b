"use strict";
// The Spendstream dashboard: plain JavaScript over the query API; charts are the API's own
// Vega-Lite specs, rendered here with the locally served vega-embed bundle.
(() => {  // a scope of its own: the Vega bundle defines globals of its own

  const CHARTS = ["trend", "heatmap", "anomalies", "forecast", "drift", "categories", "budget"];
  const state = { key: localStorage.getItem("spendstream.key"), seen: new Set() };
  const $ = (id) => document.getElementById(id);
  // Totals are in the user's base currency (the API says which); a transaction in its own.
  const money = (v, currency) => Number(v).toLocaleString(undefined, { style: "currency", currency: currency || state.currency || "USD" });
  const pct = (v) => (v === null || v === undefined ? "–" : `${v > 0 ? "+" : ""}${(v * 100).toFixed(0)}%`);

  async function api(path, options = {}) {
    const response = await fetch(path, {
      ...options,
      headers: { Authorization: `Bearer ${state.key}`, "Content-Type": "application/json", ...(options.headers || {}) },
    });
    if (response.status === 401) { forgetKey("That key was not accepted."); throw new Error("unauthorized"); }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg || d.message).join("; ") : body.detail;
      throw new Error(detail || `${path}: ${response.status}`);
    }
    return response.status === 204 ? null : response.json();
  }

  function query() {
    const params = new URLSearchParams();
    if ($("account").value) params.set("account_id", $("account").value);
    return params;
  }

  function forgetKey(message = "") {
    localStorage.removeItem("spendstream.key");
    state.key = null;
    $("dashboard").hidden = true; $("picker").hidden = true; $("key-prompt").hidden = false;
    $("key-error").textContent = message;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs).forEach(([k, v]) => (k === "class" ? (node.className = v) : node.setAttribute(k, v)));
    children.forEach((c) => node.append(c));
    return node;
  }

  async function loadPickers() {
    const accounts = await api("/v1/accounts");
    const account = $("account");
    account.replaceChildren(el("option", { value: "" }, "All accounts"));
    accounts.forEach((a) => account.append(el("option", { value: a.account_id }, a.account_id)));
    $("known-accounts").replaceChildren(...accounts.map((a) => el("option", { value: a.account_id })));
    // Months as the summary counts them: each transaction's own local month, from the API.
    // Plain arithmetic on YYYY-MM, never Date: the browser's timezone must not shift a month.
    const months = new Set();
    accounts.forEach((a) => {
      const index = (yyyymm) => yyyymm.split("-").map(Number).reduce((y, m) => y * 12 + m - 1);
      for (let i = index(a.first_month); i <= index(a.last_month); i++) {
        months.add(`${Math.floor(i / 12)}-${String((i % 12) + 1).padStart(2, "0")}`);
      }
    });
    const ordered = [...months].sort().reverse();
    $("month").replaceChildren(...ordered.map((m) => el("option", { value: m }, m)));
  }

  function card(label, value, note = "") {
    return el("div", { class: "card" }, el("div", { class: "label" }, label), el("div", { class: "value" }, value), el("div", { class: "muted" }, note));
  }

  // What each section shows, and when, while it has nothing to show yet.
  const EMPTY = {
    anomalies: "Nothing unusual. Every transaction is scored as it arrives; flagged ones appear here with their reasons, for you to mark fraud or legit.",
    categories: "No spending this month yet. Categories fill in as transactions arrive (or import a bank export: spendstream import FILE).",
    recurring: "No bills found yet: a bill or subscription shows once it has been paid 3 times at a regular interval.",
    income: "No regular income found yet: a salary shows after 3 payments at a regular interval.",
    duplicates: "None: two charges of the same amount at the same merchant within 24 hours would show here.",
    drift: "No drift. Each week is compared with the 4 before, once a week holds 30 transactions.",
    clusters: "Your merchants are grouped by meaning once you have 3 distinct ones, within 20 s of new transactions.",
    forecasts: "Forecasts appear once there are 60 days of history, within a minute of it arriving.",
    recent: "No transactions yet. Add one above, import a bank export (spendstream import FILE), or POST them to ingest.",
    budgets: "No budgets yet. Set a monthly amount for a category below; you will see spent against it, where the month is heading, and an alert at 80% and 100%.",
  };

  function fill(id, items) {
    const target = $(id);
    const body = target.tBodies ? target.tBodies[0] : target;
    const columns = target.tHead ? target.tHead.rows[0].cells.length : 0;
    const empty = columns
      ? el("tr", { class: "empty" }, el("td", { colspan: String(columns), class: "muted" }, EMPTY[id]))
      : el("li", { class: "muted empty" }, EMPTY[id]);
    body.replaceChildren(...(items.length ? items : [empty]));
  }

  const fixed = (value) => (value === null || value === undefined ? "n/a" : Number(value).toFixed(2));

  async function loadSummary() {
    const params = query();
    if (!$("month").value) {
      $("cards").replaceChildren(card("Transactions", "none yet", "Import a bank export (spendstream import FILE) or POST /v1/transactions; this page fills in as they are scored."));
      ["categories", "recurring", "income", "duplicates"].forEach((id) => fill(id, []));
      return;
    }
    params.set("month", $("month").value);
    const s = await api(`/v1/insights/summary?${params}`);
    state.currency = s.currency;
    const foreign = s.unconverted.map((u) => money(u.total, u.currency)).join(" + ");
    const change = s.previous_month_total > 0 ? (s.total - s.previous_month_total) / s.previous_month_total : null;
    const bills = s.recurring.filter((r) => r.direction === "debit");
    const income = s.recurring.filter((r) => r.direction === "credit");
    const perMonth = { weekly: 52 / 12, biweekly: 26 / 12, semimonthly: 2, monthly: 1, quarterly: 1 / 3, yearly: 1 / 12 };
    $("cards").replaceChildren(
      card("Spent in " + s.month, money(s.total), `${pct(change)} vs previous month` + (foreign ? `; also ${foreign} (no exchange rate)` : "") + (s.currency_note ? `. ${s.currency_note}` : "")),
      card("Unusual transactions", String(s.anomalies)),
      card("Subscriptions and bills", String(bills.length), `${bills.filter((r) => r.amount_rose).length} went up`),
      card("Regular income", money(income.reduce((sum, r) => sum + r.typical_amount * perMonth[r.cadence], 0)), `${income.length} source(s), per month`),
      card("Possible duplicates", String(s.possible_duplicates.length)),
      card("Top merchant", s.top_merchants[0] ? s.top_merchants[0].merchant : "–", s.top_merchants[0] ? money(s.top_merchants[0].total) : ""),
    );
    fill("categories", s.categories.map((c) => el("tr", {},
      el("td", {}, c.category), el("td", {}, money(c.total, c.currency)),
      el("td", { class: c.change_vs_previous > 0 ? "up" : "down" }, pct(c.change_vs_previous)),
      el("td", { class: c.change_vs_3_month_average > 0 ? "up" : "down" }, pct(c.change_vs_3_month_average)))));
    const recurringItem = (r) => el("li", {},
      `${r.merchant}: ${money(r.last_amount)} ${r.cadence}, next ${r.next_expected.slice(0, 10)}`,
      r.amount_rose ? el("strong", { class: "up" }, " (went up)") : "");
    fill("recurring", bills.map(recurringItem));
    fill("income", income.map(recurringItem));
    fill("duplicates", s.possible_duplicates.map((d) => el("li", {},
      `${d.merchant}: ${money(d.amount)} twice, ${d.first_at.slice(0, 16).replace("T", " ")}`)));
  }

  const STATUS = { on_track: "on track", at_risk: "at risk", over: "over" };

  function budgetRow(b) {
    const amount = el("input", { value: Number(b.budget).toFixed(2), inputmode: "decimal", "aria-label": `${b.category} budget`, class: "budget-amount" });
    amount.addEventListener("change", () => setBudget(b.category, amount.value).catch(showBudgetError));
    const remove = el("button", { type: "button", class: "quiet", title: `Remove the ${b.category} budget` }, "remove");
    remove.addEventListener("click", async () => {
      await api(`/v1/budgets/${encodeURIComponent(b.category)}`, { method: "DELETE" });
      await loadBudgets();
    });
    const projected = b.projected.method === "final" ? money(b.projected.p50)
      : `${money(b.projected.p50)} (${money(b.projected.p10)}–${money(b.projected.p90)})${b.projected.method === "pace" ? " at this pace" : ""}`;
    return el("tr", { "data-category": b.category, "data-status": b.status },
      el("td", {}, b.category), el("td", {}, amount),
      el("td", {}, `${money(b.spent)} (${(b.spent_share * 100).toFixed(0)}%)`),
      el("td", {}, projected),
      el("td", { class: `status ${b.status}` }, STATUS[b.status]), el("td", {}, remove));
  }

  function showBudgetError(error) { $("budget-error").textContent = error.message; }

  async function setBudget(category, amount) {
    $("budget-error").textContent = "";
    await api(`/v1/budgets/${encodeURIComponent(category)}`, { method: "PUT", body: JSON.stringify({ amount: amount.trim() }) });
    await loadBudgets();
  }

  async function loadBudgets() {
    const month = $("month").value;
    const view = await api(`/v1/budgets${month ? `?month=${month}` : ""}`);
    $("budget-month").textContent = view.month;
    fill("budgets", view.budgets.map(budgetRow));
    const spec = await api(`/v1/charts/budget.json?month=${view.month}`);
    await vegaEmbed("#chart-budget", spec, { actions: false, renderer: "svg", ast: true });
    const known = new Set(view.budgets.map((b) => b.category));
    const summary = month ? await api(`/v1/insights/summary?month=${month}`) : { categories: [] };
    summary.categories.forEach((c) => known.add(c.category));
    $("known-categories").replaceChildren(...[...known].sort().map((c) => el("option", { value: c })));
  }

  const UNDO_MS = 6000;

  function recentRow(t) {
    const category = el("input", { value: t.category || "", list: "known-categories", class: "category-edit", "aria-label": `Category of ${t.transaction_id}` });
    category.addEventListener("change", async () => {
      const value = category.value.trim();
      if (!value) return;
      await api(`/v1/transactions/${encodeURIComponent(t.transaction_id)}`, { method: "PATCH", body: JSON.stringify({ category: value }) });
      category.dataset.saved = value;
    });
    const remove = el("button", { type: "button", class: "quiet", title: "Delete (you can undo for a few seconds)" }, "delete");
    const row = el("tr", { "data-id": t.transaction_id, class: t.excluded ? "excluded" : "" },
      el("td", {}, t.timestamp.slice(0, 10)), el("td", {}, t.display_merchant || t.merchant || t.description || "–"),
      el("td", {}, `${t.direction === "credit" ? "+" : ""}${money(t.amount, t.currency)}`), el("td", {}, category), el("td", {}, remove));
    remove.addEventListener("click", () => deleteWithUndo(t, row));
    return row;
  }

  // A deletion is final once it reaches the pipeline, so it waits a few seconds here first:
  // Undo within them, and nothing was ever sent.
  function deleteWithUndo(t, row) {
    row.hidden = true;
    $("undo-text").textContent = `Deleted ${t.display_merchant || t.merchant || t.transaction_id}.`;
    $("undo").hidden = false;
    const timer = setTimeout(async () => {
      $("undo").hidden = true;
      await api(`/v1/transactions/${encodeURIComponent(t.transaction_id)}`, { method: "DELETE" });
      row.remove();
    }, UNDO_MS);
    $("undo-button").onclick = () => { clearTimeout(timer); row.hidden = false; $("undo").hidden = true; };
  }

  async function loadRecent() {
    const params = query(); params.set("limit", "15");
    const page = await api(`/v1/transactions?${params}`);
    fill("recent", page.items.map(recentRow));
  }

  async function addTransaction() {
    $("add-error").textContent = "";
    const day = $("add-date").value;
    const body = {
      transaction_id: `manual-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
      account_id: $("add-account").value.trim(),
      timestamp: `${day}T12:00:00${localOffset(day)}`,
      amount: $("add-amount").value.trim(),
      currency: state.currency || "USD",
      merchant: $("add-merchant").value.trim(),
      channel: "other",
    };
    const category = $("add-category").value.trim();
    if (category) body.category = category;
    await api("/v1/transactions", { method: "POST", body: JSON.stringify(body) });
    $("add-form").reset();
    $("add-date").value = day;
    setTimeout(() => loadRecent().catch(() => {}), 1500);  // scored and stored within moments
  }

  function localOffset(day) {
    const minutes = -new Date(`${day}T12:00:00`).getTimezoneOffset();
    const sign = minutes >= 0 ? "+" : "-";
    const abs = Math.abs(minutes);
    return `${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
  }

  async function download(format) {
    const response = await fetch(`/v1/exports/transactions.${format}?${query()}`, { headers: { Authorization: `Bearer ${state.key}` } });
    if (!response.ok) throw new Error(`export: ${response.status}`);
    const link = el("a", { href: URL.createObjectURL(await response.blob()), download: `spendstream-transactions.${format}` });
    document.body.append(link); link.click(); link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  async function loadCharts() {
    const params = query();
    await Promise.all(CHARTS.filter((name) => name !== "budget").map(async (name) => {
      const spec = await api(`/v1/charts/${name}.json?${params}`);
      // Vega's expression interpreter instead of generated code: the page's policy forbids eval.
      await vegaEmbed(`#chart-${name}`, spec, { actions: false, renderer: "svg", ast: true });
    }));
  }

  function anomalyItem(a) {
    const reasons = (a.score.explanation || []).map((r) => r.text).join("; ") || "unusual pattern";
    const verdict = el("span", { class: "verdict" }, a.feedback ? `marked ${a.feedback}` : "");
    const vote = (label) => {
      const button = el("button", { type: "button", class: label, "data-id": a.transaction_id, "data-label": label }, label);
      button.addEventListener("click", async () => {
        const saved = await api(`/v1/anomalies/${encodeURIComponent(a.transaction_id)}/feedback`, { method: "POST", body: JSON.stringify({ label }) });
        verdict.textContent = `marked ${saved.label}`;
      });
      return button;
    };
    return el("li", { "data-id": a.transaction_id },
      el("strong", {}, `${money(a.amount, a.currency)} at ${a.merchant || "unknown"}`), ` · score ${a.score.score.toFixed(3)} · ${a.timestamp.slice(0, 16).replace("T", " ")}`,
      el("div", { class: "reasons" }, reasons), vote("fraud"), " ", vote("legit"), verdict);
  }

  async function loadAnomalies(live = false) {
    const params = query(); params.set("limit", live ? "5" : "20");
    const page = await api(`/v1/anomalies?${params}`);
    const list = $("anomalies");
    if (!live) state.seen.clear();
    const fresh = page.items.filter((a) => !state.seen.has(a.transaction_id));
    fresh.forEach((a) => state.seen.add(a.transaction_id));
    if (!live) {
      fill("anomalies", fresh.map(anomalyItem));
      return;
    }
    if (fresh.length) list.querySelector(".empty")?.remove();
    fresh.forEach((a) => list.prepend(anomalyItem(a)));
  }

  async function loadDriftAndForecasts() {
    const params = query();
    const drift = await api(`/v1/drift?${params}`);
    const events = drift.series.flatMap((s) => s.points.filter((p) => p.status === "drift").map((p) => ({ ...p, account: s.account_id })));
    fill("drift", events.slice(-8).reverse().map((p) => el("li", {},
      `${p.account}, week to ${p.window_end.slice(0, 10)}: ${p.breached.join(", ")} ` +
      `(category JSD ${fixed(p.category_jsd)}, amount JSD ${fixed(p.amount_jsd)})` +
      (p.top_contributors.length ? ` · moved most: ${p.top_contributors.slice(0, 3).map((c) => c.category).join(", ")}` : ""))));
    const fc = await api(`/v1/forecasts?${params}`);
    const next = {};
    fc.series.forEach((s) => {
      const m = s.monthly.find((x) => x.days >= 28) || s.monthly[0];
      if (!m) return;
      const row = (next[s.category] ||= { p10: 0, p50: 0, p90: 0 });
      ["p10", "p50", "p90"].forEach((q) => (row[q] += Number(m[q])));
    });
    fill("forecasts", Object.entries(next).sort((a, b) => b[1].p50 - a[1].p50).map(([c, v]) =>
      el("tr", {}, el("td", {}, c), el("td", {}, money(v.p10)), el("td", {}, money(v.p50)), el("td", {}, money(v.p90)))));
    if (fc.run && !fc.run.backtest) {
      $("backtest").textContent = "The backtest is shown once forecasts cover at least 5 people (it is an aggregate over all of them).";
    } else if (fc.run) {
      const b = fc.run.backtest;
      const lastMonth = b.last_month ? `, same as last month ${fixed(b.last_month.mase)}` : "";
      const held = b.model.coverage_80 === null ? "n/a" : `${(b.model.coverage_80 * 100).toFixed(0)}%`;
      $("backtest").textContent = `Backtest of month totals: MASE ${fixed(b.model.mase)} vs seasonal naive ${fixed(b.seasonal_naive.mase)}${lastMonth} (lower is better); ` +
        `the 80% interval held ${held} of outcomes. Recurring bills are forecast at their amount and date.`;
    } else {
      $("backtest").textContent = "";
    }
  }

  async function loadClusters() {
    const found = await api("/v1/categories/clusters");
    fill("clusters", found.clusters.filter((c) => c.size > 1).slice(0, 12).map((c) => el("li", {},
      el("strong", {}, c.label), ` · ${c.size} merchants: `,
      c.members.slice(0, 5).map((m) => m.text).join(", ") + (c.size > 5 ? ", ..." : ""))));
  }

  async function refresh() {
    await Promise.all([loadSummary(), loadCharts(), loadAnomalies(), loadDriftAndForecasts(), loadClusters(), loadBudgets(), loadRecent()]);
    document.body.dataset.loaded = "true";
  }

  async function open() {
    $("key-prompt").hidden = true; $("dashboard").hidden = false; $("picker").hidden = false;
    $("add-date").value = new Date().toLocaleDateString("en-CA");  // YYYY-MM-DD, local
    await loadPickers();
    await refresh();
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = $("key").value.trim();
    localStorage.setItem("spendstream.key", state.key);
    open().catch((e) => console.warn(e.message));
  });
  $("forget-key").addEventListener("click", () => forgetKey());
  $("account").addEventListener("change", () => refresh());
  $("month").addEventListener("change", () => Promise.all([loadSummary(), loadBudgets()]));
  $("budget-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setBudget($("budget-category").value.trim(), $("budget-amount").value)
      .then(() => { $("budget-form").reset(); })
      .catch(showBudgetError);
  });
  $("add-form").addEventListener("submit", (event) => {
    event.preventDefault();
    addTransaction().catch((e) => { $("add-error").textContent = e.message; });
  });
  $("export-csv").addEventListener("click", () => download("csv").catch((e) => console.warn(e.message)));
  $("export-xlsx").addEventListener("click", () => download("xlsx").catch((e) => console.warn(e.message)));
  setInterval(() => { if (state.key && !$("dashboard").hidden) loadAnomalies(true).catch(() => {}); }, 15000);

  if (state.key) open().catch((e) => console.warn(e.message)); else forgetKey();
})();
