/* Adds the session's CSRF token (the ops_csrf cookie the console sets on
 * every page) to every same-origin request that changes something, so Dash
 * callbacks and the pages' own fetches pass the server's CSRF check without
 * code of their own. Requests to other origins are left untouched. */
(function () {
  "use strict";
  if (!window.fetch || window.fetch.__opsCsrf) { return; }
  var SAFE = { GET: 1, HEAD: 1, OPTIONS: 1 };
  function token() {
    var m = document.cookie.match(/(?:^|;\s*)ops_csrf=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : null;
  }
  function sameOrigin(url) {
    try { return new URL(url, window.location.href).origin === window.location.origin; }
    catch (e) { return false; }
  }
  var original = window.fetch;
  var wrapped = function (input, init) {
    var request = input instanceof Request ? input : null;
    var method = ((init && init.method) || (request && request.method) || "GET").toUpperCase();
    var url = request ? request.url : String(input);
    var value = token();
    if (!SAFE[method] && value && sameOrigin(url)) {
      init = Object.assign({}, init || {});
      var headers = new Headers(init.headers || (request ? request.headers : undefined));
      headers.set("X-CSRF-Token", value);
      init.headers = headers;
    }
    return original.call(this, input, init);
  };
  wrapped.__opsCsrf = true;
  window.fetch = wrapped;
})();
