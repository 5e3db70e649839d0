/* Logs page: the live list. An EventSource on /api/logs/stream (Server-Sent
 * Events; the browser reconnects by itself with Last-Event-ID) and a list
 * drawn with text nodes only: a log line is never parsed as HTML. Search
 * matches are wrapped in <mark> elements built from text. pages/logs.py
 * calls window.opsLogs.configure(config, paused, follow) from a clientside
 * callback whenever the filters or toggles change. */
(function () {
  "use strict";
  var MAX_ROWS = 2000;
  var state = {source: null, url: null, highlight: null, paused: false, follow: true,
               held: [], count: 0, status: ""};

  function view() { return document.getElementById("logs-view"); }

  function setStatus(text) {
    state.status = text;
    var el = document.getElementById("logs-live-status");
    if (el) { el.textContent = text; }
  }

  function statusText() {
    if (!state.url) { return state.status; }
    if (state.paused) {
      return "Paused" + (state.held.length ? " · " + state.held.length + " new" : "");
    }
    return "Live · " + state.count + " line" + (state.count === 1 ? "" : "s");
  }

  // The matches come from the server (rec.marks: [start, end] pairs, found
  // by RE2 in linear time): the user's pattern never runs in the browser's
  // backtracking RegExp, where one bad pattern would freeze the tab.
  function highlighted(parent, text, marks) {
    var last = 0;
    (Array.isArray(marks) ? marks : []).forEach(function (span) {
      var a = span[0], b = span[1];
      if (!(a >= last && b > a && b <= text.length)) { return; }
      parent.appendChild(document.createTextNode(text.slice(last, a)));
      var mark = document.createElement("mark");
      mark.textContent = text.slice(a, b);
      parent.appendChild(mark);
      last = b;
    });
    parent.appendChild(document.createTextNode(text.slice(last)));
  }

  // "2026-12-07 15:14:34.000": the server's ISO time to the millisecond.
  // Python leaves the fraction out when it is zero, so a slice of the ISO
  // text would show part of the offset ("15:14:34+00:").
  function shownTime(iso) {
    var m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.(\d+))?/.exec(iso);
    if (!m) return iso;
    return m[1] + " " + m[2] + "." + ((m[3] || "") + "000").slice(0, 3);
  }

  function row(rec) {
    var div = document.createElement("div");
    var level = rec.level || "";
    div.className = "ops-log-row" + (level ? " ops-log-row--" + level : " ops-log-row--plain");
    if (rec.time) {
      var t = document.createElement("time");
      t.className = "ops-log-time";
      t.dateTime = rec.time;
      t.textContent = shownTime(rec.time);
      div.appendChild(t);
    }
    if (level) {
      var l = document.createElement("span");
      l.className = "ops-log-level ops-log-level--" + level;
      l.textContent = level;
      div.appendChild(l);
    }
    if (rec.logger) {
      var g = document.createElement("span");
      g.className = "ops-log-logger";
      g.textContent = rec.logger;
      div.appendChild(g);
    }
    var msg = document.createElement("span");
    msg.className = "ops-log-msg";
    highlighted(msg, rec.message || "", rec.marks);
    div.appendChild(msg);
    if (rec.request_id) {
      var a = document.createElement("a");
      a.className = "ops-log-req";
      a.href = "/endpoints?request=" + encodeURIComponent(rec.request_id);
      a.title = "This request's metrics and SQL";
      a.textContent = "req " + rec.request_id;
      div.appendChild(a);
    }
    return div;
  }

  function append(records) {
    var el = view();
    if (!el || !records.length) { return; }
    var frag = document.createDocumentFragment();
    records.forEach(function (rec) { frag.appendChild(row(rec)); });
    el.appendChild(frag);
    while (el.childElementCount > MAX_ROWS) { el.removeChild(el.firstElementChild); }
    state.count += records.length;
    if (state.follow) { el.scrollTop = el.scrollHeight; }
    setStatus(statusText());
  }

  function receive(rec) {
    if (state.paused) { state.held.push(rec); setStatus(statusText()); return; }
    append([rec]);
  }

  function close() {
    if (state.source) { state.source.close(); state.source = null; }
  }

  function open() {
    close();
    var el = view();
    if (el) { el.textContent = ""; }
    state.count = 0;
    state.held = [];
    if (!state.url) { return; }
    var es = new EventSource(state.url);
    state.source = es;
    es.addEventListener("hello", function (ev) {
      try { state.highlight = JSON.parse(ev.data).highlight; } catch (e) { /* keep */ }
      setStatus(statusText());
    });
    es.addEventListener("reset", function (ev) {
      var reason = "";
      try { reason = JSON.parse(ev.data).reason; } catch (e) { reason = "changed"; }
      receive({level: null, message: "— the file was " + reason + "; following the new content —"});
    });
    es.addEventListener("failure", function (ev) {
      var text = "The log source became unreadable.";
      try { text = JSON.parse(ev.data).message; } catch (e) { /* default */ }
      setStatus(text);
    });
    es.onmessage = function (ev) {
      var rec;
      try { rec = JSON.parse(ev.data); } catch (e) { return; }
      receive(rec);
    };
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED) {
        setStatus("Disconnected: the stream was refused (too many open, or signed out). Reload to retry.");
      } else {
        setStatus("Reconnecting…");
      }
    };
  }

  window.opsLogs = {
    configure: function (config, paused, follow) {
      state.follow = !!follow;
      var wasPaused = state.paused;
      state.paused = !!paused;
      var url = config && config.url ? config.url : null;
      if (!url) {
        close();
        state.url = null;
        var el = view();
        if (el) { el.textContent = ""; }
        return (config && config.message) || "Waiting for filters…";
      }
      if (url !== state.url) {
        state.url = url;
        state.highlight = config.highlight || null;
        open();
      } else if (wasPaused && !state.paused && state.held.length) {
        var held = state.held;
        state.held = [];
        append(held);
      }
      if (state.follow && view()) { view().scrollTop = view().scrollHeight; }
      return statusText() || "Connecting…";
    },
    clear: function () {
      var el = view();
      if (el) { el.textContent = ""; }
      state.count = 0;
      setStatus(statusText());
    },
  };

  // Leaving the page (Dash swaps the content): close the stream so the
  // server's slot is given back.
  var observer = new MutationObserver(function () {
    if (state.source && !view()) { close(); state.url = null; }
  });
  document.addEventListener("DOMContentLoaded", function () {
    observer.observe(document.body, {childList: true, subtree: true});
  });
  window.addEventListener("pagehide", close);
})();
