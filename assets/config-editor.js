/* Configuration page: binds the vendored CodeMirror 5 editor
   (assets/vendor/codemirror/) to the Dash page pages/config.py.

   window.dash_clientside.config_editor:
     load(doc)          show the file in the editor (created on first use inside
                        #config-editor), then report its text as a draft
     mark(errors)       mark each validation error at its line (gutter dot,
                        line background, the column underlined)
     content(n, doc)    the editor's text for the Save request

   Every edit is reported (debounced) to the "config-draft" store with
   dash_clientside.set_props; the server validates it and answers through
   "config-marks". A click on an element with data-config-line moves the
   cursor there. Nothing here runs on other pages: the editor is only
   created when the config page's doc store asks for it. */
(function () {
  "use strict";

  var HOST_ID = "config-editor";
  var DRAFT_ID = "config-draft";
  var DEBOUNCE_MS = 350;
  var MODES = {
    yaml: "yaml",
    json: { name: "javascript", json: true },
    toml: "toml",
    ini: "properties",
    env: "properties"
  };

  var editor = null;
  var host = null;
  var docName = null;
  var timer = null;
  var marks = [];
  var savedText = null;   // the file's content as loaded: the draft differs -> unsaved

  function noUpdate() { return window.dash_clientside.no_update; }

  function pushDraft() {
    if (!editor || !docName) { return; }
    window.dash_clientside.set_props(DRAFT_ID, {
      data: { name: docName, content: editor.getValue(), at: Date.now() }
    });
  }

  function scheduleDraft() {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(function () { timer = null; pushDraft(); }, DEBOUNCE_MS);
  }

  function ensureEditor() {
    var el = document.getElementById(HOST_ID);
    if (!el || !window.CodeMirror) { return null; }
    if (editor && host === el && el.contains(editor.getWrapperElement())) { return editor; }
    host = el;
    marks = [];
    editor = window.CodeMirror(el, {
      lineNumbers: true,
      gutters: ["config-cm-gutter", "CodeMirror-linenumbers"],
      theme: "ops",
      indentUnit: 2,
      tabSize: 2,
      indentWithTabs: false,
      // On a phone, long lines wrap rather than scroll the start of every
      // line out of view; on wider screens lines stay as they are in the file.
      lineWrapping: window.matchMedia("(max-width: 575.98px)").matches,
      screenReaderLabel: "File content",
      extraKeys: {
        Tab: function (cm) {
          if (cm.somethingSelected()) { cm.indentSelection("add"); }
          else { cm.replaceSelection(Array(cm.getOption("indentUnit") + 1).join(" "), "end"); }
        },
        "Shift-Tab": function (cm) { cm.indentSelection("subtract"); }
      }
    });
    editor.on("changes", function (cm, changes) {
      if (changes.some(function (c) { return c.origin !== "setValue"; })) { scheduleDraft(); }
    });
    return editor;
  }

  function clearMarks() {
    if (!editor) { marks = []; return; }
    editor.operation(function () {
      marks.forEach(function (m) {
        if (m.text) { m.text.clear(); }
        if (m.line) { editor.removeLineClass(m.line, "wrap", "config-cm-error-line"); }
      });
      editor.clearGutter("config-cm-gutter");
    });
    marks = [];
  }

  function load(doc) {
    if (!doc) { return noUpdate(); }
    var cm = ensureEditor();
    if (!cm) { return noUpdate(); }
    var fresh = doc.name !== docName;
    docName = doc.name;
    cm.setOption("mode", MODES[doc.format] || null);
    cm.setOption("readOnly", doc.editable ? false : true);
    savedText = doc.content || "";
    if (fresh || cm.getValue() !== doc.content) {
      clearMarks();
      cm.setValue(doc.content || "");
      cm.clearHistory();
      cm.scrollTo(0, 0);
    }
    cm.refresh();
    host.setAttribute("data-config-file", doc.name);
    host.setAttribute("data-config-version", doc.version || "");
    if (timer) { clearTimeout(timer); timer = null; }
    pushDraft();
    return doc.version;
  }

  function mark(errors) {
    if (!editor) { return noUpdate(); }
    clearMarks();
    var count = editor.lineCount();
    editor.operation(function () {
      (errors || []).forEach(function (e) {
        if (!e || !e.line || e.line > count) { return; }
        var n = e.line - 1;
        var handle = editor.addLineClass(n, "wrap", "config-cm-error-line");
        var dot = document.createElement("span");
        dot.className = "config-cm-marker";
        dot.title = e.message || "error";
        dot.setAttribute("aria-label", "Error: " + (e.message || ""));
        editor.setGutterMarker(n, "config-cm-gutter", dot);
        var entry = { line: handle, text: null };
        var text = editor.getLine(n) || "";
        if (e.column && text.length) {
          var ch = Math.min(Math.max(e.column - 1, 0), text.length - 1);
          entry.text = editor.markText({ line: n, ch: ch }, { line: n, ch: ch + 1 },
                                       { className: "config-cm-error-char", title: e.message });
        }
        marks.push(entry);
      });
    });
    if (host) { host.setAttribute("data-config-errors", String(marks.length)); }
    return marks.length;
  }

  function content(n, doc) {
    if (!n || !editor || !doc || doc.name !== docName) { return noUpdate(); }
    return { name: docName, content: editor.getValue(), n: n };
  }

  function unsaved() {
    return !!(editor && savedText !== null && !editor.getOption("readOnly") &&
              document.getElementById(HOST_ID) && editor.getValue() !== savedText);
  }

  // Opening another file, reloading or leaving the page would drop unsaved
  // edits: ask first (capture phase, before Dash sees the click).
  document.addEventListener("click", function (ev) {
    if (!unsaved() || !ev.target || !ev.target.closest) { return; }
    var leaving = ev.target.closest(
      '[id*=\'"type":"config-file"\'], #config-reload, a[href]');
    if (!leaving || leaving.closest("#" + HOST_ID)) { return; }
    if (!window.confirm("Discard your unsaved changes to " + docName + "?")) {
      ev.preventDefault();
      ev.stopPropagation();
    } else {
      savedText = editor.getValue();
    }
  }, true);
  window.addEventListener("beforeunload", function (ev) {
    if (unsaved()) { ev.preventDefault(); ev.returnValue = ""; }
  });

  document.addEventListener("click", function (ev) {
    var target = ev.target && ev.target.closest ? ev.target.closest("[data-config-line]") : null;
    if (!target || !editor) { return; }
    var line = parseInt(target.getAttribute("data-config-line"), 10) - 1;
    var ch = parseInt(target.getAttribute("data-config-column") || "1", 10) - 1;
    if (isNaN(line)) { return; }
    editor.focus();
    editor.setCursor({ line: line, ch: isNaN(ch) ? 0 : ch });
    editor.scrollIntoView({ line: line, ch: 0 }, 80);
  });

  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.config_editor = {
    load: load,
    mark: mark,
    content: content,
    // For tests and the console: the live editor, if the page shows one.
    instance: function () { return editor; }
  };
})();
