/* trackedge t.js: keeps the click id of a tracked visit in a first-party
 * cookie and, on a confirmation page, reports the sale through the
 * tracker's /pixel. No dependencies; ES5; never throws into the page. */
(function (w, d) {
  "use strict";
  var NAME = "te_click_id", DAY = 86400, sent = {}, base = "", tag = null;

  function dec(s) {
    try { return decodeURIComponent(s.replace(/\+/g, " ")); } catch (e) { return ""; }
  }

  // A click id is base62; anything else is not ours and is not stored.
  function valid(id) { return /^[0-9A-Za-z]{16,64}$/.test(id || ""); }

  function fromUrl() {
    var q = w.location.search.substring(1).split("&");
    for (var i = 0; i < q.length; i++) {
      var at = q[i].indexOf("=");
      if (at > 0 && dec(q[i].substring(0, at)) === "click_id") {
        var v = dec(q[i].substring(at + 1));
        if (valid(v)) return v;
      }
    }
    return "";
  }

  function fromCookie() {
    var c = d.cookie ? d.cookie.split(/;\s*/) : [];
    for (var i = 0; i < c.length; i++) {
      if (c[i].indexOf(NAME + "=") === 0) {
        var v = dec(c[i].substring(NAME.length + 1));
        if (valid(v)) return v;
      }
    }
    return "";
  }

  function days() {
    var n = parseFloat(tag && tag.getAttribute("data-days"));
    return n > 0 && n < 1e4 ? n : 30;
  }

  function store(id) {
    d.cookie = NAME + "=" + id + "; path=/; max-age=" + Math.round(days() * DAY) +
      "; SameSite=Lax" + (w.location.protocol === "https:" ? "; Secure" : "");
  }

  // The tag that loaded this file: its origin is the tracker's.
  function self() {
    if (d.currentScript && d.currentScript.src) return d.currentScript;
    var all = d.getElementsByTagName("script");
    for (var i = all.length - 1; i >= 0; i--) {
      if (/\/t\.js([?#]|$)/.test(all[i].src || "")) return all[i];
    }
    return null;
  }

  function origin(src) {
    var a = d.createElement("a");
    a.href = src;
    return a.protocol + "//" + a.host;
  }

  // One pixel per order and event per page load; the tracker dedups too.
  function convert(o) {
    try {
      o = o || {};
      var id = fromUrl() || fromCookie(), q = "click_id=" + encodeURIComponent(id);
      var keys = ["order_id", "amount", "currency", "event"], once = "";
      if (!id || !base || (!o.order_id && !o.event)) return false;
      for (var i = 0; i < keys.length; i++) {
        var v = o[keys[i]];
        if (v !== undefined && v !== null && v !== "") {
          q += "&" + keys[i] + "=" + encodeURIComponent(String(v));
          if (i === 0 || i === 3) once += "|" + v;
        }
      }
      if (sent[once]) return false;
      sent[once] = 1;
      var img = new Image(1, 1);
      img.src = base + "/pixel?" + q;
      return true;
    } catch (e) {
      return false;
    }
  }

  try {
    tag = self();
    base = tag ? origin(tag.src) : "";
    var api = w.trackedge;
    if (api && api._sent) {
      // Loaded twice on one page: share the first copy's memory of pixels.
      sent = api._sent;
    } else {
      w.trackedge = { convert: convert, _sent: sent };
    }
    var id = fromUrl();
    if (id) store(id);
    if (tag) {
      var attr = function (n) { return tag.getAttribute("data-" + n); };
      if (attr("order-id") || attr("event")) {
        convert({ order_id: attr("order-id"), amount: attr("amount"),
          currency: attr("currency"), event: attr("event") });
      }
    }
  } catch (e) {
    // A tracking snippet must never break the merchant's page.
  }
})(window, document);
