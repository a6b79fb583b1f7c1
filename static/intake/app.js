/* Intake: the little JavaScript the pages need. htmx and its ws extension open the socket and
   send Cancel; this file
   (a) applies every incoming card (websocket, upload, retry, HTTP fallback) in sequence order:
       a card replaces the one on the page only if its data-seq is newer;
   (b) keeps the socket alive after ANY close (the extension only retries 1006/1011/1012/1013)
       and shows a live / reconnecting indicator; the server sends a snapshot on each connect;
   (c) asks over the socket for cards that went quiet while unfinished ({"action": "sync"});
   (d) falls back to refreshing cards over HTTP every 2 s if the socket cannot be opened at
       all, and sends Cancel as a POST while the socket is down;
   (e) runs the drop zone: checks each file, posts it with htmx and shows its byte progress. */
(function () {
  "use strict";

  var FINAL = ["completed", "failed", "cancelled"];
  var EXT_RECONNECT_CODES = [1006, 1011, 1012, 1013]; // the ws extension retries these itself
  var SIGNED_OUT_CODE = 4401;
  var FAILURES_BEFORE_FALLBACK = 3;
  var SYNC_EVERY_MS = 1000;
  var QUIET_MS = 1500;
  var FALLBACK_EVERY_MS = 2000;

  var lastSeen = new Map(); // upload id -> when we last heard of it (ms)
  var conn = {
    wrapper: null,   // the extension's public socket wrapper: send(), reconnect()
    open: false,
    openedThisTry: false,
    failures: 0,     // connection attempts in a row that never opened
    retries: 0,      // our own reconnects since the last open
    timer: null,     // our pending reconnect (only one at a time)
    fallback: null,  // the HTTP refresh interval, when the socket cannot be opened
    signedOut: false
  };

  function backoff(retry) {
    var ceiling = Math.min(10000, 500 * Math.pow(2, retry));
    return ceiling / 2 + Math.random() * ceiling / 2;
  }
  // Also used by the extension for the codes it retries (its default grows to 64 s).
  htmx.config.wsReconnectDelay = backoff;

  function liveRoot() { return document.getElementById("live-root"); }
  function seqOf(el) { return Number(el.getAttribute("data-seq") || 0); }
  function isFinal(el) { return FINAL.indexOf(el.getAttribute("data-status")) >= 0; }

  // ---- (a) cards ---------------------------------------------------------------------------

  function applyCards(html, ownUpload) {
    if (typeof html !== "string" || !html) return;
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    var list = document.getElementById("upload-list");
    // Pages after the first take only updates, except for the user's own fresh uploads.
    var acceptNew = list && (ownUpload || list.getAttribute("data-accept-new") === "true");
    var fresh = [];
    Array.prototype.slice.call(tpl.content.children).forEach(function (el) {
      if (el.id === "ws-error") {
        toast(el.getAttribute("data-error") || el.textContent, "error");
        return;
      }
      var id = el.getAttribute("data-upload-id");
      if (!id) return;
      lastSeen.set(id, Date.now());
      var current = document.getElementById("upload-" + id);
      if (current) {
        if (seqOf(el) > seqOf(current)) replaceCard(current, el);
      } else if (acceptNew) {
        fresh.push(el);
      }
    });
    // Messages list newest first: insert the oldest first so the newest ends on top.
    for (var i = fresh.length - 1; i >= 0; i--) {
      list.prepend(fresh[i]);
      htmx.process(fresh[i]);
    }
  }

  function replaceCard(current, el) {
    var hadFocus = current.contains(document.activeElement);
    current.replaceWith(el);
    htmx.process(el);
    if (hadFocus) {
      var next = el.querySelector("button:not([disabled]), a");
      if (next) next.focus({ preventScroll: true });
    }
    var root = liveRoot();
    var stale = document.getElementById("issues-stale");
    if (stale && root && FINAL.indexOf(root.getAttribute("data-initial-status")) < 0 && isFinal(el)) {
      stale.hidden = false;
    }
  }

  function cardsRequest(evt) {
    var elt = evt.detail.requestConfig && evt.detail.requestConfig.elt;
    return elt && elt.closest ? elt.closest("[data-cards]") : null;
  }

  // With DEBUG on, django-htmx's helper replaces the whole page with any 400/403/404/500
  // answer. A refused upload or retry is an answer this page shows itself, so it never
  // reaches that helper (capture phase on document runs before its listener).
  document.addEventListener("htmx:beforeOnLoad", function (evt) {
    if (cardsRequest(evt)) evt.stopPropagation();
  }, true);

  // Every HTTP answer made of cards (upload, cancel, retry) goes through applyCards too.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var elt = cardsRequest(evt);
    if (!elt) return;
    evt.detail.shouldSwap = false;
    var pending = elt.closest(".pending-upload");
    var text = evt.detail.xhr ? evt.detail.xhr.responseText : "";
    if (evt.detail.isError) {
      var reason = text && text.length < 500 ? text : "The server refused the request (HTTP " + evt.detail.xhr.status + ").";
      if (pending) failPending(pending, reason);
      else toast(reason, "error");
      return;
    }
    if (pending) pending.remove();
    applyCards(text, !!pending);
  });

  document.addEventListener("htmx:sendError", function (evt) {
    var elt = evt.detail.requestConfig && evt.detail.requestConfig.elt;
    var pending = elt && elt.closest && elt.closest(".pending-upload");
    if (pending) failPending(pending, "Network error: the file could not be sent.");
    else toast("Network error: the request could not be sent.", "error");
  });

  // ---- (b) the socket ----------------------------------------------------------------------

  document.addEventListener("htmx:wsBeforeMessage", function (evt) {
    evt.preventDefault(); // we swap, in sequence order, instead of the extension
    applyCards(evt.detail.message);
  });

  document.addEventListener("htmx:wsConnecting", function () {
    conn.openedThisTry = false;
    setIndicator(conn.fallback ? "polling" : (conn.failures || conn.retries ? "reconnecting" : "connecting"));
  });

  document.addEventListener("htmx:wsOpen", function (evt) {
    conn.wrapper = evt.detail.socketWrapper;
    conn.open = true;
    conn.openedThisTry = true;
    conn.failures = 0;
    conn.retries = 0;
    clearTimeout(conn.timer);
    conn.timer = null;
    stopFallback();
    setIndicator("live");
  });

  document.addEventListener("htmx:wsClose", function (evt) {
    var code = evt.detail.event ? evt.detail.event.code : 0;
    conn.open = false;
    if (!conn.openedThisTry) conn.failures += 1;
    if (code === SIGNED_OUT_CODE) {
      conn.signedOut = true;
      stopFallback();
      setIndicator("signed-out");
      return;
    }
    if (conn.failures >= FAILURES_BEFORE_FALLBACK) startFallback();
    else setIndicator("reconnecting");
    if (EXT_RECONNECT_CODES.indexOf(code) >= 0) return; // the extension retries these itself
    scheduleReconnect(evt.detail.socketWrapper);
  });

  function scheduleReconnect(wrapper) {
    if (conn.timer || !wrapper) return;
    var delay = backoff(conn.retries);
    conn.retries += 1;
    conn.timer = setTimeout(function () {
      conn.timer = null;
      if (conn.signedOut || socketBusy()) return; // someone already reconnected: no second socket
      wrapper.reconnect();
    }, delay);
  }

  function socketBusy() {
    var root = liveRoot();
    var data = root && root["htmx-internal-data"];
    var socket = data && data.webSocket && data.webSocket.socket;
    return !!socket && (socket.readyState === WebSocket.CONNECTING || socket.readyState === WebSocket.OPEN);
  }

  var INDICATOR_TEXT = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    polling: "Offline · refreshing",
    "signed-out": "Signed out"
  };

  function setIndicator(state) {
    var el = document.getElementById("live-indicator");
    if (!el) return;
    el.setAttribute("data-state", state);
    el.querySelector(".live-text").textContent = INDICATOR_TEXT[state];
    el.title = state === "polling" ? "Live updates are unavailable; the page refreshes every 2 s" : "Live updates";
  }

  // ---- (c) sync quiet cards over the socket ------------------------------------------------

  setInterval(function () {
    if (!conn.open || !conn.wrapper) return;
    var quiet = [];
    var now = Date.now();
    document.querySelectorAll(".upload-card[data-upload-id]").forEach(function (card) {
      if (isFinal(card)) return;
      var id = card.getAttribute("data-upload-id");
      if (now - (lastSeen.get(id) || 0) > QUIET_MS) {
        quiet.push(id);
        lastSeen.set(id, now); // ask again only if this one also goes unanswered
      }
    });
    if (quiet.length) conn.wrapper.send(JSON.stringify({ action: "sync", upload_ids: quiet }));
  }, SYNC_EVERY_MS);

  // ---- (d) HTTP fallback -------------------------------------------------------------------

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
    var ids = [];
    document.querySelectorAll(".upload-card[data-upload-id]").forEach(function (card) {
      if (!isFinal(card)) ids.push(card.getAttribute("data-upload-id"));
    });
    if (ids.length) params.set("ids", ids.join(","));
    if (!ids.length && !params.has("active")) return;
    fetch(root.getAttribute("data-cards-url") + "?" + params, { credentials: "same-origin", headers: { "HX-Request": "true" } })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(applyCards)
      .catch(function () { /* next tick tries again */ });
  }

  // Cancel goes over the socket when it is open, else as a plain POST.
  document.addEventListener("htmx:wsConfigSend", function (evt) {
    var button = evt.target.closest && evt.target.closest("[data-cancel-url]");
    if (!button) return;
    if (conn.open) {
      markCancelling(button);
      return;
    }
    evt.preventDefault();
    markCancelling(button);
    htmx.ajax("POST", button.getAttribute("data-cancel-url"), { source: button, swap: "none" });
  });

  function markCancelling(button) {
    button.textContent = "Cancelling…";
    button.setAttribute("aria-busy", "true");
  }

  // ---- toasts ------------------------------------------------------------------------------

  function toast(message, kind) {
    var box = document.getElementById("toasts");
    if (!box || !message) return;
    var item = document.createElement("div");
    item.className = "toast toast-" + (kind || "info");
    item.setAttribute("role", kind === "error" ? "alert" : "status");
    item.textContent = message;
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, 6000);
  }

  // ---- (e) drop zone and uploads -----------------------------------------------------------

  function formatBytes(bytes) {
    if (bytes < 1024) return bytes + " B";
    var units = ["KB", "MB", "GB"];
    var value = bytes;
    var unit = -1;
    do { value /= 1024; unit += 1; } while (value >= 1024 && unit < units.length - 1);
    return (value >= 10 ? Math.round(value) : value.toFixed(1)) + " " + units[unit];
  }

  function initUploader() {
    var form = document.getElementById("upload-form");
    if (!form) return;
    var zone = document.getElementById("drop-zone");
    var input = document.getElementById("file-input");
    var problems = document.getElementById("file-problems");
    var pendingList = document.getElementById("pending-list");
    var maxBytes = Number(form.getAttribute("data-max-bytes"));
    var extensions = form.getAttribute("data-extensions").split(",");

    input.addEventListener("change", function () {
      handleFiles(input.files);
      input.value = "";
    });
    form.addEventListener("submit", function (evt) {
      evt.preventDefault();
      handleFiles(input.files);
    });
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (evt) {
        evt.preventDefault();
        zone.classList.add("is-over");
      });
    });
    ["dragleave", "dragend", "drop"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.remove("is-over"); });
    });
    zone.addEventListener("drop", function (evt) {
      evt.preventDefault();
      handleFiles(evt.dataTransfer.files);
    });
    // A file dropped beside the zone must not make the browser navigate away from the page.
    window.addEventListener("dragover", function (evt) { evt.preventDefault(); });
    window.addEventListener("drop", function (evt) { evt.preventDefault(); });

    function problem(text) {
      var li = document.createElement("li");
      li.textContent = text;
      problems.appendChild(li);
    }

    function checkFile(file) {
      var dot = file.name.lastIndexOf(".");
      var ext = dot > 0 ? file.name.slice(dot).toLowerCase() : "";
      if (extensions.indexOf(ext) < 0) {
        return file.name + ": " + (ext ? ext + " files are" : "files without an extension are") +
          " not accepted; choose a .csv, .xlsx, .xls or .ods file.";
      }
      if (file.size === 0) return file.name + ": the file is empty.";
      if (file.size > maxBytes) {
        return file.name + ": the file is " + formatBytes(file.size) + "; the limit is " + formatBytes(maxBytes) + ".";
      }
      return "";
    }

    function mappingProblem(text) {
      if (!text) return "";
      try {
        var value = JSON.parse(text);
        if (value === null || typeof value !== "object" || Array.isArray(value)) {
          return 'Column mapping: it must be a JSON object like {"Vendor": "supplier_name"}. Nothing was uploaded.';
        }
        return "";
      } catch (err) {
        return "Column mapping is not valid JSON (" + err.message + "). Nothing was uploaded.";
      }
    }

    function handleFiles(fileList) {
      var files = Array.prototype.slice.call(fileList || []);
      if (!files.length) return;
      problems.textContent = "";
      var mapping = form.elements.mapping.value.trim();
      var bad = mappingProblem(mapping);
      if (bad) {
        problem(bad);
        form.querySelector("details.options").open = true;
        return;
      }
      var values = {};
      if (mapping) values.mapping = mapping;
      if (form.elements.day_first.checked) values.day_first = "1";
      if (form.elements.strict.checked) values.strict = "1";
      files.forEach(function (file) {
        var reason = checkFile(file);
        if (reason) problem(reason);
        else send(file, values);
      });
    }

    function send(file, options) {
      var item = document.createElement("div");
      item.className = "pending-upload";
      item.setAttribute("hx-encoding", "multipart/form-data");
      item.setAttribute("data-cards", "");
      item.innerHTML =
        '<div class="pending-head"><span class="file-name"></span><span class="pending-state">Uploading…</span></div>' +
        '<div class="bar" role="progressbar" aria-label="Bytes sent" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0">' +
        '<span class="bar-fill" style="width: 0%"></span></div>' +
        '<span class="pending-bytes"></span>';
      item.querySelector(".file-name").textContent = file.name;
      item.querySelector(".pending-bytes").textContent = "0 of " + formatBytes(file.size);
      pendingList.appendChild(item);

      var shown = 0;
      item.addEventListener("htmx:xhr:progress", function (evt) {
        // htmx reports the upload and then the (small) response: keep the bar moving forward.
        if (!evt.detail.lengthComputable || !evt.detail.total) return;
        var percent = Math.min(100, Math.floor(evt.detail.loaded * 100 / evt.detail.total));
        if (percent <= shown) return;
        shown = percent;
        item.querySelector(".bar-fill").style.width = percent + "%";
        item.querySelector(".bar").setAttribute("aria-valuenow", String(percent));
        item.querySelector(".pending-bytes").textContent =
          formatBytes(Math.round(file.size * percent / 100)) + " of " + formatBytes(file.size) + " · " + percent + "%";
        if (percent === 100) item.querySelector(".pending-state").textContent = "Saving…";
      });

      var values = Object.assign({ files: file }, options);
      htmx.ajax("POST", form.getAttribute("data-upload-url"), { source: item, swap: "none", values: values });
    }
  }

  function failPending(item, reason) {
    item.classList.add("is-failed");
    item.querySelector(".pending-state").textContent = "Refused";
    item.querySelector(".pending-bytes").textContent = reason;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "btn btn-quiet dismiss";
    close.textContent = "Dismiss";
    close.addEventListener("click", function () { item.remove(); });
    item.appendChild(close);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var now = Date.now();
    document.querySelectorAll(".upload-card[data-upload-id]").forEach(function (card) {
      lastSeen.set(card.getAttribute("data-upload-id"), now);
    });
    initUploader();
  });
})();
