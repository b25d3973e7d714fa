// The trackedge partner portal: the partner API, read with the partner's
// own key (kept in this tab's session storage), shown as panels: the
// partner and its tier history, totals and clicks and conversions per day
// (uPlot) in the time zone picked, links with copy buttons and a form for
// new ones, conversions latest first, payouts, and deals with a form to
// register one. A panel whose route this server lacks says it is not
// available, and the others still load.
//
// Served on the public listener with a Content-Security-Policy allowing
// only its own origin: no inline script or style, nothing from elsewhere.
//
// When every panel has settled, <body data-ready> becomes "1", with
// data-failed the number of panels that failed and data-unavailable the
// panels this server has no route for; or "login" while a key is wanted.
// Tests wait for that marker, not for a time.
"use strict";

(function () {
  const P = window.Portal;
  const { $, cell, count, money, when } = P;

  /** The stats API refuses longer ranges by default (stats.max_range_days). */
  const MAX_DAYS = 400;
  /** Conversions shown; the listing is read up to 5 pages of 1000. */
  const SHOWN_CONVERSIONS = 100;

  /** Bumped by every load: answers of an older one are dropped. */
  let generation = 0;
  /** The view on screen, reloaded after a link or deal is made. */
  let current = null;
  /** The uPlot chart on screen, destroyed before the next is drawn. */
  let chart = null;

  function setStatus(text) {
    $("status").textContent = text;
  }

  function showLogin(message) {
    generation++;
    $("panels").hidden = true;
    $("controls").hidden = true;
    $("login").hidden = false;
    setStatus(message || "");
    document.body.dataset.ready = "login";
    $("key").focus();
  }

  // ------------------------------------------------------------ panels

  function renderPartner(me, tz) {
    P.show("partner-name", me.name, me.id);
    P.show("partner-id", String(me.id), me.id);
    P.show("partner-kind", me.kind, me.kind);
    P.show("partner-tier", me.tier || "none", me.tier || "");
    P.show("partner-status", me.status, me.status);
    $("partner-status").className = "status-" + me.status;
    const history = me.tier_history;
    P.fillTable(
      $("tier-history"),
      Array.isArray(history)
        ? history
            .slice()
            .reverse()
            .map((c) => [
              cell(when(c.at, tz, ""), c.at),
              cell(c.from || "none", c.from || "", "text"),
              cell(c.to || "none", c.to || "", "text"),
              cell(c.reason || c.kind || "", c.kind, "text"),
            ])
        : [],
      Array.isArray(history) ? "no tier changes yet" : "not available on this server",
    );
  }

  function renderTotals(row) {
    const r = row || {};
    P.show("total-clicks", count(r.clicks), r.clicks || 0);
    P.show("total-conversions", count(r.conversions), r.conversions || 0);
    P.show("total-pending", count(r.pending), r.pending || 0);
    P.show("total-payout", money(r.payout || "0"), r.payout || "0");
    P.show("total-cr", P.percent(r.cr), r.cr);
    P.show("total-epc", money(r.epc), r.epc);
  }

  /** The chart and its table; days without a row are zeros. */
  function renderDaily(view, rows) {
    const byDay = new Map(rows.map((r) => [r.day, r]));
    const xs = [];
    const clicks = [];
    const conversions = [];
    const table = [];
    for (const day of P.dateList(view.from, view.to, MAX_DAYS)) {
      const r = byDay.get(day) || { clicks: 0, conversions: 0, payout: "0" };
      // Each day at its UTC midnight, the axis read in UTC: the labels
      // are the picked zone's own dates, whatever zone the browser is in.
      xs.push(Date.parse(day + "T00:00:00Z") / 1000);
      clicks.push(r.clicks || 0);
      conversions.push(r.conversions || 0);
      table.push([
        cell(day, day),
        cell(count(r.clicks), r.clicks || 0),
        cell(count(r.conversions), r.conversions || 0),
        cell(money(r.payout || "0"), r.payout || "0"),
      ]);
    }
    P.fillTable($("daily-table"), table, "no days in the range");
    drawChart(xs, clicks, conversions);
  }

  function drawChart(xs, clicks, conversions) {
    if (chart) {
      chart.destroy();
    }
    chart = new uPlot(
      {
        width: chartWidth(),
        height: 260,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "UTC"),
        scales: { conversions: { auto: true } },
        series: [
          { label: "Day", value: "{YYYY}-{MM}-{DD}" },
          { label: "Clicks", stroke: "#2b6cb0", width: 2, fill: "rgba(43, 108, 176, 0.08)" },
          { label: "Conversions", stroke: "#c05621", width: 2, scale: "conversions" },
        ],
        axes: [
          // Whole days only: an hour tick would repeat its date.
          { values: "{MMM} {D}", space: 56, incrs: [1, 2, 3, 7, 14, 28, 56, 91, 182, 364].map((d) => d * 86400) },
          { label: "clicks" },
          { scale: "conversions", side: 1, label: "conversions", grid: { show: false } },
        ],
      },
      [xs, clicks, conversions],
      $("chart-traffic"),
    );
  }

  function chartWidth() {
    return Math.max(320, $("chart-traffic").clientWidth || 0);
  }

  function offerName(offers, id) {
    const o = offers.get(id);
    return o ? o.name : "offer #" + id;
  }

  /** The offers the partner may promote, as `[id, label]` pairs. */
  function promotable(offers) {
    return Array.from(offers.values())
      .filter((o) => o.may_promote)
      .map((o) => [o.id, o.name + " (#" + o.id + ")"]);
  }

  /** A cell with the tracking URL and a button that copies it. */
  function urlCell(code, url) {
    const td = cell("", url, "text url");
    td.id = "link-" + code + "-url";
    const text = document.createElement("code");
    text.textContent = url;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = "Copy";
    button.dataset.copy = url;
    td.append(text, " ", button);
    return td;
  }

  /** Links, with their clicks and conversions over the range. */
  function renderLinks(links, linkStats, offers) {
    const byLink = new Map(linkStats.map((r) => [r.link_id, r]));
    P.fillTable(
      $("links-table"),
      links.map((l) => {
        const s = byLink.get(l.id) || {};
        // Codes are 1 to 32 of [0-9A-Za-z]: safe in an id.
        const clicks = cell(count(s.clicks), s.clicks || 0);
        clicks.id = "link-" + l.code + "-clicks";
        const conversions = cell(count(s.conversions), s.conversions || 0);
        conversions.id = "link-" + l.code + "-conversions";
        return [
          cell(l.code, l.id, "text"),
          cell(offerName(offers, l.offer_id), l.offer_id, "text"),
          cell(l.status, l.status, "text status-" + l.status),
          clicks,
          conversions,
          urlCell(l.code, l.tracking_url),
        ];
      }),
      "no links yet: create one below",
    );
    const choices = promotable(offers);
    P.fillSelect($("link-offer"), choices);
    $("link-form").hidden = choices.length === 0;
  }

  /** Conversions of the view's days in its zone, latest first. */
  function renderConversions(view, listing, offers) {
    const mine = listing.items
      .filter((c) => {
        const day = P.dateIn(new Date(c.ts), view.tz);
        return day >= view.from && day <= view.to;
      })
      .sort((a, b) => Date.parse(b.ts) - Date.parse(a.ts) || (a.conversion_id < b.conversion_id ? 1 : -1));
    P.fillTable(
      $("conversions-table"),
      mine.slice(0, SHOWN_CONVERSIONS).map((c) => [
        cell(when(c.ts, view.tz, ""), c.ts),
        cell(c.conversion_id, c.conversion_id, "text"),
        cell(offerName(offers, c.offer_id), c.offer_id, "text"),
        cell(c.event, c.event, "text"),
        cell(c.status, c.status, "text status-" + c.status),
        cell(money(c.amount) + " " + c.currency, c.amount),
        cell(money(c.payout) + " " + c.payout_currency, c.payout),
      ]),
      "no conversions in the range",
    );
    const more = mine.length > SHOWN_CONVERSIONS ? "the latest " + SHOWN_CONVERSIONS + " of " + mine.length + " shown" : "";
    const cut = listing.complete ? "" : "only the first " + listing.items.length + " of the range were read";
    $("conversions-note").textContent = [more, cut].filter(Boolean).join("; ");
  }

  function renderPayouts(body, tz) {
    const amounts = ["approved", "pending", "reversed", "on_hold", "payable", "paid", "owed"];
    P.fillTable(
      $("balances"),
      (body.balances || []).map((b) => [
        cell(b.currency, b.currency, "text"),
        ...amounts.map((k) => {
          const td = cell(money(b[k]), b[k], String(b[k] || "").startsWith("-") ? "negative" : "");
          // Currency codes are three capital letters: a safe id.
          td.id = "balance-" + k + "-" + b.currency;
          return td;
        }),
        cell(b.paid_through || "never", b.paid_through, "text"),
      ]),
      "nothing earned yet",
    );
    P.fillTable(
      $("payments"),
      (body.payments || []).map((p) => [
        cell(when(p.paid_at, tz, ""), p.paid_at),
        cell(p.currency, p.currency, "text"),
        cell(money(p.amount), p.amount),
        cell(p.paid_through, p.paid_through, "text"),
        cell(p.note || "", p.note, "text"),
      ]),
      "no payments yet",
    );
    P.show(
      "payable-through",
      body.payable_through
        ? "Payable is approved payout past its hold through " + body.payable_through + ", less what was paid."
        : "",
      body.payable_through,
    );
  }

  function renderDeals(items, offers, tz) {
    P.fillTable(
      $("deals-table"),
      items.map((d) => {
        const status = cell(d.status, d.status, "text status-" + d.status);
        status.id = "deal-" + d.id + "-status";
        if (d.rejection_reason) {
          status.title = d.rejection_reason;
        }
        return [
          cell(when(d.created_at, tz, ""), d.id),
          cell(d.company, d.company, "text"),
          cell(offerName(offers, d.offer_id), d.offer_id, "text"),
          cell(d.customer_id || d.domain || "", d.customer_id || d.domain, "text"),
          cell(d.expected_value ? money(d.expected_value) + " " + d.currency : "–", d.expected_value),
          status,
          cell(d.protected_until ? when(d.protected_until, tz, "") : "", d.protected_until, "text"),
        ];
      }),
      "no deals registered",
    );
    const choices = promotable(offers);
    P.fillSelect($("deal-offer"), choices);
    $("deal-form").hidden = choices.length === 0;
  }

  // -------------------------------------------------------- panel state

  function clearPanel(section) {
    section.classList.remove("failed", "unavailable");
    for (const p of section.querySelectorAll("p.error, p.unavailable")) {
      p.remove();
    }
    for (const f of section.querySelectorAll("form")) {
      f.classList.remove("off");
    }
  }

  /** Marks a panel failed (or, if its route is missing, unavailable). */
  function markPanel(section, err) {
    const p = document.createElement("p");
    if (err.noRoute) {
      section.classList.add("unavailable");
      p.className = "unavailable";
      p.textContent = "Not available on this server.";
      for (const f of section.querySelectorAll("form")) {
        f.classList.add("off");
      }
    } else {
      section.classList.add("failed");
      p.className = "error";
      p.textContent = "Could not load: " + err.message;
    }
    section.append(p);
  }

  // ------------------------------------------------------------- loading

  /** Loads every panel for `view`; settles the ready marker at the end. */
  async function load(view) {
    const gen = ++generation;
    const live = () => gen === generation;
    current = view;
    document.body.dataset.ready = "0";
    delete document.body.dataset.failed;
    delete document.body.dataset.unavailable;
    setStatus("Loading…");
    const range = { from: view.from, to: view.to, tz: view.tz };
    const days = P.dateList(view.from, view.to, MAX_DAYS).length;
    const stats = (params) => P.api(P.withQuery("stats", Object.assign({}, range, params))).then((b) => b.rows || []);
    // Offer names and what may be promoted; without them, ids must do.
    const offers = P.api("offers?scope=visible")
      .then((b) => new Map((b.items || []).map((o) => [o.id, o])))
      .catch((e) => {
        if (e.status === 401 || e.status === 403) {
          throw e;
        }
        return new Map();
      });
    // The listing's days are UTC: a day either side covers every zone.
    const conversions = P.all("conversions", { from: P.addDays(view.from, -1), to: P.addDays(view.to, 1) }, 1000, 5);

    const panels = [
      ["partner", P.api("me").then((me) => live() && renderPartner(me, view.tz))],
      [
        "totals",
        stats({ metrics: "clicks,conversions,pending,payout,cr,epc" }).then((rows) => live() && renderTotals(rows[0])),
      ],
      [
        "daily",
        stats({ group_by: "day", metrics: "clicks,conversions,payout", sort: "day", limit: Math.max(days, 1) }).then(
          (rows) => live() && renderDaily(view, rows),
        ),
      ],
      [
        "links",
        Promise.all([
          P.all("links", {}, 1000, 5),
          stats({ group_by: "link", metrics: "clicks,conversions", limit: 1000 }),
          offers,
        ]).then(([links, s, o]) => live() && renderLinks(links.items, s, o)),
      ],
      [
        "conversions",
        Promise.all([conversions, offers]).then(([c, o]) => live() && renderConversions(view, c, o)),
      ],
      ["payouts", P.api(P.withQuery("payouts", range)).then((b) => live() && renderPayouts(b, view.tz))],
      [
        "deals",
        Promise.all([P.all("deals", {}, undefined, 5), offers]).then(
          ([d, o]) => live() && renderDeals(d.items, o, view.tz),
        ),
      ],
    ];
    for (const [id] of panels) {
      clearPanel($(id));
    }
    const results = await Promise.allSettled(panels.map(([, p]) => p));
    if (!live()) {
      return;
    }
    const refusal = results.find((r) => r.status === "rejected" && (r.reason.status === 401 || r.reason.status === 403));
    if (refusal) {
      P.setKey(null);
      showLogin(
        refusal.reason.status === 401
          ? "The key was refused: enter it again."
          : "The partner API refused this key: " + refusal.reason.message + ".",
      );
      return;
    }
    let failed = 0;
    const unavailable = [];
    results.forEach((r, i) => {
      if (r.status === "rejected") {
        const id = panels[i][0];
        markPanel($(id), r.reason);
        if (r.reason.noRoute) {
          unavailable.push(id);
        } else {
          failed++;
        }
      }
    });
    setStatus(
      view.from +
        " to " +
        view.to +
        ", " +
        view.tz +
        ". " +
        (failed ? failed + " of " + panels.length + " panels could not be loaded." : "Updated " + new Date().toLocaleTimeString() + "."),
    );
    document.body.dataset.failed = String(failed);
    document.body.dataset.unavailable = unavailable.join(" ");
    document.body.dataset.ready = "1";
  }

  // ------------------------------------------------------------- forms

  /** Sends a form's request; says what happened in `output`, reloads. */
  async function submit(form, output, path, body, done) {
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    output.className = "";
    output.textContent = "Sending…";
    try {
      const made = await P.api(path, body);
      output.textContent = done(made);
      form.reset();
      load(current);
    } catch (e) {
      output.className = "error";
      output.textContent = e.message + (e.field ? " (" + e.field + ")" : "");
    } finally {
      button.disabled = false;
    }
  }

  function createLink(e) {
    e.preventDefault();
    const body = { offer_id: Number($("link-offer").value) };
    const code = $("link-code").value.trim();
    if (code) {
      body.code = code;
    }
    submit($("link-form"), $("link-result"), "links", body, (l) => "Created " + l.code + ": " + l.tracking_url);
  }

  function registerDeal(e) {
    e.preventDefault();
    const body = { company: $("deal-company").value.trim(), offer_id: Number($("deal-offer").value) };
    const optional = [
      ["customer_id", "deal-customer"],
      ["contact_email", "deal-email"],
      ["expected_value", "deal-value"],
      ["notes", "deal-notes"],
    ];
    for (const [field, id] of optional) {
      const v = $(id).value.trim();
      if (v) {
        body[field] = v;
      }
    }
    if (!body.customer_id && !body.contact_email) {
      $("deal-result").className = "error";
      $("deal-result").textContent = "Give the customer id or a contact email, to match the sale by.";
      return;
    }
    submit($("deal-form"), $("deal-result"), "deals", body, (d) => "Registered deal #" + d.id + " (" + d.status + ")");
  }

  async function copyLink(e) {
    const button = e.target.closest("button.copy");
    if (!button) {
      return;
    }
    try {
      await P.copy(button.dataset.copy);
      button.textContent = "Copied";
    } catch (err) {
      button.textContent = "Copy failed";
    }
    setTimeout(() => (button.textContent = "Copy"), 2000);
  }

  // ------------------------------------------------------------- controls

  /** The view in the controls, or null (with a message) if it is wrong. */
  function readControls() {
    const view = { from: $("from").value, to: $("to").value, tz: $("tz").value };
    if (!P.isDate(view.from) || !P.isDate(view.to)) {
      setStatus("Pick both dates.");
      return null;
    }
    if (view.from > view.to) {
      setStatus("The first day is after the last.");
      return null;
    }
    if (P.dateList(view.from, view.to, MAX_DAYS).length > MAX_DAYS) {
      setStatus("Pick at most " + MAX_DAYS + " days.");
      return null;
    }
    return view;
  }

  function apply() {
    const view = readControls();
    if (view) {
      P.writeFragment(new URLSearchParams(view));
      load(view);
    }
  }

  /** Shows the panels for the fragment's view, or the last 30 days. */
  function start(params) {
    const wanted = params.get("tz");
    const tz = wanted && P.validZone(wanted) ? wanted : P.browserZone();
    P.fillSelect(
      $("tz"),
      P.zones(tz).map((z) => [z, z]),
    );
    $("tz").value = tz;
    const to = P.isDate(params.get("to")) ? params.get("to") : P.dateIn(new Date(), tz);
    $("to").value = to;
    $("from").value = P.isDate(params.get("from")) ? params.get("from") : P.addDays(to, -29);
    $("login").hidden = true;
    $("controls").hidden = false;
    $("panels").hidden = false;
    apply();
  }

  function init() {
    const params = P.takeFragment();
    $("login-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const given = $("key").value.trim();
      if (given) {
        P.setKey(given);
        $("key").value = "";
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
      P.setKey(null);
      showLogin("Key forgotten.");
    });
    $("link-form").addEventListener("submit", createLink);
    $("deal-form").addEventListener("submit", registerDeal);
    $("links-table").addEventListener("click", copyLink);
    window.addEventListener("resize", () => {
      if (chart) {
        chart.setSize({ width: chartWidth(), height: chart.height });
      }
    });
    if (P.key()) {
      start(params);
    } else {
      showLogin("");
    }
  }

  init();
})();
