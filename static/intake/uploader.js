/* The drop zone: checks each dropped or chosen file (type, size, the mapping's JSON) before
   anything is sent, posts each good file on its own and shows its byte progress; the
   answer is the new card, which cards.js puts on the page. A refused file shows the server's
   reason in place of its progress. */
(function () {
  "use strict";

  var Intake = window.Intake;

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
      var options = {};
      if (mapping) options.mapping = mapping;
      if (form.elements.day_first.checked) options.day_first = "1";
      if (form.elements.strict.checked) options.strict = "1";
      if (form.elements.on_existing) options.on_existing = form.elements.on_existing.value;
      var sent = 0;
      files.forEach(function (file) {
        var reason = checkFile(file);
        if (reason) problem(reason);
        else { send(file, options); sent += 1; }
      });
      // A mapping is for the files it was given with: the next file starts without it
      // (its own columns are suggested, or its profile applies), never failing on this one's.
      if (mapping && sent) {
        form.elements.mapping.value = "";
        var note = form.querySelector(".mapping-used");
        if (note) note.textContent = "The column mapping above was used for " + sent + " file" +
          (sent === 1 ? "" : "s") + " and cleared; the next file gets its own.";
      }
    }

    function pendingItem(file) {
      var item = document.createElement("div");
      item.className = "pending-upload";
      var head = document.createElement("div");
      head.className = "pending-head";
      var name = document.createElement("span");
      name.className = "file-name";
      name.textContent = file.name;
      var state = document.createElement("span");
      state.className = "pending-state";
      state.textContent = "Uploading…";
      head.append(name, state);
      var bar = document.createElement("progress");
      bar.className = "bar";
      bar.max = 100;
      bar.value = 0;
      bar.setAttribute("aria-label", "Bytes sent");
      var bytes = document.createElement("span");
      bytes.className = "pending-bytes";
      bytes.textContent = "0 of " + formatBytes(file.size);
      item.append(head, bar, bytes);
      return item;
    }

    function send(file, options) {
      var item = pendingItem(file);
      pendingList.appendChild(item);
      var data = new FormData();
      data.append("files", file);
      Object.keys(options).forEach(function (key) { data.append(key, options[key]); });

      var xhr = new XMLHttpRequest();
      var shown = 0;
      xhr.upload.addEventListener("progress", function (evt) {
        if (!evt.lengthComputable || !evt.total) return;
        var percent = Math.min(100, Math.floor(evt.loaded * 100 / evt.total));
        if (percent <= shown) return;
        shown = percent;
        item.querySelector(".bar").value = percent;
        item.querySelector(".pending-bytes").textContent =
          formatBytes(Math.round(file.size * percent / 100)) + " of " + formatBytes(file.size) + " · " + percent + "%";
        if (percent === 100) item.querySelector(".pending-state").textContent = "Saving…";
      });
      xhr.addEventListener("load", function () {
        if (xhr.status >= 200 && xhr.status < 300) {
          item.remove();
          Intake.cards.apply(xhr.responseText, { own: true });
        } else {
          failPending(item, Intake.reason({ status: xhr.status, text: xhr.responseText }));
        }
      });
      xhr.addEventListener("error", function () {
        failPending(item, "Network error: the file could not be sent.");
      });
      xhr.open("POST", form.getAttribute("data-upload-url"));
      xhr.setRequestHeader("X-CSRFToken", Intake.csrfToken());
      xhr.setRequestHeader("HX-Request", "true"); // answer with cards, not a redirect
      xhr.send(data);
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

  document.addEventListener("DOMContentLoaded", initUploader);
})();
