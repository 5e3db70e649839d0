/* Colour mode for the whole console: <html data-bs-theme> plus every Plotly
   chart on the page. See the docstring of dashapp/ui/theme.py for the design.

   window.opsTheme.mode()        -> "light" | "dark"
   window.opsTheme.set(mode)     apply and remember a mode
   window.opsTheme.toggle()      flip it; returns the new mode
   window.opsTheme.rethemeAll()  re-theme every chart now

   Charts: both Plotly templates come from the shell's hidden
   #shell-chart-templates element (rendered from dashapp/ui/theme.py). Each
   .js-plotly-plot is found by a MutationObserver as soon as Plotly creates
   it; on its first draw and after every redraw (plotly_afterplot) it is
   redrawn with the template of the current mode if it has another one. */
(function () {
  "use strict";

  var STORAGE_KEY = "ops-theme";
  var root = document.documentElement;
  var cachedSource = null;
  var cachedTemplates = null;

  function mode() {
    return root.getAttribute("data-bs-theme") === "dark" ? "dark" : "light";
  }

  function templates() {
    var el = document.getElementById("shell-chart-templates");
    var source = el ? el.getAttribute("data-templates") : null;
    if (!source) { return null; }
    if (source !== cachedSource) {
      try {
        cachedTemplates = JSON.parse(source);
        cachedSource = source;
      } catch (e) {
        return null;
      }
    }
    return cachedTemplates;
  }

  // Two templates differ in their text and background colours; comparing
  // those tells which one a chart carries without deep-comparing objects.
  function signature(template) {
    var layout = template && template.layout;
    if (!layout) { return ""; }
    return String(layout.font && layout.font.color) + "|" + String(layout.paper_bgcolor);
  }

  function retheme(gd) {
    if (!gd || !gd.layout || !gd._fullLayout || !window.Plotly) { return; }
    if (gd.closest && gd.closest("[data-ops-fixed-theme]")) { return; }
    var all = templates();
    var target = all && all[mode()];
    if (!target || signature(gd.layout.template) === signature(target)) { return; }
    var layout = Object.assign({}, gd.layout, { template: JSON.parse(JSON.stringify(target)) });
    // react (not relayout): no plotly_relayout event, so page callbacks
    // listening to relayoutData are not woken up by a theme change.
    window.Plotly.react(gd, gd.data, layout);
  }

  function watch(gd) {
    if (gd.__opsThemeWatched || typeof gd.on !== "function") { return; }
    gd.__opsThemeWatched = true;
    gd.on("plotly_afterplot", function () { retheme(gd); });
    retheme(gd);
  }

  function rethemeAll() {
    var plots = document.querySelectorAll(".js-plotly-plot");
    for (var i = 0; i < plots.length; i++) {
      watch(plots[i]);
      retheme(plots[i]);
    }
  }

  function apply(next) {
    root.setAttribute("data-bs-theme", next);
    root.setAttribute("data-ag-theme-mode", next);
    rethemeAll();
    document.dispatchEvent(new CustomEvent("ops:themechange", { detail: { mode: next } }));
  }

  function set(next) {
    if (next !== "light" && next !== "dark") { return mode(); }
    try { window.localStorage.setItem(STORAGE_KEY, next); } catch (e) { /* not remembered */ }
    apply(next);
    return next;
  }

  function toggle() {
    return set(mode() === "dark" ? "light" : "dark");
  }

  // Follow the OS setting until the user picks a mode explicitly.
  if (window.matchMedia) {
    var query = window.matchMedia("(prefers-color-scheme: dark)");
    var onChange = function (event) {
      var stored = null;
      try { stored = window.localStorage.getItem(STORAGE_KEY); } catch (e) { /* ignore */ }
      if (stored !== "light" && stored !== "dark") { apply(event.matches ? "dark" : "light"); }
    };
    if (query.addEventListener) { query.addEventListener("change", onChange); }
  }

  // Find charts as Plotly creates them: the js-plotly-plot class is added to
  // the graph div when it is first plotted.
  function scan(node) {
    if (!node || node.nodeType !== 1) { return; }
    if (node.classList.contains("js-plotly-plot")) { watch(node); return; }
    if (node.firstElementChild && node.getElementsByClassName) {
      var found = node.getElementsByClassName("js-plotly-plot");
      for (var i = 0; i < found.length; i++) { watch(found[i]); }
    }
  }

  var observer = new MutationObserver(function (mutations) {
    for (var i = 0; i < mutations.length; i++) {
      var m = mutations[i];
      if (m.type === "attributes") {
        if (m.target.classList && m.target.classList.contains("js-plotly-plot")) { watch(m.target); }
      } else {
        for (var j = 0; j < m.addedNodes.length; j++) { scan(m.addedNodes[j]); }
      }
    }
  });
  observer.observe(root, { childList: true, subtree: true, attributes: true, attributeFilter: ["class"] });

  window.opsTheme = { mode: mode, set: set, toggle: toggle, rethemeAll: rethemeAll, retheme: retheme };
})();
