/* Intake analytics pages: draws each chart from the JSON the page carries beside its table
   (a <script type="application/json"> block: no inline script, CSP-safe), switches the
   material page's tabs, and listens on the uploads websocket (?watch=data) so an open page
   says "new data" when an upload completes. Charts: Apache ECharts, vendored. */
(function () {
  "use strict";

  var charts = new Map(); // container element -> echarts instance

  function readJSON(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  function num(v) { return v === null || v === undefined ? null : Number(v); }
  function monthDate(key) { return key + "-01"; }

  var BUILDERS = {
    bar: function (spec) {
      return {
        tooltip: { trigger: "axis" },
        grid: { left: 90, right: 20, top: 20, bottom: 90 },
        xAxis: { type: "category", data: spec.items.map(function (i) { return i.name; }), axisLabel: { rotate: 35, interval: 0 } },
        yAxis: { type: "value", name: spec.currency },
        series: [{ type: "bar", name: "Spend", data: spec.items.map(function (i) { return num(i.value); }) }]
      };
    },
    treemap: function (spec) {
      return {
        tooltip: {},
        series: [{ type: "treemap", name: "Spend " + spec.currency, roam: false, nodeClick: false, breadcrumb: { show: false },
                   data: spec.items.map(function (i) { return { name: i.name, value: num(i.value) }; }) }]
      };
    },
    line: function (spec) {
      return {
        tooltip: { trigger: "axis" },
        grid: { left: 90, right: 20, top: 20, bottom: 40 },
        xAxis: { type: "category", data: spec.items.map(function (i) { return i.name; }) },
        yAxis: { type: "value", name: spec.currency },
        series: [{ type: "line", name: "Spend", data: spec.items.map(function (i) { return num(i.value); }) }]
      };
    },
    prices: function (spec) {
      // One chart per page: the currency with the most lines (the table lists every currency).
      var group = spec.currencies[0];
      if (!group) return null;
      var series = [];
      group.series.forEach(function (s) {
        series.push({ type: "scatter", name: s.supplier, symbolSize: 7,
                      data: s.points.map(function (p) { return [p[0], num(p[1])]; }) });
        series.push({ type: "line", name: s.supplier + " (monthly average)", showSymbol: false,
                      data: s.monthly.map(function (m) { return [monthDate(m[0]), num(m[1])]; }) });
      });
      return {
        tooltip: { trigger: "item" },
        legend: { type: "scroll", top: 0 },
        grid: { left: 80, right: 20, top: 50, bottom: 40 },
        xAxis: { type: "time" },
        yAxis: { type: "value", name: group.currency + (group.unit ? " per " + group.unit : ""), scale: true },
        series: series
      };
    },
    box: function (spec) {
      var names = spec.suppliers.map(function (s) { return s.supplier; });
      return {
        tooltip: { trigger: "item" },
        legend: { top: 0 },
        grid: { left: 80, right: 20, top: 40, bottom: 90 },
        xAxis: { type: "category", data: names, axisLabel: { rotate: 30, interval: 0 } },
        yAxis: { type: "value", name: spec.currency, scale: true },
        series: [
          { type: "boxplot", name: "Unit prices",
            data: spec.suppliers.map(function (s) { return [num(s.min), num(s.q1), num(s.median), num(s.q3), num(s.max)]; }) },
          { type: "scatter", name: "Last price",
            data: spec.suppliers.map(function (s, i) { return [i, num(s.last)]; }) }
        ]
      };
    }
  };

  function draw(container) {
    if (charts.has(container) || container.offsetParent === null || typeof echarts === "undefined") return;
    var spec = readJSON(container.getAttribute("data-chart"));
    var option = spec && BUILDERS[spec.kind] ? BUILDERS[spec.kind](spec) : null;
    if (!option) {
      container.textContent = "Nothing to draw: see the table.";
      container.classList.add("chart-empty");
      return;
    }
    option.animation = false;
    // Tooltips drawn on the canvas: ECharts' HTML tooltips carry style attributes, which the
    // page's Content-Security-Policy (style-src 'self') refuses.
    option.tooltip = Object.assign({}, option.tooltip || {}, { renderMode: "richText" });
    var chart = echarts.init(container, null, { renderer: "canvas" });
    chart.setOption(option);
    charts.set(container, chart);
    container.setAttribute("data-drawn", String(option.series.length));
  }

  function drawVisible() {
    document.querySelectorAll("[data-chart]").forEach(draw);
  }

  function initTabs() {
    var tabs = document.querySelectorAll('[role="tab"]');
    tabs.forEach(function (tab) {
      tab.addEventListener("click", function () {
        tabs.forEach(function (other) {
          var selected = other === tab;
          other.setAttribute("aria-selected", String(selected));
          document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
        });
        drawVisible();
        charts.forEach(function (chart) { chart.resize(); });
      });
    });
  }

  // ---- "new data" over the websocket ---------------------------------------------------------

  function setIndicator(state, text) {
    var el = document.getElementById("live-indicator");
    if (!el) return;
    el.setAttribute("data-state", state);
    el.querySelector(".live-text").textContent = text;
  }

  // The page's figures include every upload that completed before it was rendered: only a
  // later one is news (the final state is sent twice, and a reload must not repeat it).
  function isNews(text, since) {
    var found = /data-changed="(\d+)"/.exec(text);
    return !!found && Number(found[1]) > since;
  }

  function listen(path, since, retry) {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + path);
    socket.addEventListener("open", function () { retry = 0; setIndicator("live", "Live"); });
    socket.addEventListener("message", function (evt) {
      if (typeof evt.data === "string" && isNews(evt.data, since)) {
        var note = document.getElementById("new-data");
        if (note) note.hidden = false;
      }
    });
    socket.addEventListener("close", function (evt) {
      if (evt.code === 4401) { setIndicator("signed-out", "Signed out"); return; }
      setIndicator("reconnecting", "Reconnecting…");
      var delay = Math.min(10000, 500 * Math.pow(2, retry));
      setTimeout(function () { listen(path, since, retry + 1); }, delay / 2 + Math.random() * delay / 2);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    initTabs();
    drawVisible();
    window.addEventListener("resize", function () { charts.forEach(function (chart) { chart.resize(); }); });
    var root = document.querySelector("[data-live-data]");
    if (root) listen(root.getAttribute("data-live-data"), Number(root.getAttribute("data-since") || 0), 0);
  });
})();
