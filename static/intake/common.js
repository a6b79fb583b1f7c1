/* Intake: what the page's scripts share (loaded first). The scripts are split by job:
   cards.js   applies upload cards to the page, in sequence order, without moving focus;
   live.js    keeps the websocket alive (or falls back to HTTP) and runs Cancel and Retry;
   uploader.js runs the drop zone and shows each file's byte progress.
   No inline script, style or handler anywhere: the Content-Security-Policy allows none, so
   data reaches the scripts through data-* attributes. */
(function () {
  "use strict";

  var Intake = (window.Intake = window.Intake || {});

  Intake.FINAL = ["completed", "failed", "cancelled", "awaiting_review"];

  Intake.isFinal = function (card) {
    return Intake.FINAL.indexOf(card.getAttribute("data-status")) >= 0;
  };

  /* The page's CSRF token: the one htmx sends too, from hx-headers on <body>. */
  Intake.csrfToken = function () {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (err) {
      return "";
    }
  };

  /* A POST answered with cards. Resolves to {ok, status, text}; rejects on a network error. */
  Intake.post = function (url) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": Intake.csrfToken(), "HX-Request": "true" }
    }).then(function (response) {
      return response.text().then(function (text) {
        return { ok: response.ok, status: response.status, text: text };
      });
    });
  };

  /* A short answer from the server is its reason; anything else (an error page) is not shown. */
  Intake.reason = function (answer) {
    var text = (answer.text || "").trim();
    if (text && text.length < 500 && text.charAt(0) !== "<") return text;
    return "The server refused the request (HTTP " + answer.status + ").";
  };

  /* A message in the corner: gone after 6 s, or, with options.id, kept until
     Intake.dropToast(id) (the same id replaces the one shown). The same text is never shown
     twice at once. */
  Intake.toast = function (message, kind, options) {
    var box = document.getElementById("toasts");
    if (!box || !message) return;
    var id = options && options.id;
    Array.prototype.slice.call(box.children).forEach(function (old) {
      if ((id && old.id === id) || old.textContent === message) old.remove();
    });
    var item = document.createElement("div");
    item.className = "toast toast-" + (kind || "info");
    item.setAttribute("role", kind === "error" ? "alert" : "status");
    item.textContent = message;
    if (id) item.id = id;
    box.appendChild(item);
    if (!id) setTimeout(function () { item.remove(); }, 6000);
  };

  Intake.dropToast = function (id) {
    var item = document.getElementById(id);
    if (item) item.remove();
  };
})();
