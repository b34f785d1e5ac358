// Tributary UI: refreshes the live parts of a page and tails task logs.
// No framework, no external script: everything here is served by the binary.
(function () {
  "use strict";
  var REFRESH_MS = 2500;

  // Selects that submit their form on change (no inline handlers: the
  // Content-Security-Policy allows scripts from this server only).
  document.querySelectorAll("select[data-autosubmit]").forEach(function (el) {
    el.addEventListener("change", function () { el.form.submit(); });
  });
  // Destructive buttons carry `data-confirm`: ask first. Delegated, so
  // buttons inside live regions (replaced on refresh) are covered too.
  document.addEventListener("submit", function (e) {
    var b = e.submitter;
    var msg = (b && b.dataset && b.dataset.confirm) || e.target.dataset.confirm;
    if (msg && !window.confirm(msg)) { e.preventDefault(); }
  }, true);
  var dot = document.querySelector(".live-dot");

  // Live regions: elements with `data-live` and an id are replaced by the
  // same elements of a fresh copy of the page, without a reload (scroll
  // position, open forms and focus stay). Paused while the tab is hidden or
  // while the user types in a form inside a live region.
  function busy() {
    var a = document.activeElement;
    return a && a.closest && a.closest("[data-live]") && /INPUT|SELECT|TEXTAREA/.test(a.tagName);
  }
  function refresh() {
    if (document.hidden || busy()) { return schedule(); }
    fetch(location.href, { headers: { "X-Tributary-Live": "1" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live][id]").forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (fresh && fresh.innerHTML !== el.innerHTML) {
            // Keep what the user opened (a backfill's dates) open.
            var open = Array.prototype.map.call(el.querySelectorAll("details[open][id]"), function (d) { return d.id; });
            el.innerHTML = fresh.innerHTML;
            open.forEach(function (id) { var d = document.getElementById(id); if (d) { d.open = true; } });
          }
          if (fresh) { el.className = fresh.className; }
        });
        if (dot) { dot.classList.add("on"); }
      })
      .catch(function () { if (dot) { dot.classList.remove("on"); } })
      .then(schedule);
  }
  function schedule() { setTimeout(refresh, REFRESH_MS); }
  if (document.querySelector("[data-live][id]")) { schedule(); }

  // Live log tail over server-sent events.
  var log = document.getElementById("log");
  if (log && log.dataset.sse && window.EventSource) {
    var url = log.dataset.sse + "&after=" + encodeURIComponent(log.dataset.after || "0");
    var es = new EventSource(url);
    var follow = true;
    log.addEventListener("scroll", function () {
      follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    });
    es.addEventListener("line", function (e) {
      var d = JSON.parse(e.data);
      var ts = document.createElement("span");
      ts.className = "ts";
      ts.textContent = d.ts;
      log.appendChild(ts);
      log.appendChild(document.createTextNode(" " + d.line + "\n"));
      if (follow) { log.scrollTop = log.scrollHeight; }
    });
    es.addEventListener("end", function () {
      es.close();
      var b = document.getElementById("tail-badge");
      if (b) { b.textContent = "finished"; b.className = "badge"; }
    });
  }

  // Query page: names from the table list go into the SQL box at the
  // cursor; Ctrl+Enter (Cmd+Enter) runs the query.
  var sql = document.getElementById("sql");
  if (sql) {
    document.addEventListener("click", function (e) {
      var b = e.target.closest && e.target.closest("button.insert");
      if (!b) { return; }
      // Each part of a qualified name (live.users_by_nation) is quoted on
      // its own when it is not a plain lower-case identifier.
      var name = b.dataset.insert.split(".").map(function (part) {
        return /^[a-z_][a-z0-9_]*$/.test(part) ? part : '"' + part.replace(/"/g, '""') + '"';
      }).join(".");
      var at = sql.selectionStart, end = sql.selectionEnd, v = sql.value;
      var before = v.slice(0, at), after = v.slice(end);
      var pad = before && !/[\s(,.]$/.test(before) ? " " : "";
      sql.value = before + pad + name + after;
      sql.focus();
      sql.selectionStart = sql.selectionEnd = at + pad.length + name.length;
    });
    sql.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); sql.form.submit(); }
    });
  }
})();
