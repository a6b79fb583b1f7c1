/* "Refresh by itself": on an analytics page with a live connection, a buyer may tick a box
   (remembered in this browser's localStorage, or set for one link with ?autorefresh=1) so
   that the "new data" notice reloads the page instead of waiting for a click. */
(function () {
  "use strict";
  var KEY = "intake.analytics.autoRefresh";

  function stored() {
    try { return window.localStorage.getItem(KEY) === "1"; } catch (e) { return false; }
  }

  function store(on) {
    try { window.localStorage.setItem(KEY, on ? "1" : "0"); } catch (e) { /* private mode: this page only */ }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("auto-refresh");
    var notice = document.getElementById("new-data");
    if (!box || !notice || !document.querySelector("[data-live-data]")) return;
    var asked = new URLSearchParams(window.location.search).get("autorefresh");
    box.checked = asked === null ? stored() : asked === "1";
    box.closest(".auto-refresh").hidden = false;
    box.addEventListener("change", function () { store(box.checked); });
    new MutationObserver(function () {
      if (!notice.hidden && box.checked) window.location.reload();
    }).observe(notice, { attributes: true, attributeFilter: ["hidden"] });
  });
})();
