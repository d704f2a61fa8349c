/* Clareza control panel: what htmx leaves to the page. A static file, because
   the Content-Security-Policy allows no inline script.

   1. Errors that the server answers with the row itself (409, 422) are
      swapped in place by htmx (responseHandling in base.html's htmx-config).
      Any other failure (403 from a stale tab, 404, 429, 5xx, no network) would
      otherwise do nothing: it is said in the #panel-alert region instead.
   2. After a swap, focus stays on the control that was used. htmx restores it
      by id and honours autofocus; when the control is gone (the reconfirm
      button, Cancel), focus goes to the swapped part's [data-refocus]. */
(function () {
  "use strict";

  function alertRegion() {
    return document.getElementById("panel-alert");
  }

  function say(kind) {
    var region = alertRegion();
    if (!region) return;
    var text = region.getAttribute("data-" + kind) || region.getAttribute("data-failed");
    region.textContent = "";
    var message = document.createElement("p");
    message.className = "message message-error";
    message.textContent = text + " ";
    var reload = document.createElement("a");
    reload.href = window.location.pathname + window.location.search;
    reload.textContent = region.getAttribute("data-reload");
    message.appendChild(reload);
    region.appendChild(message);
  }

  document.addEventListener("htmx:beforeRequest", function () {
    var region = alertRegion();
    if (region) region.textContent = "";
  });

  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    if (status === 403) say("stale");
    else if (status === 404) say("gone");
    else if (status === 429) say("busy");
    else say("failed");
  });

  document.addEventListener("htmx:sendError", function () {
    say("offline");
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    var active = document.activeElement;
    if (active && active !== document.body && document.body.contains(active)) return;
    var swapped = event.target;
    if (!swapped || !swapped.querySelector) return;
    var target = swapped.matches("[data-refocus]") ? swapped : swapped.querySelector("[data-refocus]");
    if (target) target.focus();
  });
})();
