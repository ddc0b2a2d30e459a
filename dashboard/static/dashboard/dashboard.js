/* Draw the dashboard's charts with Chart.js from the JSON the page embeds. */
(function () {
  "use strict";
  if (typeof Chart === "undefined") return;
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;

  function label(iso, bucket) {
    // "2026-11-24T15:00:00Z" -> "11-24 15:00" (hourly) or "2026-11-24" (daily); UTC, like the tables.
    return bucket === "hour" ? iso.slice(5, 10) + " " + iso.slice(11, 16) : iso.slice(0, 10);
  }

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (!canvas) return null;
    var chart = new Chart(canvas, config);
    canvas.dataset.ready = "true";
    return chart;
  }

  function dashboard(data) {
    var labels = data.labels.map(function (x) { return label(x, data.bucket); });
    var stacked = { x: { stacked: true }, y: { stacked: true, beginAtZero: true } };
    draw("chart-runs", {
      type: "bar",
      data: { labels: labels, datasets: [
        { label: "succeeded", data: data.succeeded, backgroundColor: "#2f9e44" },
        { label: "other", data: data.not_succeeded, backgroundColor: "#e8590c" }
      ] },
      options: { scales: stacked }
    });
    draw("chart-cost", {
      type: "line",
      data: { labels: labels, datasets: [
        { label: "cost (USD)", data: data.cost, borderColor: "#3b5bdb", spanGaps: false },
        { label: "runs of unknown cost", data: data.unknown_cost_runs, borderColor: "#868e96", borderDash: [4, 4], yAxisID: "y1" }
      ] },
      options: { scales: { y: { beginAtZero: true }, y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } } }
    });
    draw("chart-tokens", {
      type: "bar",
      data: { labels: labels, datasets: [
        { label: "in", data: data.tokens_in, backgroundColor: "#4dabf7" },
        { label: "out", data: data.tokens_out, backgroundColor: "#9775fa" }
      ] },
      options: { scales: stacked }
    });
    var pct = function (v) { return v === null ? null : Math.round(v * 1000) / 10; };
    draw("chart-rates", {
      type: "line",
      data: { labels: labels, datasets: [
        { label: "success %", data: data.success_rate.map(pct), borderColor: "#2f9e44" },
        { label: "verification pass %", data: data.verification_pass_rate.map(pct), borderColor: "#f08c00" }
      ] },
      options: { scales: { y: { min: 0, max: 100 } } }
    });
    draw("chart-by-loop", {
      type: "bar",
      data: { labels: data.by_loop.labels, datasets: [{ label: "cost (USD)", data: data.by_loop.cost, backgroundColor: "#3b5bdb" }] },
      options: { indexAxis: "y" }
    });
    draw("chart-by-model", {
      type: "bar",
      data: { labels: data.by_model.labels, datasets: [{ label: "cost (USD)", data: data.by_model.cost, backgroundColor: "#1098ad" }] },
      options: { indexAxis: "y" }
    });
  }

  function loopSection(data) {
    var labels = data.labels.map(function (x) { return label(x, data.bucket); });
    draw("loop-chart", {
      type: "bar",
      data: { labels: labels, datasets: [
        { type: "bar", label: "runs", data: data.runs, backgroundColor: "#4dabf7", yAxisID: "y" },
        { type: "line", label: "cost per run (USD)", data: data.cost_per_run, borderColor: "#3b5bdb", yAxisID: "y1", spanGaps: true }
      ] },
      options: { scales: { y: { beginAtZero: true }, y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } } }
    });
  }

  var main = document.getElementById("dashboard-data");
  if (main) dashboard(JSON.parse(main.textContent));
  var loop = document.getElementById("loop-dashboard-data");
  if (loop && !document.getElementById("loop-chart").dataset.ready) loopSection(JSON.parse(loop.textContent));
})();
