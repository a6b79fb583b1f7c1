/* Upload cards: every card that reaches the page (socket, upload, cancel, retry, the HTTP
   fallback) goes through Intake.cards.apply, and this file alone changes cards on the page.
   - A card replaces the one on the page only if its data-seq is newer: duplicates and late,
     older states are dropped.
   - A newer card is merged into the one on the page (children matched by position and
     data-key, attributes and text copied), never swapped for a new element: the control that
     has the keyboard focus stays the same element, so an update never moves focus or scrolls.
   - A card the page lacks (on page 1 of the dashboard, or the user's own fresh upload) is
     inserted where it belongs in the list, newest first, by data-created.
   - The socket's other fragments: #ws-error becomes a toast, #ws-more ("and N more
     unfinished uploads" beyond the capped snapshot) is shown under the list. */
(function () {
  "use strict";

  var Intake = window.Intake;
  var lastSeen = new Map(); // upload id -> when the page last heard of it (ms)
  var cancelAsked = new Set(); // upload ids whose Cancel was pressed and not yet answered

  function seqOf(el) { return Number(el.getAttribute("data-seq") || 0); }

  function apply(html, options) {
    if (typeof html !== "string" || !html) return;
    var own = !!(options && options.own);
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    var list = document.getElementById("upload-list");
    // Pages after the first take only updates, except for the user's own fresh uploads.
    var acceptNew = !!list && (own || list.getAttribute("data-accept-new") === "true");
    var fresh = [];
    Array.prototype.slice.call(tpl.content.children).forEach(function (el) {
      if (el.id === "ws-error") {
        var text = el.getAttribute("data-error") || el.textContent;
        Intake.lastServerError = { text: text, at: Date.now() };
        Intake.toast(text, "error");
        return;
      }
      if (el.id === "ws-more") {
        showMore(el);
        return;
      }
      var id = el.getAttribute("data-upload-id");
      if (!id) return;
      lastSeen.set(id, Date.now());
      var current = document.getElementById("upload-" + id);
      if (current) {
        if (seqOf(el) > seqOf(current)) update(current, el);
      } else if (acceptNew) {
        fresh.push(el);
      }
    });
    fresh.forEach(function (el) {
      insertInOrder(list, el);
      keepCancelling(el);
    });
  }

  /* The list is newest first: a card goes before the first older one (a snapshot also brings
     unfinished uploads older than every card on the page: those go to the end). */
  function insertInOrder(list, el) {
    var created = Number(el.getAttribute("data-created") || 0);
    var cards = list.querySelectorAll(".upload-card[data-created]");
    for (var i = 0; i < cards.length; i++) {
      if (Number(cards[i].getAttribute("data-created")) < created) {
        list.insertBefore(el, cards[i]);
        return;
      }
    }
    list.appendChild(el);
  }

  function update(current, incoming) {
    var focused = document.activeElement;
    var hadFocus = !!focused && focused !== current && current.contains(focused);
    var wasFinal = Intake.isFinal(current);
    morph(current, incoming);
    keepCancelling(current);
    // Parts of the page that follow the upload (the review's summary) fetch themselves again.
    current.dispatchEvent(new CustomEvent("intake:card-updated", { bubbles: true }));
    // Only if the focused control itself is gone (Cancel once the upload ended) does focus
    // move, and then to the card: never to another control a second Enter would press.
    if (hadFocus && !focused.isConnected) current.focus({ preventScroll: true });
    // The detail page lists the issues it was rendered with: once the upload ends (again,
    // after a Retry), say that a reload shows the final ones.
    var stale = document.getElementById("issues-stale");
    if (stale && !wasFinal && Intake.isFinal(current)) stale.hidden = false;
  }

  // --- merging a newer card into the one on the page ---------------------------------------

  function kind(node) {
    if (node.nodeType !== 1) return "#" + node.nodeType;
    return node.nodeName + "#" + (node.getAttribute("data-key") || "");
  }

  function morph(from, to) {
    if (from.nodeType !== 1) {
      if (from.nodeValue !== to.nodeValue) from.nodeValue = to.nodeValue;
      return;
    }
    copyAttributes(from, to);
    var olds = Array.prototype.slice.call(from.childNodes);
    var news = Array.prototype.slice.call(to.childNodes);
    var i = 0;
    news.forEach(function (node) {
      var keyed = node.nodeType === 1 && node.hasAttribute("data-key");
      var match = -1;
      // A keyed child may be found further on (the children before it are gone); any other
      // child matches only the next one.
      for (var j = i; j < olds.length; j++) {
        if (kind(olds[j]) === kind(node)) { match = j; break; }
        if (!keyed) break;
      }
      if (match < 0) {
        from.insertBefore(node, olds[i] || null);
        return;
      }
      for (; i < match; i++) olds[i].remove();
      morph(olds[match], node);
      i = match + 1;
    });
    for (; i < olds.length; i++) olds[i].remove();
  }

  function copyAttributes(from, to) {
    var name, i;
    for (i = from.attributes.length - 1; i >= 0; i--) {
      name = from.attributes[i].name;
      if (!to.hasAttribute(name)) from.removeAttribute(name);
    }
    for (i = 0; i < to.attributes.length; i++) {
      name = to.attributes[i].name;
      if (from.getAttribute(name) !== to.attributes[i].value) from.setAttribute(name, to.attributes[i].value);
    }
  }

  // --- Cancel pressed, not yet answered ------------------------------------------------------

  /* Shows "Cancelling…" at once, and keeps showing it through the progress that arrives
     before the server's answer. The button stays focusable (aria-disabled, not disabled). */
  function markCancelling(card) {
    cancelAsked.add(card.getAttribute("data-upload-id"));
    keepCancelling(card);
  }

  function keepCancelling(card) {
    var id = card.getAttribute("data-upload-id");
    if (!cancelAsked.has(id)) return;
    var status = card.getAttribute("data-status");
    if (status !== "queued" && status !== "processing") {
      cancelAsked.delete(id);
      return;
    }
    var button = card.querySelector('[data-action="cancel"]');
    if (!button) return;
    if (button.textContent !== "Cancelling…") button.textContent = "Cancelling…";
    button.setAttribute("aria-disabled", "true");
    button.setAttribute("aria-busy", "true");
  }

  function cancelFailed(card) {
    cancelAsked.delete(card.getAttribute("data-upload-id"));
    var button = card.querySelector('[data-action="cancel"]');
    if (!button) return;
    button.textContent = "Cancel";
    button.removeAttribute("aria-disabled");
    button.removeAttribute("aria-busy");
  }

  // --- the capped snapshot's "and N more" ----------------------------------------------------

  function showMore(el) {
    var box = document.getElementById("more-unfinished");
    if (!box) return;
    var count = Number(el.getAttribute("data-more") || 0);
    box.textContent = el.textContent;
    box.setAttribute("data-more", String(count));
    box.hidden = !(count > 0);
  }

  function hideMore() {
    var box = document.getElementById("more-unfinished");
    if (box) box.hidden = true;
  }

  // --- which cards went quiet ----------------------------------------------------------------

  /* Up to `most` unfinished cards not heard of for longer than quietAfter(card) ms. Each is
     then counted as heard of now: it is asked again only if this question also goes
     unanswered (the server answers only with cards that changed). */
  function quietIds(quietAfter, most) {
    var now = Date.now();
    var ids = [];
    document.querySelectorAll(".upload-card[data-upload-id]").forEach(function (card) {
      if (Intake.isFinal(card) || ids.length >= most) return;
      var id = card.getAttribute("data-upload-id");
      if (now - (lastSeen.get(id) || 0) > quietAfter(card)) {
        ids.push(id);
        lastSeen.set(id, now);
      }
    });
    return ids;
  }

  function unfinishedIds() {
    var ids = [];
    document.querySelectorAll(".upload-card[data-upload-id]").forEach(function (card) {
      if (!Intake.isFinal(card)) ids.push(card.getAttribute("data-upload-id"));
    });
    return ids;
  }

  Intake.cards = {
    apply: apply,
    markCancelling: markCancelling,
    cancelFailed: cancelFailed,
    hideMore: hideMore,
    quietIds: quietIds,
    unfinishedIds: unfinishedIds
  };

  document.addEventListener("DOMContentLoaded", function () {
    var now = Date.now();
    document.querySelectorAll(".upload-card[data-upload-id]").forEach(function (card) {
      lastSeen.set(card.getAttribute("data-upload-id"), now);
    });
  });
})();
