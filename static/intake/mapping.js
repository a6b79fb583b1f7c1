/* The mapping form: says beside a field what the choice still lacks (a required field left
   unmapped, two columns on one field) before anything is sent, and keeps the Load button
   off until the choice can load. No inline script (strict CSP): it listens on document, so
   cards swapped in later are covered too. */
(function () {
  "use strict";

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
        var others = found.filter(function (s) { return s !== select; }).map(function (s) { return "'" + s.getAttribute("data-header") + "'"; });
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
    if (note) note.textContent = missing.length ? "Still needed: " + missing.join("; ") + " (choose a column, or a value for every row)." : "";
    problems += missing.length;
    var button = form.querySelector(".load-mapped");
    if (button) button.disabled = problems > 0;
    return problems === 0;
  }

  function formOf(target) {
    return target && target.closest ? target.closest("form.mapping-form") : null;
  }

  document.addEventListener("change", function (evt) {
    var form = formOf(evt.target);
    if (form) check(form);
  });
  document.addEventListener("input", function (evt) {
    var form = formOf(evt.target);
    if (form) check(form);
  });
  document.addEventListener("htmx:load", function (evt) {
    var root = evt.detail && evt.detail.elt;
    if (!root || !root.querySelectorAll) return;
    var forms = root.matches && root.matches("form.mapping-form") ? [root] : root.querySelectorAll("form.mapping-form");
    Array.prototype.forEach.call(forms, check);
  });
  document.addEventListener("htmx:confirm", function (evt) {
    var form = formOf(evt.target);
    if (form && evt.target === form && !check(form)) evt.preventDefault();
  });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.mapping-form").forEach(check);
  });
})();
