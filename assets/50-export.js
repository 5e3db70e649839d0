/* "Export" in the top bar (dashapp/ui/shell.py): the current page's view as
   one ZIP (CSV + PNG) or one HTML report.

   Collects from the DOM what the user sees — every Plotly chart as drawn
   (its data and layout, zoom included), every AG Grid's rows after the
   user's filter, search and sort in its visible columns, the page's title,
   time range and filter controls with their labels — posts it to
   /api/reports/export and downloads the answer. The server renders the
   charts (kaleido + Chromium) and builds the bundle. Same-origin fetch with
   the session cookie; 05-csrf.js adds the CSRF header. */
(function () {
  "use strict";

  var TOGGLE = "shell-export";
  var MENU = "shell-export-menu";
  var CONTENT = "shell-content";
  var TOAST_STORE = "shell-toast-store";
  var GRID_SEARCH = "ops-grid-search";
  var MAX_FIGURES = 30, MAX_TABLES = 30, MAX_ROWS = 50000, MAX_COLUMNS = 100;
  var MAX_FILTERS = 50, MAX_TEXT = 200, MAX_VALUE = 2000, MAX_CELL = 32000;
  var FILTER_TYPES = {
    Dropdown: 1, RadioItems: 1, Checklist: 1, Input: 1, Textarea: 1, Select: 1,
    DatePickerRange: 1, DatePickerSingle: 1, Slider: 1, RangeSlider: 1, Switch: 1,
    Checkbox: 1
  };
  var busy = false;

  function text(value, max) {
    var s = value == null ? "" : String(value).replace(/\s+/g, " ").trim();
    return s.length > max ? s.slice(0, max - 1) + "…" : s;
  }

  function toast(message, kind, title) {
    var api = window.dash_clientside;
    if (!api || !api.set_props) { return; }
    api.set_props(TOAST_STORE, { data: {
      id: String(Date.now()) + String(Math.random()).slice(2, 8),
      message: message, kind: kind || "info", title: title || null, duration: 0 } });
  }

  function visible(el) {
    if (!el || el.closest("[hidden], .modal, .ag-root-wrapper .ag-popup")) { return false; }
    return !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  }

  function parseId(id) {
    if (typeof id === "string" && id.charAt(0) === "{") {
      try { return JSON.parse(id); } catch (e) { return id; }
    }
    return id;
  }

  function panelTitle(el) {
    var panel = el.closest(".ops-panel");
    var head = panel && panel.querySelector(".ops-panel__title");
    return head ? text(head.textContent, MAX_TEXT) : "";
  }

  // ------------------------------------------------------------- charts

  function plotTitle(layout) {
    var t = layout && layout.title;
    t = t && typeof t === "object" ? t.text : t;
    return t ? text(String(t).replace(/<[^>]*>/g, " "), MAX_TEXT) : "";
  }

  // JSON of a figure: typed arrays as plain arrays, plotly.js internals
  // (keys starting with "_") and functions dropped.
  function plain(value) {
    return JSON.parse(JSON.stringify(value, function (key, v) {
      if (key && key.charAt(0) === "_") { return undefined; }
      if (typeof v === "function") { return undefined; }
      if (ArrayBuffer.isView(v) && !(v instanceof DataView)) { return Array.prototype.slice.call(v); }
      return v;
    }));
  }

  function collectFigures(root, notes) {
    var out = [];
    var seen = {};
    var plots = root.querySelectorAll(".js-plotly-plot");
    for (var i = 0; i < plots.length; i++) {
      var gd = plots[i];
      if (!visible(gd) || !Array.isArray(gd.data) || !gd.layout) { continue; }
      if (out.length >= MAX_FIGURES) {
        notes.push("Only the first " + MAX_FIGURES + " charts were exported.");
        break;
      }
      var owner = gd.closest("[id]");
      var panel = panelTitle(gd), own = plotTitle(gd.layout);
      var title = panel && own && own !== panel ? panel + " — " + own
        : panel || own || (owner && owner.id) || "Chart " + (out.length + 1);
      if (seen[title]) { title = text(title + " (" + (++seen[title]) + ")", MAX_TEXT); }
      else { seen[title] = 1; }
      var box = gd.getBoundingClientRect();
      var figure;
      try { figure = plain({ data: gd.data, layout: gd.layout }); }
      catch (e) { notes.push("Chart " + title + " could not be read: " + e.message); continue; }
      out.push({
        title: text(title, MAX_TEXT), figure: figure,
        // a phone-sized chart is widened so the picture stays readable
        width: Math.min(4000, Math.max(900, Math.round(box.width || 0))),
        height: Math.min(4000, Math.max(320, Math.round(box.height || 0)))
      });
    }
    return out;
  }

  // -------------------------------------------------------------- grids

  function gridElements(root) {
    var found = [];
    var wrappers = root.querySelectorAll(".ag-root-wrapper");
    for (var i = 0; i < wrappers.length; i++) {
      var el = wrappers[i].parentElement;
      while (el && el !== root && !(el.id && el.id.indexOf("ag-") !== 0)) { el = el.parentElement; }
      if (el && el !== root && found.indexOf(el) < 0 && visible(el) &&
          !el.parentElement.closest(".ag-root-wrapper")) {
        found.push(el);
      }
    }
    return found;
  }

  function cell(value) {
    if (value == null) { return null; }
    if (typeof value === "number") { return isFinite(value) ? value : null; }
    if (typeof value === "boolean") { return value; }
    if (value instanceof Date) { return value.toISOString(); }
    if (typeof value === "object") {
      try { value = JSON.stringify(value); } catch (e) { value = String(value); }
    }
    value = String(value);
    return value.length > MAX_CELL ? value.slice(0, MAX_CELL) : value;
  }

  function readGrid(el, notes) {
    var dag = window.dash_ag_grid;
    if (!dag || !dag.getApiAsync) { return Promise.resolve(null); }
    return dag.getApiAsync(parseId(el.id)).then(function (api) {
      var cols = (api.getAllDisplayedColumns() || []).filter(function (c) {
        var def = c.getColDef() || {};
        return def.field || def.valueGetter || def.colId;
      }).slice(0, MAX_COLUMNS);
      if (!cols.length) { return null; }
      var columns = cols.map(function (c) {
        var header = "";
        try { header = api.getDisplayNameForColumn(c, "header"); } catch (e) { header = ""; }
        return { field: text(c.getColId(), MAX_TEXT),
                 header: text(header || c.getColDef().headerName || c.getColId(), MAX_TEXT) };
      });
      var rows = [];
      var total = 0;
      api.forEachNodeAfterFilterAndSort(function (node) {
        if (node.group || !node.data) { return; }
        total += 1;
        if (rows.length >= MAX_ROWS) { return; }
        rows.push(cols.map(function (c) {
          var v;
          try { v = api.getCellValue({ rowNode: node, colKey: c }); }
          catch (e) { v = node.data[c.getColDef().field]; }
          return cell(v);
        }));
      });
      var title = panelTitle(el) || text(el.id, MAX_TEXT);
      if (total > rows.length) {
        notes.push(title + ": only the first " + MAX_ROWS.toLocaleString() + " of " +
                   total.toLocaleString() + " rows were exported.");
      }
      return { title: title, columns: columns, rows: rows };
    }).catch(function (err) {
      notes.push("A table could not be read: " + (err && err.message || err));
      return null;
    });
  }

  // ------------------------------------------------------------ filters

  function optionLabel(options, value) {
    if (!options) { return null; }
    if (!Array.isArray(options)) {  // {value: label}
      return Object.prototype.hasOwnProperty.call(options, value) ? options[value] : null;
    }
    for (var i = 0; i < options.length; i++) {
      var o = options[i];
      if (o !== null && typeof o === "object") {
        if (o.value === value) { return typeof o.label === "string" ? o.label : String(value); }
      } else if (o === value) { return String(o); }
    }
    return null;
  }

  function controlValue(type, props) {
    var v = props.value;
    if (type === "DatePickerRange") {
      if (!props.start_date && !props.end_date) { return ""; }
      return (props.start_date || "…") + " – " + (props.end_date || "…");
    }
    if (type === "DatePickerSingle") { return props.date || ""; }
    if (type === "Switch" || type === "Checkbox") { return v ? "on" : "off"; }
    if (v == null || v === "" || (Array.isArray(v) && !v.length)) { return ""; }
    var values = Array.isArray(v) ? v : [v];
    if (type === "RangeSlider") { return values.join(" – "); }
    return values.map(function (x) {
      var label = optionLabel(props.options, x);
      return label != null ? String(label) : (typeof x === "object" ? JSON.stringify(x) : String(x));
    }).join(", ");
  }

  function labelFor(el, props) {
    var group = el.closest("[aria-label]");
    if (group && group !== el && group.getAttribute("role") === "group") {
      return group.getAttribute("aria-label");
    }
    if (el.getAttribute("aria-label")) { return el.getAttribute("aria-label"); }
    if (props["aria-label"]) { return props["aria-label"]; }
    var byFor = el.id && document.querySelector('label[for="' + CSS.escape(el.id) + '"]');
    if (byFor && text(byFor.textContent, MAX_TEXT)) { return byFor.textContent; }
    var wrap = el.closest("label");
    if (wrap) {
      var clone = wrap.cloneNode(true);
      clone.querySelectorAll("input, select, textarea, button, .visually-hidden").forEach(function (n) {
        if (!n.classList.contains("visually-hidden") || !text(n.textContent, 10)) { n.remove(); }
      });
      if (text(clone.textContent, MAX_TEXT)) { return clone.textContent; }
    }
    var parent = el.parentElement;
    for (var depth = 0; parent && depth < 3; depth++, parent = parent.parentElement) {
      var label = parent.querySelector(":scope > label, :scope > .form-label");
      if (label && !label.contains(el) && text(label.textContent, MAX_TEXT)) { return label.textContent; }
    }
    if (props.placeholder) { return props.placeholder; }
    return String(el.id).replace(/[-_]+/g, " ");
  }

  // A control filters the view unless it sits in a form: a panel with a
  // primary action button and no chart or table of its own (a schedule to
  // save, a profile to start).
  function filtersView(el) {
    var panel = el.closest(".ops-panel");
    if (!panel || panel.querySelector(".js-plotly-plot, .ag-root-wrapper")) { return true; }
    return !panel.querySelector(".btn-primary");
  }

  function collectFilters(root, gridTitles) {
    var api = window.dash_component_api;
    var filters = [];
    var range = null;
    if (!api || !api.getLayout) { return { filters: filters, timeRange: range }; }
    var els = root.querySelectorAll("[id]");
    for (var i = 0; i < els.length && filters.length < MAX_FILTERS; i++) {
      var el = els[i];
      if (el.closest(".ag-root-wrapper") || !visible(el) || !filtersView(el)) { continue; }
      var id = parseId(el.id), comp;
      try { comp = api.getLayout(id); } catch (e) { comp = null; }
      if (!comp || !comp.props || !FILTER_TYPES[comp.type]) { continue; }
      var value = controlValue(comp.type, comp.props);
      if (id && typeof id === "object" && id.type === GRID_SEARCH) {
        if (value) {
          var grid = gridTitles[id.grid] || "table";
          filters.push({ label: text("Search rows in " + grid, MAX_TEXT), value: text(value, MAX_VALUE) });
        }
        continue;
      }
      if (!value) { continue; }
      var label = text(labelFor(el, comp.props), MAX_TEXT);
      var isRange = /time range|^range$|window|period/i.test(label) ||
        (typeof id === "string" && /-range$/.test(id));
      if (isRange && range === null) { range = text(value, MAX_TEXT); continue; }
      filters.push({ label: label || "Filter", value: text(value, MAX_VALUE) });
    }
    return { filters: filters, timeRange: range };
  }

  // ------------------------------------------------------------- export

  function pageTitle() {
    var crumb = document.getElementById("shell-page-title");
    var h1 = document.querySelector("#" + CONTENT + " .ops-page-title");
    return text((crumb && crumb.textContent) || (h1 && h1.textContent) || document.title ||
                "Page", MAX_TEXT) || "Page";
  }

  function collect(format) {
    var root = document.getElementById(CONTENT) || document.body;
    var notes = [];
    var figures = collectFigures(root, notes);
    var grids = gridElements(root).slice(0, MAX_TABLES);
    return Promise.all(grids.map(function (el) { return readGrid(el, notes); })).then(function (tables) {
      tables = tables.filter(Boolean);
      var titles = {};
      grids.forEach(function (el, i) { if (tables[i]) { titles[el.id] = tables[i].title; } });
      var found = collectFilters(root, titles);
      return {
        payload: {
          format: format, page: pageTitle(),
          path: text(window.location.pathname + window.location.search, 500),
          time_range: found.timeRange, filters: found.filters,
          figures: figures, tables: tables
        },
        notes: notes
      };
    });
  }

  function exportUrl() {
    var prefix = "/";
    var node = document.getElementById("_dash-config");
    if (node) {
      try { prefix = JSON.parse(node.textContent).requests_pathname_prefix || "/"; }
      catch (e) { prefix = "/"; }
    }
    return prefix.replace(/\/+$/, "") + "/api/reports/export";
  }

  function filenameOf(resp, fallback) {
    var cd = resp.headers.get("Content-Disposition") || "";
    var star = cd.match(/filename\*=UTF-8''([^;]+)/i);
    if (star) { try { return decodeURIComponent(star[1]); } catch (e) { /* plain name below */ } }
    var m = cd.match(/filename="?([^";]+)"?/i);
    return m ? m[1] : fallback;
  }

  function save(blob, name) {
    var url = URL.createObjectURL(blob);
    var a = document.createElement("a");
    a.href = url;
    a.download = name;
    a.rel = "noopener";
    a.style.display = "none";
    document.body.appendChild(a);
    a.click();
    window.setTimeout(function () { URL.revokeObjectURL(url); a.remove(); }, 30000);
  }

  function setBusy(on) {
    busy = on;
    var btn = document.getElementById(TOGGLE);
    if (!btn) { return; }
    btn.disabled = on;
    btn.classList.toggle("is-busy", on);
    btn.setAttribute("aria-busy", on ? "true" : "false");
  }

  function run(format) {
    if (busy) { return Promise.resolve(null); }
    setBusy(true);
    var label = format === "zip" ? "ZIP" : "HTML report";
    var notes = [];
    return collect(format).then(function (found) {
      notes = found.notes;
      return window.fetch(exportUrl(), {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/zip, text/html, application/json" },
        body: JSON.stringify(found.payload)
      });
    }).then(function (resp) {
      if (!resp.ok) {
        return resp.json().catch(function () { return {}; }).then(function (body) {
          var msg = (body && body.error && body.error.message) || ("HTTP " + resp.status);
          throw new Error(msg);
        });
      }
      return resp.blob().then(function (blob) {
        var name = filenameOf(resp, "export." + (format === "zip" ? "zip" : "html"));
        save(blob, name);
        toast(name + (notes.length ? " — " + notes.join(" ") : ""),
              notes.length ? "warning" : "success", "Export ready");
        return name;
      });
    }).catch(function (err) {
      toast("The " + label + " could not be made: " + (err && err.message || err), "danger",
            "Export failed");
      return null;
    }).then(function (result) { setBusy(false); return result; },
            function () { setBusy(false); return null; });
  }

  // --------------------------------------------------------------- menu

  function menu() { return document.getElementById(MENU); }

  function openMenu(open) {
    var m = menu(), btn = document.getElementById(TOGGLE);
    if (!m || !btn) { return; }
    m.hidden = !open;
    btn.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      var first = m.querySelector("[data-format]");
      if (first) { first.focus(); }
    }
  }

  document.addEventListener("click", function (ev) {
    var target = ev.target instanceof Element ? ev.target : null;
    if (!target) { return; }
    var item = target.closest("#" + MENU + " [data-format]");
    if (item) {
      openMenu(false);
      run(item.getAttribute("data-format"));
      return;
    }
    if (target.closest("#" + TOGGLE)) {
      var m = menu();
      openMenu(!!(m && m.hidden));
      return;
    }
    if (!target.closest("#" + MENU)) { openMenu(false); }
  });

  document.addEventListener("keydown", function (ev) {
    var m = menu();
    if (!m || m.hidden) { return; }
    if (ev.key === "Escape") {
      openMenu(false);
      var btn = document.getElementById(TOGGLE);
      if (btn) { btn.focus(); }
    } else if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      var items = Array.prototype.slice.call(m.querySelectorAll("[data-format]"));
      var i = items.indexOf(document.activeElement);
      var next = ev.key === "ArrowDown" ? (i + 1) % items.length : (i - 1 + items.length) % items.length;
      items[next].focus();
      ev.preventDefault();
    }
  });

  window.opsExport = { collect: collect, run: run };
})();
