// The partner portal's toolbox: the partner key in session storage, calls
// to the partner API with it, calendar dates and time zones, exact money
// display, and DOM helpers. app.js builds the panels on it.
//
// Every text from the API is set with textContent, never parsed as HTML.
"use strict";

window.Portal = (function () {
  /** Where the key lives: this tab only, gone when it closes. */
  const KEY = "trackedge.portal.key";
  const counts = new Intl.NumberFormat();

  /** A refused call: its HTTP status, the error's message and field. */
  class ApiError extends Error {
    constructor(status, message, code) {
      super(message);
      this.status = status;
      this.code = code || "";
    }

    /**
     * Whether the route itself does not exist on this server (one built
     * before it), as against an id it does not know.
     */
    get noRoute() {
      return this.status === 404 && this.message === "no such route";
    }
  }

  // ------------------------------------------------------------------ key

  function key() {
    return sessionStorage.getItem(KEY);
  }

  function setKey(k) {
    if (k) {
      sessionStorage.setItem(KEY, k);
    } else {
      sessionStorage.removeItem(KEY);
    }
  }

  /**
   * Reads the URL fragment: a `key` there (a link the partner was given)
   * goes into session storage and out of the address bar and history at
   * once; `from`, `to` and `tz` stay, so a reload keeps the view.
   */
  function takeFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    const given = params.get("key");
    if (given) {
      setKey(given);
    }
    params.delete("key");
    writeFragment(params);
    return params;
  }

  function writeFragment(params) {
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }

  // -------------------------------------------------------------- the API

  /**
   * Calls `path` of the partner API (`/partner/v1/` + path) with the key,
   * sending `body` as JSON when given; a non-2xx answer throws an
   * ApiError with the API's message and the field it names.
   */
  async function api(path, body) {
    const init = {
      headers: { Authorization: "Bearer " + key(), Accept: "application/json" },
      cache: "no-store",
    };
    if (body !== undefined) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch("/partner/v1/" + path, init);
    let answer = null;
    try {
      answer = await resp.json();
    } catch (_) {
      // Not JSON: the status line below says what happened.
    }
    if (!resp.ok) {
      const e = answer && answer.error;
      const message = e ? e.message : resp.status + " " + resp.statusText;
      const err = new ApiError(resp.status, message, e && e.code);
      err.field = e && e.field;
      throw err;
    }
    return answer;
  }

  /** `path` with the query `params` (an object; empty values left out). */
  function withQuery(path, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== "") {
        q.set(k, String(v));
      }
    }
    const s = q.toString();
    return s ? path + "?" + s : path;
  }

  /**
   * Every item of a listing (`{items, next_cursor}`), page after page, at
   * most `pages` pages of `limit`.
   */
  async function all(path, params, limit, pages) {
    let items = [];
    let cursor = "";
    for (let n = 0; n < pages; n++) {
      const page = await api(withQuery(path, Object.assign({}, params, { limit: limit, cursor: cursor })));
      items = items.concat(page.items || []);
      cursor = page.next_cursor;
      if (!cursor) {
        return { items: items, complete: true };
      }
    }
    return { items: items, complete: false };
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

  /** The calendar date (YYYY-MM-DD) of the instant `when` in `tz`. */
  function dateIn(when, tz) {
    const parts = new Intl.DateTimeFormat("en-CA", {
      timeZone: tz,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
    }).formatToParts(when);
    const part = (t) => parts.find((p) => p.type === t).value;
    return part("year") + "-" + part("month") + "-" + part("day");
  }

  /** A calendar date `n` days from `date`: pure date arithmetic, no zone. */
  function addDays(date, n) {
    const d = new Date(date + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  }

  /** The dates from `from` to `to`, both included, at most `max` + 1. */
  function dateList(from, to, max) {
    const out = [];
    for (let d = from; d <= to && out.length <= max; d = addDays(d, 1)) {
      out.push(d);
    }
    return out;
  }

  function isDate(s) {
    return /^\d{4}-\d{2}-\d{2}$/.test(s || "") && !isNaN(Date.parse(s + "T00:00:00Z"));
  }

  /** An RFC 3339 time as a date and time in `tz`, or `none` without one. */
  function when(s, tz, none) {
    if (!s) {
      return none;
    }
    const d = new Date(s);
    if (isNaN(d.getTime())) {
      return s;
    }
    return new Intl.DateTimeFormat(undefined, { timeZone: tz, dateStyle: "medium", timeStyle: "short" }).format(d);
  }

  // ----------------------------------------------------- number display

  /**
   * A decimal string as the API sent it, less trailing zeros past the
   * cents: exact, never through a float.
   */
  function money(s) {
    if (s === null || s === undefined || s === "") {
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

  // -------------------------------------------------------------- DOM

  const $ = (id) => document.getElementById(id);

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

  /** Fills `table`'s body with `rows` (arrays of cells), or says `empty`. */
  function fillTable(table, rows, empty) {
    const tbody = table.tBodies[0];
    tbody.replaceChildren();
    for (const cells of rows) {
      const tr = document.createElement("tr");
      tr.append(...cells);
      tbody.append(tr);
    }
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = table.tHead.rows[0].cells.length;
      td.className = "empty";
      td.textContent = empty;
      tr.append(td);
      tbody.append(tr);
    }
  }

  /** Sets an element's text and its raw value (`data-value`). */
  function show(id, text, value) {
    const el = $(id);
    el.textContent = text;
    el.dataset.value = value === null || value === undefined ? "" : String(value);
  }

  /** Options of a select: `[value, label]` pairs. */
  function fillSelect(select, pairs) {
    const kept = select.value;
    select.replaceChildren(
      ...pairs.map(([value, label]) => {
        const o = document.createElement("option");
        o.value = String(value);
        o.textContent = label;
        return o;
      }),
    );
    if (pairs.some(([v]) => String(v) === kept)) {
      select.value = kept;
    }
  }

  /**
   * Copies `text` to the clipboard: the Clipboard API where the page may
   * use it, else a selected hidden field and the older copy command.
   */
  async function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    const field = document.createElement("textarea");
    field.value = text;
    field.setAttribute("readonly", "");
    field.className = "offscreen";
    document.body.append(field);
    field.select();
    const done = document.execCommand("copy");
    field.remove();
    if (!done) {
      throw new Error("the browser refused to copy");
    }
  }

  return {
    ApiError,
    key,
    setKey,
    takeFragment,
    writeFragment,
    api,
    withQuery,
    all,
    browserZone,
    validZone,
    zones,
    dateIn,
    addDays,
    dateList,
    isDate,
    when,
    money,
    percent,
    count,
    $,
    cell,
    fillTable,
    show,
    fillSelect,
    copy,
  };
})();
