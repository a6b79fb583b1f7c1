/* The page's live connection, and the Cancel and Retry buttons.
   - One websocket per page (the URL in #live-root's data-socket-url). Every connection starts
     with a snapshot of the user's unfinished uploads, then carries every change as a card.
   - After ANY close it reconnects with jittered backoff, and the indicator says so. Closed as
     signed out (4401) it stops. Closed by the server for another reason of its own (4000-4999,
     for example 4429: too many messages) it shows the reason until the socket is back, and
     waits at least 15 s.
   - Cards that went quiet while unfinished are asked for over the socket ({"action": "sync"}):
     a running one after 1.5 s, a queued one (nothing to report until a worker takes it) after
     30 s.
   - If the socket cannot be opened at all (3 tries), the cards are refreshed over HTTP every
     2 s until it opens again; Cancel is then a POST.
   The page's JS does every swap (cards.js); nothing here relies on htmx. */
(function () {
  "use strict";

  var Intake = window.Intake;
  var SIGNED_OUT = 4401;
  var FAILURES_BEFORE_FALLBACK = 3;
  var REFUSED_WAIT_MS = 15000; // at least this long after the server closed us for a reason
  var SYNC_EVERY_MS = 1000;
  var QUIET_RUNNING_MS = 1500;
  var QUIET_QUEUED_MS = 30000;
  var MAX_SYNC = 25; // ids per sync message: the server answers for at most this many
  var FALLBACK_EVERY_MS = 2000;

  var conn = {
    socket: null,
    open: false,
    openedThisTry: false,
    failures: 0,   // connection attempts in a row that never opened
    retries: 0,    // reconnects since the last open
    timer: null,   // the pending reconnect (only one at a time)
    fallback: null, // the HTTP refresh interval, while the socket cannot be opened
    refused: "",   // the server's reason, while it keeps us out
    stopped: false
  };

  function liveRoot() { return document.getElementById("live-root"); }

  function backoff(retry) {
    var ceiling = Math.min(10000, 500 * Math.pow(2, retry));
    return ceiling / 2 + Math.random() * ceiling / 2;
  }

  // ---- the socket ----------------------------------------------------------------------------

  function connect() {
    var root = liveRoot();
    if (!root || conn.stopped) return;
    if (conn.socket && (conn.socket.readyState === WebSocket.CONNECTING || conn.socket.readyState === WebSocket.OPEN)) return;
    var url = new URL(root.getAttribute("data-socket-url"), window.location.href);
    url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
    conn.openedThisTry = false;
    if (conn.fallback) setIndicator("polling");
    else if (conn.refused) setIndicator("refused", conn.refused);
    else setIndicator(conn.failures || conn.retries ? "reconnecting" : "connecting");
    var socket;
    var ended = false;
    function end(evt) { // once per socket, whichever way it ends
      if (ended || socket !== conn.socket) return;
      ended = true;
      closed(evt);
    }
    try {
      socket = new WebSocket(url.href);
    } catch (err) {
      // Refused before any connection (a bad URL, say): a failed try.
      conn.socket = socket = null;
      closed({ code: 0, reason: "" });
      return;
    }
    conn.socket = socket;
    socket.addEventListener("open", function () {
      if (socket !== conn.socket) return;
      conn.open = true;
      conn.openedThisTry = true;
      conn.failures = 0;
      conn.retries = 0;
      conn.refused = "";
      Intake.dropToast("live-refused");
      stopFallback();
      Intake.cards.hideMore(); // the snapshot that comes next says it again if still true
      setIndicator("live");
    });
    socket.addEventListener("message", function (evt) {
      if (socket === conn.socket) Intake.cards.apply(evt.data);
    });
    socket.addEventListener("close", end);
    // A socket the browser blocks (a Content-Security-Policy's connect-src) reports only an
    // error, already closed, and never a close event.
    socket.addEventListener("error", function () {
      setTimeout(function () {
        if (socket.readyState === WebSocket.CLOSED) end({ code: 1006, reason: "" });
      }, 500);
    });
  }

  function closed(evt) {
    conn.open = false;
    if (!conn.openedThisTry) conn.failures += 1;
    if (evt.code === SIGNED_OUT) {
      conn.stopped = true;
      stopFallback();
      setIndicator("signed-out");
      return;
    }
    var delay = backoff(conn.retries);
    conn.retries += 1;
    if (evt.code >= 4000 && evt.code < 5000) {
      // The server closed us on purpose and said why: show it, and do not come back soon
      // (nor poll over HTTP instead, which would only move the load elsewhere). The reason is
      // the close frame's, or else the error the server sent just before closing (a proxy or
      // daphne may drop a close frame's reason), which is already on screen as a toast.
      var said = Intake.lastServerError;
      var fresh = said && Date.now() - said.at < 5000 ? said.text : "";
      conn.refused = evt.reason || fresh || "The server closed the live connection (code " + evt.code + ").";
      Intake.toast(conn.refused, "error", { id: "live-refused" }); // kept until the socket is back
      setIndicator("refused", conn.refused);
      delay = Math.max(delay, REFUSED_WAIT_MS + Math.random() * REFUSED_WAIT_MS);
    } else if (conn.failures >= FAILURES_BEFORE_FALLBACK) {
      startFallback();
    } else {
      setIndicator("reconnecting");
    }
    scheduleReconnect(delay);
  }

  function scheduleReconnect(delay) {
    if (conn.timer) return;
    conn.timer = setTimeout(function () {
      conn.timer = null;
      connect();
    }, delay);
  }

  function send(message) {
    if (!conn.open || !conn.socket) return false;
    conn.socket.send(JSON.stringify(message));
    return true;
  }

  var INDICATOR_TEXT = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    polling: "Offline · refreshing",
    refused: "Paused",
    "signed-out": "Signed out"
  };

  function setIndicator(state, reason) {
    var el = document.getElementById("live-indicator");
    if (!el) return;
    el.setAttribute("data-state", state);
    el.querySelector(".live-text").textContent = INDICATOR_TEXT[state];
    if (state === "polling") el.title = "Live updates are unavailable; the page refreshes every 2 s";
    else if (state === "refused") el.title = reason;
    else el.title = "Live updates";
  }

  // ---- sync quiet cards over the socket ------------------------------------------------------

  setInterval(function () {
    if (!conn.open) return;
    var quiet = Intake.cards.quietIds(function (card) {
      return card.getAttribute("data-status") === "queued" ? QUIET_QUEUED_MS : QUIET_RUNNING_MS;
    }, MAX_SYNC);
    if (quiet.length) send({ action: "sync", upload_ids: quiet });
  }, SYNC_EVERY_MS);

  // ---- HTTP fallback -------------------------------------------------------------------------

  function startFallback() {
    setIndicator("polling");
    if (conn.fallback) return;
    conn.fallback = setInterval(refreshOverHttp, FALLBACK_EVERY_MS);
    refreshOverHttp();
  }

  function stopFallback() {
    clearInterval(conn.fallback);
    conn.fallback = null;
  }

  function refreshOverHttp() {
    var root = liveRoot();
    if (!root) return;
    var params = new URLSearchParams();
    if (document.getElementById("upload-list")) params.set("active", "1");
    var ids = Intake.cards.unfinishedIds();
    if (ids.length) params.set("ids", ids.join(","));
    if (!ids.length && !params.has("active")) return;
    fetch(root.getAttribute("data-cards-url") + "?" + params, { credentials: "same-origin", headers: { "HX-Request": "true" } })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (text) { Intake.cards.apply(text); })
      .catch(function () { /* the next tick tries again */ });
  }

  // ---- Cancel and Retry ----------------------------------------------------------------------

  /* Cancel goes over the socket when it is open, else as a POST; Retry is a POST. Both
     answers are cards, applied like any other. */
  document.addEventListener("click", function (evt) {
    var button = evt.target.closest ? evt.target.closest(".upload-card [data-action]") : null;
    if (!button || button.getAttribute("aria-disabled") === "true") return;
    var card = button.closest(".upload-card");
    var action = button.getAttribute("data-action");
    if (action === "cancel") {
      Intake.cards.markCancelling(card);
      if (send({ action: "cancel", upload_id: card.getAttribute("data-upload-id") })) return;
      postForCards(button.getAttribute("data-url"), function () { Intake.cards.cancelFailed(card); });
    } else if (action === "retry") {
      button.setAttribute("aria-disabled", "true");
      button.setAttribute("aria-busy", "true");
      postForCards(button.getAttribute("data-url"), function () {
        button.removeAttribute("aria-disabled");
        button.removeAttribute("aria-busy");
      });
    }
  });

  function postForCards(url, undo) {
    Intake.post(url).then(function (answer) {
      if (answer.ok) {
        Intake.cards.apply(answer.text);
      } else {
        undo();
        Intake.toast(Intake.reason(answer), "error");
      }
    }, function () {
      undo();
      Intake.toast("Network error: the request could not be sent.", "error");
    });
  }

  document.addEventListener("DOMContentLoaded", connect);
})();
