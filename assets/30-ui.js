/* Clientside callback functions for the shell and the shared components
   (dashapp/ui/shell.py, dashapp/ui/components.py). They are referenced from
   Python with dash.ClientsideFunction("ops_ui", "<name>"), so the shell's
   interactions never wait for the server. */
(function () {
  "use strict";

  var SIDEBAR_KEY = "ops-sidebar";
  var root = document.documentElement;

  function noUpdate() { return window.dash_clientside.no_update; }

  function ctx() { return window.dash_clientside.callback_context || {}; }

  function triggeredId() {
    var c = ctx();
    if (c.triggered_id !== undefined) { return c.triggered_id; }
    var t = c.triggered && c.triggered[0];
    if (!t || !t.prop_id) { return null; }
    var id = t.prop_id.slice(0, t.prop_id.lastIndexOf("."));
    try { return JSON.parse(id); } catch (e) { return id; }
  }

  function isCollapsed() {
    var state = root.getAttribute("data-ops-sidebar");
    if (state === "collapsed") { return true; }
    if (state === "expanded") { return false; }
    return window.innerWidth >= 768 && window.innerWidth < 992;  // tablet default
  }

  function sidebarTitle() { return isCollapsed() ? "Expand sidebar" : "Collapse sidebar"; }

  // A grid key in a button id is the grid's own id, or the JSON of a dict id.
  function gridIdFromKey(key) {
    if (typeof key === "string" && key.charAt(0) === "{") {
      try { return JSON.parse(key); } catch (e) { return key; }
    }
    return key;
  }

  // Spreadsheet formula injection: a text cell starting with = + - @ (or a
  // tab/CR) would run as a formula when the CSV is opened in Excel. Prefix
  // it with a quote; plain negative numbers are left alone.
  function safeCsvCell(params) {
    var v = params.value;
    if (typeof v === "string" && /^[=+\-@\t\r]/.test(v) && !/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(v)) {
      return "'" + v;
    }
    return v;
  }

  var TOAST_ICONS = {
    success: "bi bi-check-circle-fill",
    danger: "bi bi-x-octagon-fill",
    warning: "bi bi-exclamation-triangle-fill",
    info: "bi bi-info-circle-fill"
  };
  var TOAST_TITLES = { success: "Done", danger: "Failed", warning: "Warning", info: "Notice" };
  var MAX_TOASTS = 4;

  function toastComponent(item) {
    var kind = TOAST_ICONS[item.kind] ? item.kind : "info";
    var title = item.title || TOAST_TITLES[kind];
    var props = {
      id: "shell-toast-" + (item.id || String(Date.now()) + String(Math.random()).slice(2, 8)),
      class_name: "ops-toast ops-toast--" + kind,
      header: [
        { type: "I", namespace: "dash_html_components",
          props: { className: TOAST_ICONS[kind] + " ops-toast__icon", "aria-hidden": "true" } },
        { type: "Strong", namespace: "dash_html_components", props: { children: String(title) } }
      ],
      children: String(item.message == null ? "" : item.message),
      is_open: true,
      dismissable: true
    };
    // duration null: stays until dismissed; default: 5 s, errors 8 s.
    if (item.duration !== null) {
      props.duration = item.duration || (kind === "danger" ? 8000 : 5000);
    }
    return { type: "Toast", namespace: "dash_bootstrap_components", props: props };
  }

  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.ops_ui = {
    /* ---------------------------------------------------------- shell */
    themeToggle: function (nClicks) {
      if (nClicks && window.opsTheme) { window.opsTheme.toggle(); }
      var dark = window.opsTheme ? window.opsTheme.mode() === "dark" : false;
      return dark ? "Switch to light mode" : "Switch to dark mode";
    },

    sidebarCollapse: function (nClicks) {
      if (nClicks) {
        var next = isCollapsed() ? "expanded" : "collapsed";
        root.setAttribute("data-ops-sidebar", next);
        try { window.localStorage.setItem(SIDEBAR_KEY, next); } catch (e) { /* not remembered */ }
        // Charts size to their container; tell them it changed once the
        // width transition is over.
        window.setTimeout(function () { window.dispatchEvent(new Event("resize")); }, 220);
      }
      return sidebarTitle();
    },

    mobileNav: function (openClicks, closeClicks, backdropClicks, pathname, className) {
      var base = (className || "ops-shell").split(/\s+/).filter(function (c) {
        return c && c !== "is-nav-open";
      });
      if (triggeredId() === "shell-nav-open") { base.push("is-nav-open"); }
      return base.join(" ");
    },

    pageTitle: function (pathname, nav) {
      var entries = (nav && nav.entries) || [];
      var path = pathname || "/";
      var best = null;
      for (var i = 0; i < entries.length; i++) {
        var href = entries[i][0];
        var exact = path === href || path === href + "/";
        var prefix = href !== nav.home && path.indexOf(href + "/") === 0;
        if ((exact || prefix) && (!best || href.length > best[0].length)) { best = entries[i]; }
      }
      return best ? best[1] : (nav && nav.fallback) || "";
    },

    /* ----------------------------------------------------------- grids */
    gridExport: function (nClicks) {
      var trig = triggeredId();
      if (!nClicks || !trig || !window.dash_ag_grid) { return noUpdate(); }
      window.dash_ag_grid.getApiAsync(gridIdFromKey(trig.grid)).then(function (api) {
        api.exportDataAsCsv({ processCellCallback: safeCsvCell });
      }).catch(function (err) {
        window.console.warn("CSV export failed:", err);
      });
      return noUpdate();
    },

    gridSearch: function (value) {
      var trig = triggeredId();
      if (!trig || !window.dash_ag_grid) { return noUpdate(); }
      window.dash_ag_grid.getApiAsync(gridIdFromKey(trig.grid)).then(function (api) {
        api.setGridOption("quickFilterText", value || "");
      }).catch(function (err) {
        window.console.warn("grid search failed:", err);
      });
      return noUpdate();
    },

    /* -------------------------------------------------- confirm dialog */
    confirmTyped: function (value, expected) {
      if (typeof expected !== "string" || !expected) { return false; }
      return (value || "").trim() !== expected;
    },

    confirmClose: function () { return false; },

    confirmReset: function (isOpen) { return isOpen ? "" : noUpdate(); },

    /* ----------------------------------------------------------- toasts */
    toastRender: function (data, children) {
      if (!data) { return noUpdate(); }
      var items = Array.isArray(data) ? data : [data];
      var current = Array.isArray(children) ? children : (children ? [children] : []);
      var kept = current.filter(function (c) {
        return c && c.props && c.props.is_open !== false;
      });
      for (var i = 0; i < items.length; i++) {
        if (items[i] && items[i].message != null) { kept.push(toastComponent(items[i])); }
      }
      return kept.slice(-MAX_TOASTS);
    }
  };
})();
