/* The mapping form (templates/ingestion/_mapping_form.html), on a card, the detail page or a
   profile's page (posted as a page there):
   - says beside a field what the choice still lacks (a required field left unmapped, two
     columns on one field) before anything is sent, and keeps Load off until it can load;
   - asks for the preview of the first rows whenever a choice changes (the latest answer wins);
   - posts the choice and applies the card that comes back (Intake.cards.apply).
   It listens on document, so forms that arrive with a card later are covered too; no inline
   script or style (the Content-Security-Policy allows neither). */
(function () {
  "use strict";

  var Intake = window.Intake || {};
  var asked = new WeakMap(); // form -> number of the latest preview request

  function check(form) {
    var groups = JSON.parse(form.getAttribute("data-groups") || "[]");
    var labels = JSON.parse(form.getAttribute("data-labels") || "{}");
    var selects = Array.prototype.slice.call(form.querySelectorAll("select.map-select"));
    var byField = {};
    selects.forEach(function (select) {
      var err = select.parentNode.querySelector(".field-error");
      if (err) err.textContent = "";
      if (select.value) (byField[select.value] = byField[select.value] || []).push(select);
    });
    var problems = 0;
    Object.keys(byField).forEach(function (field) {
      var found = byField[field];
      if (found.length < 2) return;
      problems += 1;
      found.forEach(function (select) {
        var others = found.filter(function (s) { return s !== select; }).map(function (s) {
          return "'" + s.getAttribute("data-header") + "'";
        });
        select.parentNode.querySelector(".field-error").textContent =
          "Also chosen for " + others.join(", ") + ": one column per field (" + labels[field] + ").";
      });
    });
    var constants = {};
    form.querySelectorAll("input[data-field]").forEach(function (input) {
      if (input.value.trim()) constants[input.getAttribute("data-field")] = true;
    });
    var missing = groups.filter(function (group) {
      return !group.some(function (field) { return byField[field] || constants[field]; });
    }).map(function (group) {
      return group.map(function (field) { return labels[field]; }).join(" or ");
    });
    var note = form.querySelector(".mapping-missing");
    if (note) {
      note.textContent = missing.length
        ? "Still needed: " + missing.join("; ") + " (choose a column, or a value for every row)."
        : "";
    }
    problems += missing.length;
    var button = form.querySelector(".load-mapped");
    if (button) button.disabled = problems > 0;
    return problems === 0;
  }

  function query(form) {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, name) {
      if (typeof value === "string") params.append(name, value);
    });
    return params;
  }

  function preview(form) {
    var box = form.querySelector(".mapping-preview");
    var url = form.getAttribute("data-preview-url");
    if (!box || !url) return;
    var number = (asked.get(form) || 0) + 1;
    asked.set(form, number);
    fetch(url + "?" + query(form).toString(), { credentials: "same-origin", headers: { "HX-Request": "true" } })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        if (asked.get(form) !== number) return; // a later choice was asked for meanwhile
        box.innerHTML = html;
        box.setAttribute("data-preview", String(number));
      }, function () {});
  }

  function submit(form) {
    if (!check(form)) return;
    var button = form.querySelector(".load-mapped");
    if (button) button.disabled = true;
    fetch(form.getAttribute("action"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": Intake.csrfToken ? Intake.csrfToken() : "", "HX-Request": "true" },
      body: query(form)
    }).then(function (response) {
      return response.text().then(function (text) {
        if (response.ok) {
          if (Intake.cards) Intake.cards.apply(text);
        } else {
          if (button) button.disabled = false;
          var note = form.querySelector(".mapping-missing");
          if (note) note.textContent = Intake.reason ? Intake.reason({ text: text, status: response.status }) : text;
        }
      });
    }, function () {
      if (button) button.disabled = false;
      if (Intake.toast) Intake.toast("Network error: the mapping could not be sent.", "error");
    });
  }

  function formOf(target) {
    return target && target.closest ? target.closest("form.mapping-form") : null;
  }

  function setUp(form) {
    if (form.getAttribute("data-ready") === "1") return;
    form.setAttribute("data-ready", "1");
    check(form);
    preview(form);
  }

  document.addEventListener("change", function (evt) {
    var form = formOf(evt.target);
    if (!form) return;
    check(form);
    preview(form);
  });
  document.addEventListener("input", function (evt) {
    var form = formOf(evt.target);
    if (form) check(form);
  });
  document.addEventListener("submit", function (evt) {
    var form = formOf(evt.target);
    if (!form) return;
    if (form.getAttribute("data-submit") === "page") { // a profile's page: posted as a page
      if (!check(form)) evt.preventDefault();
      return;
    }
    evt.preventDefault();
    submit(form);
  });

  // Forms arrive with cards (a card turning needs_mapping is merged into the page's one).
  function scan() {
    document.querySelectorAll("form.mapping-form").forEach(setUp);
  }
  document.addEventListener("DOMContentLoaded", function () {
    scan();
    new MutationObserver(scan).observe(document.body, { childList: true, subtree: true });
  });
})();
