// The bounced dashboard: reads /v1/stats (the tested HTTP API) and draws it with uPlot.
// No framework. Everything the API returns may come from hostile reports (domains, reasons),
// so text goes into the page only through textContent, never as markup.
(function () {
  "use strict";

  var REFRESH_MS = 60000;
  var PERIOD = /^[0-9]{1,4}[mhdw]$/;
  // Colour-blind-friendly, distinct on white (Okabe-Ito, then a few more).
  var PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#d55e00", "#56b4e9",
                 "#f0e442", "#000000", "#999999", "#882255", "#44aa99", "#117733"];
  var charts = {};
  var state = {stats: null, error: null, charts: charts};
  window.bouncedDashboard = state;  // what a test or a curious operator can inspect

  function since() {
    var value = new URLSearchParams(window.location.search).get("since") || "7d";
    return PERIOD.test(value) ? value : "7d";
  }

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function field(name, text) {
    var node = document.querySelector('[data-field="' + name + '"]');
    if (node) node.textContent = text;
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined) return "";
    var units = [["d", 86400], ["h", 3600], ["m", 60]];
    for (var i = 0; i < units.length; i++) {
      if (seconds >= units[i][1]) return (seconds / units[i][1]).toFixed(1) + units[i][0];
    }
    return Math.round(seconds) + "s";
  }

  function dayTimes(days) {
    return days.map(function (d) { return Date.parse(d + "T00:00:00Z") / 1000; });
  }

  // Stacked bars: each series is drawn as the running total up to it, the tallest first, so
  // every reason shows as its own band; the legend shows each reason's own count.
  function stacked(target, days, named, colours) {
    var names = Object.keys(named);
    var xs = dayTimes(days);
    var totals = xs.map(function () { return 0; });
    var cumulative = names.map(function (name) {
      return named[name].map(function (v, i) { totals[i] += v; return totals[i]; });
    });
    var order = names.map(function (_, i) { return i; }).reverse();
    var data = [xs].concat(order.map(function (i) { return cumulative[i]; }));
    var series = [{}].concat(order.map(function (i) {
      return {
        label: names[i], fill: colours[i], stroke: colours[i], width: 0,
        paths: uPlot.paths.bars({size: [0.7, 60], align: 0}),
        points: {show: false},
        value: function (u, v, si, idx) {
          return idx === null || idx === undefined ? "--" : named[names[i]][idx];
        },
      };
    }));
    var width = Math.max(320, target.clientWidth || 800);
    var opts = {
      width: width, height: 260,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      // Half a day either side, so the first and the last day's bars show whole.
      scales: {x: {time: true, range: function (u, lo, hi) { return [lo - 43200, hi + 43200]; }},
               y: {range: function (u, lo, hi) { return [0, Math.max(1, hi)]; }}},
      // Whole UTC days on the time axis, written as the API's days are (MM-DD).
      axes: [{incrs: [86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400],
              values: function (u, splits) {
                return splits.map(function (ts) {
                  return new Date(ts * 1000).toISOString().slice(5, 10);
                });
              }},
             {label: "per day"}],
      series: series,
      cursor: {points: {show: false}},
    };
    while (target.firstChild) target.removeChild(target.firstChild);
    return new uPlot(opts, data, target);
  }

  function colourMap(names) {
    var colours = {};
    names.slice().sort().forEach(function (name, i) { colours[name] = PALETTE[i % PALETTE.length]; });
    return names.map(function (name) { return colours[name]; });
  }

  // What a chart shows, in words, for screen readers (the canvas itself says nothing).
  function describe(target, what, days, named) {
    var totals = days.map(function (_, i) {
      return Object.keys(named).reduce(function (sum, k) { return sum + named[k][i]; }, 0);
    });
    var sum = totals.reduce(function (a, b) { return a + b; }, 0);
    var peak = totals.indexOf(Math.max.apply(null, totals.concat([0])));
    var text = what + ": " + sum + " from " + days[0] + " to " + days[days.length - 1] + " (UTC)";
    if (sum) text += ", most on " + days[peak] + " (" + totals[peak] + ")";
    target.setAttribute("role", "img");
    target.setAttribute("aria-label", text);
  }

  function drawCharts(stats) {
    var daily = stats.daily;
    var reasons = daily.bounces_by_reason;
    var names = Object.keys(reasons);
    var empty = names.length === 0;
    charts.bounces = stacked(document.getElementById("chart-bounces"), daily.days,
                             empty ? {"no bounces": daily.days.map(function () { return 0; })}
                                   : reasons,
                             colourMap(empty ? ["no bounces"] : names));
    describe(document.getElementById("chart-bounces"), "bounces", daily.days, reasons);
    describe(document.getElementById("chart-unconfirmed"), "unconfirmations", daily.days,
             {"unconfirm": daily.decisions.unconfirm});
    charts.unconfirmed = stacked(
      document.getElementById("chart-unconfirmed"), daily.days,
      {"unconfirmed": daily.decisions.unconfirm, "held by a breaker": daily.decisions.held},
      ["#d55e00", "#999999"]);
  }

  function fillTable(id, rows) {
    var body = document.querySelector("#" + id + " tbody");
    var columns = document.querySelectorAll("#" + id + " thead th").length;
    while (body.firstChild) body.removeChild(body.firstChild);
    rows.forEach(function (cells) {
      var tr = document.createElement("tr");
      cells.forEach(function (cell) {
        tr.appendChild(cell instanceof Node ? cell : el("td", cell));
      });
      if (cells.length === 1) tr.firstChild.colSpan = columns;  // "nothing to show"
      body.appendChild(tr);
    });
  }

  function render(stats) {
    var jobs = stats.queue.jobs;
    field("queue-depth", (jobs.pending + jobs.processing) + " waiting");
    field("queue-oldest", stats.queue.oldest_job_at
      ? "oldest waiting " + age(stats.queue.oldest_job_age_seconds) : "nothing waiting");
    field("queue-problems", jobs.failed + " failed, " + jobs.quarantined + " quarantined");
    var d = stats.outbox.deliveries;
    field("outbox-waiting", (d.pending + d.unfanned) + " waiting");
    field("outbox-oldest", stats.outbox.oldest_pending_at
      ? "oldest pending " + age(stats.outbox.oldest_pending_age_seconds)
      : (d.unfanned ? d.unfanned + " not yet handed to an action" : "all delivered"));
    field("outbox-dead", d.dead + " dead-lettered");
    field("unconfirmed", stats.decisions.unconfirm + " unconfirmed");
    field("decisions-other", stats.decisions.reconfirm + " reconfirmed, " +
          stats.decisions.held + " held by a breaker");
    field("incidents", stats.incidents.total + " recorded");
    field("counting", stats.incidents.counting + " counting against the address");

    var most = stats.top_domains.reduce(function (m, r) { return Math.max(m, r.incidents); }, 1);
    fillTable("domains", stats.top_domains.map(function (r) {
      var cell = el("td", null, "bar-cell");
      var bar = el("div", null, "bar");
      bar.style.width = Math.round(100 * r.incidents / most) + "%";
      cell.appendChild(bar);
      return [r.domain, r.incidents, r.addresses, r.counting, cell];
    }));
    if (!stats.top_domains.length) fillTable("domains", [[el("td", "no incidents in this period", "none")]]);
    fillTable("breakers", stats.breakers.map(function (b) {
      var state = el("td", b.state, "state-" + (b.state === "tripped" ? "tripped" : "other"));
      return [b.domain, state, b.addresses, b.tripped_at ? b.tripped_at.slice(0, 16).replace("T", " ") : ""];
    }));
    if (!stats.breakers.length) fillTable("breakers", [[el("td", "no breaker has tripped", "none")]]);
    drawCharts(stats);
  }

  function load() {
    var period = since();
    var links = document.querySelectorAll("#periods a");
    for (var i = 0; i < links.length; i++) {
      var current = links[i].getAttribute("href") === "?since=" + period;
      links[i].classList.toggle("current", current);
      if (current) links[i].setAttribute("aria-current", "page");
      else links[i].removeAttribute("aria-current");
    }
    var status = document.getElementById("status");
    return fetch("v1/stats?since=" + encodeURIComponent(period),
                 {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (resp) {
        return resp.json().then(function (body) {
          if (!resp.ok) throw new Error(body && body.error ? body.error : "HTTP " + resp.status);
          return body;
        });
      })
      .then(function (stats) {
        state.stats = stats;
        state.error = null;
        render(stats);
        status.textContent = "since " + stats.since.slice(0, 16).replace("T", " ") +
          " UTC, as of " + stats.now.slice(11, 19) + " UTC";
        status.className = "";
      })
      .catch(function (err) {
        state.error = String(err && err.message ? err.message : err);
        status.textContent = "cannot load the figures: " + state.error;
        status.className = "error";
      });
  }

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { if (state.stats) drawCharts(state.stats); }, 200);
  });
  state.ready = load();
  setInterval(load, REFRESH_MS);
})();
