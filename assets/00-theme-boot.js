/* Runs before Dash renders anything: puts the remembered colour mode (or the
   OS preference) and the sidebar state on <html>, so the first paint of the
   console is already in the right theme. Kept tiny on purpose; the rest of
   the theme logic lives in 20-theme.js. */
(function () {
  var root = document.documentElement;
  var mode = null;
  var sidebar = null;
  try {
    mode = window.localStorage.getItem("ops-theme");
    sidebar = window.localStorage.getItem("ops-sidebar");
  } catch (e) { /* storage disabled: fall back to the OS preference */ }
  if (mode !== "light" && mode !== "dark") {
    mode = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  root.setAttribute("data-bs-theme", mode);
  root.setAttribute("data-ag-theme-mode", mode);
  if (sidebar === "collapsed" || sidebar === "expanded") {
    root.setAttribute("data-ops-sidebar", sidebar);
  }
})();
