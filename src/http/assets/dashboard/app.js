// The trackedge admin dashboard: reads the admin API with a bearer token
// kept in this tab's session storage, and draws clicks, conversions and
// payout over time (uPlot), the top partners and offers, payouts owed and
// partner health, in the time zone picked.
//
// Served by the admin listener with a Content-Security-Policy allowing
// only its own origin: no inline script or style, nothing from elsewhere.
// Every text from the API is set with textContent, never parsed as HTML.
//
// When every panel has settled, <body data-ready> becomes "1" (and
// data-failed the number of panels that failed), or "login" while a token
// is wanted: tests wait for that marker, not for a time.
"use strict";

(function () {
  /** Where the token lives: this tab only, gone when it closes. */
  const TOKEN_KEY = "trackedge.dashboard.token";
  /** The stats API refuses longer ranges by default (stats.max_range_days). */
  const MAX_DAYS = 400;

  const $ = (id) => document.getElementById(id);
  const counts = new Intl.NumberFormat();

  /** Bumped by every load: answers of an older one are dropped. */
  let generation = 0;
  /** The uPlot charts on screen, destroyed before the next are drawn. */
  let charts = [];

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // ---------------------------------------------------------------- token

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  /**
   * Reads the URL fragment: a `token` there (a link an operator made) goes
   * into session storage and out of the address bar and history at once;
   * `from`, `to` and `tz` stay, so a reload keeps the view.
   */
  function takeFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    const given = params.get("token");
    if (given) {
      sessionStorage.setItem(TOKEN_KEY, given);
    }
    params.delete("token");
    writeFragment(params);
    return params;
  }

  function writeFragment(params) {
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }

  function showLogin(message) {
    generation++;
    $("panels").hidden = true;
    $("controls").hidden = true;
    $("login").hidden = false;
    setStatus(message || "");
    document.body.dataset.ready = "login";
    $("token").focus();
  }

  // ------------------------------------------------------------ the API

  /** GETs `path` as JSON; a non-2xx answer throws its error message. */
  async function api(path) {
    const resp = await fetch(path, {
      headers: { Authorization: "Bearer " + token(), Accept: "application/json" },
      cache: "no-store",
    });
    let body = null;
    try {
      body = await resp.json();
    } catch (_) {
      // Not JSON: the status line below says what happened.
    }
    if (!resp.ok) {
      const e = body && body.error;
      const message = e
        ? e.message + (e.field ? " (" + e.field + ")" : "")
        : resp.status + " " + resp.statusText;
      throw new ApiError(resp.status, message);
    }
    return body;
  }

  /** Rows of `GET /api/v1/stats` over the view's range and zone. */
  async function stats(view, params) {
    const q = new URLSearchParams({ from: view.from, to: view.to, tz: view.tz });
    for (const [k, v] of Object.entries(params)) {
      q.set(k, v);
    }
    const body = await api("/api/v1/stats?" + q.toString());
    return body.rows || [];
  }

  /** Rows of `GET /api/v1/reports/payouts` over the view's range and zone. */
  async function payouts(view) {
    const q = new URLSearchParams({ from: view.from, to: view.to, tz: view.tz });
    const body = await api("/api/v1/reports/payouts?" + q.toString());
    return body.rows || [];
  }

  // ------------------------------------------------------- dates, zones

  function browserZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    } catch (_) {
      return "UTC";
    }
  }

  function validZone(tz) {
    try {
      new Intl.DateTimeFormat("en", { timeZone: tz });
      return true;
    } catch (_) {
      return false;
    }
  }

  /** Every IANA zone this browser knows, with UTC and `current` surely in. */
  function zones(current) {
    let list = [];
    try {
      list = Intl.supportedValuesOf("timeZone");
    } catch (_) {
      // An older browser: UTC and the current zone still work.
    }
    return Array.from(new Set(list.concat(["UTC", current]))).sort();
  }

  /** Today's date (YYYY-MM-DD) in `tz`. */
  function today(tz) {
    const parts = new Intl.DateTimeFormat("en-CA", {
      timeZone: tz,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
    }).formatToParts(new Date());
    const part = (t) => parts.find((p) => p.type === t).value;
    return part("year") + "-" + part("month") + "-" + part("day");
  }

  /** A calendar date `n` days from `date`: pure date arithmetic, no zone. */
  function addDays(date, n) {
    const d = new Date(date + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  }

  /** The dates from `from` to `to`, both included. */
  function dateList(from, to) {
    const out = [];
    for (let d = from; d <= to && out.length <= MAX_DAYS; d = addDays(d, 1)) {
      out.push(d);
    }
    return out;
  }

  function isDate(s) {
    return /^\d{4}-\d{2}-\d{2}$/.test(s || "") && !isNaN(Date.parse(s + "T00:00:00Z"));
  }

  // ----------------------------------------------------- number display

  /**
   * A decimal string as the API sent it, less trailing zeros past the
   * cents: exact, never through a float.
   */
  function money(s) {
    if (s === null || s === undefined) {
      return "–";
    }
    const m = /^(-?\d+\.\d\d)(\d*?)0*$/.exec(s);
    return m ? m[1] + m[2] : s;
  }

  /** A ratio as a percentage, for reading only. */
  function percent(s) {
    return s === null || s === undefined ? "–" : (Number(s) * 100).toFixed(2) + " %";
  }

  function count(n) {
    return counts.format(n || 0);
  }

  /** Whether a decimal string is zero (or absent). */
  /** The exact sum of decimal strings (BigInt in the smallest unit). */
  function decimalSum(values) {
    const scale = Math.max(0, ...values.map((v) => (v.split(".")[1] || "").length));
    let total = 0n;
    for (const v of values) {
      const neg = v.startsWith("-");
      const [whole, frac = ""] = v.replace("-", "").split(".");
      const units = BigInt(whole + frac.padEnd(scale, "0"));
      total += neg ? -units : units;
    }
    const neg = total < 0n;
    const digits = (neg ? -total : total).toString().padStart(scale + 1, "0");
    const cut = digits.length - scale;
    return (neg ? "-" : "") + digits.slice(0, cut) + (scale ? "." + digits.slice(cut) : "");
  }

  // -------------------------------------------------------------- DOM

  /** A table cell showing `text`, with the raw `value` kept beside it. */
  function cell(text, value, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (value !== undefined && value !== null) {
      td.dataset.value = String(value);
    }
    if (className) {
      td.className = className;
    }
    return td;
  }

  function fillTable(tbody, rows, empty) {
    tbody.replaceChildren();
    for (const cells of rows) {
      const tr = document.createElement("tr");
      tr.append(...cells);
      tbody.append(tr);
    }
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = tbody.parentElement.tHead.rows[0].cells.length;
      td.className = "empty";
      td.textContent = empty;
      tr.append(td);
      tbody.append(tr);
    }
  }

  function setOutput(id, text, value) {
    const out = $(id);
    out.textContent = text;
    out.dataset.value = value === null || value === undefined ? "" : String(value);
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  /** Marks a panel as failed, saying why inside it. */
  function failPanel(section, err) {
    section.classList.add("failed");
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = "Could not load: " + err.message;
    section.append(p);
  }

  function clearPanel(section) {
    section.classList.remove("failed");
    for (const p of section.querySelectorAll("p.error")) {
      p.remove();
    }
  }

  // ------------------------------------------------------------ panels

  function renderTotals(row) {
    const r = row || {};
    setOutput("total-clicks", count(r.clicks), r.clicks || 0);
    setOutput("total-unique_clicks", count(r.unique_clicks), r.unique_clicks || 0);
    setOutput("total-conversions", count(r.conversions), r.conversions || 0);
    setOutput("total-pending", count(r.pending), r.pending || 0);
    setOutput("total-revenue", money(r.revenue || "0"), r.revenue || "0");
    setOutput("total-payout", money(r.payout || "0"), r.payout || "0");
    setOutput("total-cr", percent(r.cr), r.cr);
    setOutput("total-epc", money(r.epc), r.epc);
  }

  /** The chart and its table; days without a row are zeros. */
  function renderDaily(view, rows) {
    const byDay = new Map(rows.map((r) => [r.day, r]));
    const days = dateList(view.from, view.to);
    const xs = [];
    const clicks = [];
    const conversions = [];
    const payout = [];
    const tableRows = [];
    for (const day of days) {
      const r = byDay.get(day) || { clicks: 0, conversions: 0, payout: "0" };
      // uPlot places points by Unix seconds; each day sits at its UTC
      // midnight and the axis is read in UTC, so the labels are the
      // zone's own dates, whatever zone the browser is in.
      xs.push(Date.parse(day + "T00:00:00Z") / 1000);
      clicks.push(r.clicks || 0);
      conversions.push(r.conversions || 0);
      // A float only to place a bar; every payout shown is the string.
      payout.push(Number(r.payout || "0"));
      tableRows.push([
        cell(day, day),
        cell(count(r.clicks), r.clicks || 0),
        cell(count(r.conversions), r.conversions || 0),
        cell(money(r.payout || "0"), r.payout || "0"),
      ]);
    }
    fillTable($("daily-table").querySelector("tbody"), tableRows, "no days in the range");
    drawCharts(xs, clicks, conversions, payout);
  }

  function drawCharts(xs, clicks, conversions, payout) {
    for (const c of charts) {
      c.destroy();
    }
    charts = [];
    const width = chartWidth();
    const utc = (ts) => uPlot.tzDate(new Date(ts * 1000), "UTC");
    // Whole days only: the points are days, an hour tick would repeat
    // its date.
    const dayAxis = {
      values: "{MMM} {D}",
      space: 56,
      incrs: [1, 2, 3, 7, 14, 28, 56, 91, 182, 364].map((d) => d * 86400),
    };
    const day = { label: "Day", value: "{YYYY}-{MM}-{DD}" };
    charts.push(
      new uPlot(
        {
          width,
          height: 260,
          tzDate: utc,
          scales: { conversions: { auto: true } },
          series: [
            day,
            { label: "Clicks", stroke: "#2b6cb0", width: 2, fill: "rgba(43, 108, 176, 0.08)" },
            { label: "Conversions", stroke: "#c05621", width: 2, scale: "conversions" },
          ],
          axes: [dayAxis, { label: "clicks" }, { scale: "conversions", side: 1, label: "conversions", grid: { show: false } }],
        },
        [xs, clicks, conversions],
        $("chart-traffic"),
      ),
    );
    charts.push(
      new uPlot(
        {
          width,
          height: 220,
          tzDate: utc,
          series: [
            day,
            {
              label: "Approved payout",
              stroke: "#2f855a",
              fill: "rgba(47, 133, 90, 0.45)",
              paths: uPlot.paths.bars({ size: [0.6, 48] }),
              points: { show: false },
            },
          ],
          axes: [dayAxis, { label: "payout" }],
        },
        [xs, payout],
        $("chart-payout"),
      ),
    );
  }

  function chartWidth() {
    return Math.max(320, $("chart-traffic").clientWidth || 0);
  }

  /** Top partners or offers: `label` names a row. */
  function renderTop(section, rows, label) {
    fillTable(
      $(section).querySelector("tbody"),
      rows.map((r) => [
        cell(label(r), r.partner_id !== undefined ? r.partner_id : r.offer_id, "text"),
        cell(count(r.clicks), r.clicks || 0),
        cell(count(r.conversions), r.conversions || 0),
        cell(money(r.revenue || "0"), r.revenue || "0"),
        cell(money(r.payout || "0"), r.payout || "0"),
        cell(money(r.epc), r.epc),
      ]),
      "nothing in this range",
    );
  }

  /**
   * The payouts report's rows, and one total row per currency below them
   * (amounts of different currencies are never added up).
   */
  function renderPayouts(rows, names) {
    const amounts = ["approved", "pending", "reversed", "on_hold", "paid", "owed"];
    fillTable(
      $("payouts").querySelector("tbody"),
      rows.map((r) => [
        cell(partnerName(names, r.partner_id), r.partner_id, "text"),
        cell(r.currency, r.currency, "text"),
        ...amounts.map((k) => cell(money(r[k]), r[k], k === "owed" && r[k].startsWith("-") ? "negative" : "")),
        cell(r.paid_through || "never", r.paid_through, "text"),
      ]),
      "nothing earned or owed",
    );
    const foot = $("payouts").querySelector("tfoot");
    foot.replaceChildren();
    const currencies = Array.from(new Set(rows.map((r) => r.currency))).sort();
    for (const currency of currencies) {
      const mine = rows.filter((r) => r.currency === currency);
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.textContent = "Total";
      tr.append(th, cell(currency, currency, "text"));
      for (const k of amounts) {
        const total = decimalSum(mine.map((r) => r[k]).concat(["0"]));
        const td = cell(money(total), total);
        // Currency codes are three capital letters: a safe id.
        td.id = "payouts-" + k + "-" + currency;
        tr.append(td);
      }
      tr.append(cell("", null));
      foot.append(tr);
    }
  }

  function renderHealth(items, tz) {
    const when = new Intl.DateTimeFormat(undefined, { timeZone: tz, dateStyle: "medium", timeStyle: "short" });
    fillTable(
      $("health").querySelector("tbody"),
      items.map((i) => [
        cell(i.name || "#" + i.partner_id, i.partner_id, "text"),
        cell(i.status, i.status, "text status-" + i.status),
        cell((i.reason || "").replace(/_/g, " "), i.reason, "text"),
        cell(count(i.clicks_30d), i.clicks_30d),
        cell(count(i.clicks_prev_30d), i.clicks_prev_30d),
        cell(count(i.conversions_30d), i.conversions_30d),
        cell(money(i.payout_30d), i.payout_30d),
        cell(i.last_click_at ? when.format(new Date(i.last_click_at)) : "never", i.last_click_at),
      ]),
      "no partners yet",
    );
  }

  function partnerName(names, id) {
    return names.get(id) || "partner #" + id;
  }

  /** Offer names by id, one `GET /api/v1/offers/{id}` each. */
  async function offerNames(ids) {
    const names = new Map();
    await Promise.all(
      ids.map((id) =>
        api("/api/v1/offers/" + encodeURIComponent(id))
          .then((o) => names.set(id, o.name))
          .catch((e) => {
            if (e.status === 401) {
              throw e;
            }
            names.set(id, "offer #" + id);
          }),
      ),
    );
    return names;
  }

  // ------------------------------------------------------------- loading

  /** Loads every panel for `view`; settles the ready marker at the end. */
  async function load(view) {
    const gen = ++generation;
    const live = () => gen === generation;
    document.body.dataset.ready = "0";
    delete document.body.dataset.failed;
    setStatus("Loading…");
    const days = dateList(view.from, view.to).length;

    const health = api("/api/v1/partners/health").then((b) => b.items || []);
    // Partner names come with their health; without it, ids must do.
    const names = health
      .then((items) => new Map(items.map((i) => [i.partner_id, i.name])))
      .catch(() => new Map());
    const topMetrics = "clicks,conversions,revenue,payout,epc";

    const panels = [
      [
        "totals",
        stats(view, { metrics: "clicks,unique_clicks,conversions,pending,revenue,payout,cr,epc" }).then(
          (rows) => live() && renderTotals(rows[0]),
        ),
      ],
      [
        "daily",
        stats(view, { group_by: "day", metrics: "clicks,conversions,payout", sort: "day", limit: String(Math.max(days, 1)) }).then(
          (rows) => live() && renderDaily(view, rows),
        ),
      ],
      [
        "top-partners",
        Promise.all([stats(view, { group_by: "partner", metrics: topMetrics, sort: "-payout", limit: "10" }), names]).then(
          ([rows, n]) => live() && renderTop("top-partners", rows, (r) => partnerName(n, r.partner_id)),
        ),
      ],
      [
        "top-offers",
        stats(view, { group_by: "offer", metrics: topMetrics, sort: "-payout", limit: "10" }).then(async (rows) => {
          const n = await offerNames(rows.map((r) => r.offer_id));
          return live() && renderTop("top-offers", rows, (r) => n.get(r.offer_id));
        }),
      ],
      [
        "payouts",
        Promise.all([payouts(view), names]).then(([rows, n]) => live() && renderPayouts(rows, n)),
      ],
      ["health", health.then((items) => live() && renderHealth(items, view.tz))],
    ];
    for (const [id] of panels) {
      clearPanel($(id));
    }
    const results = await Promise.allSettled(panels.map(([, p]) => p));
    if (!live()) {
      return;
    }
    if (results.some((r) => r.status === "rejected" && r.reason.status === 401)) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin("The token was refused: enter it again.");
      return;
    }
    let failed = 0;
    results.forEach((r, i) => {
      if (r.status === "rejected") {
        failed++;
        failPanel($(panels[i][0]), r.reason);
      }
    });
    const shown = view.from + " to " + view.to + ", " + view.tz + ". ";
    setStatus(
      shown +
        (failed
          ? failed + " of " + panels.length + " panels could not be loaded."
          : "Updated " + new Date().toLocaleTimeString() + "."),
    );
    document.body.dataset.failed = String(failed);
    document.body.dataset.ready = "1";
  }

  // ------------------------------------------------------------- controls

  /** The view in the controls, or null (with a message) if it is wrong. */
  function readControls() {
    const view = { from: $("from").value, to: $("to").value, tz: $("tz").value };
    if (!isDate(view.from) || !isDate(view.to)) {
      setStatus("Pick both dates.");
      return null;
    }
    if (view.from > view.to) {
      setStatus("The first day is after the last.");
      return null;
    }
    if (dateList(view.from, view.to).length > MAX_DAYS) {
      setStatus("Pick at most " + MAX_DAYS + " days.");
      return null;
    }
    return view;
  }

  function apply() {
    const view = readControls();
    if (!view) {
      return;
    }
    writeFragment(new URLSearchParams(view));
    load(view);
  }

  /** Shows the panels for the fragment's view, or the defaults. */
  function start(params) {
    const wanted = params.get("tz");
    const tz = wanted && validZone(wanted) ? wanted : browserZone();
    const select = $("tz");
    select.replaceChildren(
      ...zones(tz).map((z) => {
        const o = document.createElement("option");
        o.value = o.textContent = z;
        return o;
      }),
    );
    select.value = tz;
    const to = isDate(params.get("to")) ? params.get("to") : today(tz);
    const from = isDate(params.get("from")) ? params.get("from") : addDays(to, -29);
    $("from").value = from;
    $("to").value = to;
    $("login").hidden = true;
    $("controls").hidden = false;
    $("panels").hidden = false;
    apply();
  }

  function init() {
    const params = takeFragment();
    $("login-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const given = $("token").value.trim();
      if (given) {
        sessionStorage.setItem(TOKEN_KEY, given);
        $("token").value = "";
        start(new URLSearchParams(location.hash.slice(1)));
      }
    });
    $("controls").addEventListener("submit", (e) => {
      e.preventDefault();
      apply();
    });
    // A new zone re-asks every panel at once: days begin elsewhere.
    $("tz").addEventListener("change", apply);
    $("forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin("Token forgotten.");
    });
    window.addEventListener("resize", () => {
      const width = chartWidth();
      for (const c of charts) {
        c.setSize({ width, height: c.height });
      }
    });
    if (token()) {
      start(params);
    } else {
      showLogin("");
    }
  }

  init();
})();
