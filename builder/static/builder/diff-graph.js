// The diff page's graph: the newer version, with what it changed outlined.
// Needs static/editor/graph.js (window.LoopKitGraph); without it the page keeps its lists.
(function () {
  function start() {
    var host = document.getElementById("lk-diff-graph");
    var data = document.getElementById("lk-diff-graph-data");
    if (!host || !data || !window.LoopKitGraph) return;
    var payload = JSON.parse(data.textContent || "{}");
    host.hidden = false;
    var graph = window.LoopKitGraph.mount(host, { spec: payload.spec });
    graph.highlight(payload.highlight || []);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
