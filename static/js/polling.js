/* Clareza: what a page says beside a part that htmx polls (hx-trigger="every ...").
   A static file, because the Content-Security-Policy allows no inline script.

   The server sends the sentence that is true without JavaScript ("Reload this
   page, or use Check again") and, hidden, the one that is true only while
   htmx polls ("This page updates by itself"). htmx fires htmx:load once it
   has set up the page, and again for each part it swaps in: only then, and
   only inside a polled part, are the two exchanged. Without JavaScript, or
   when htmx did not load, this never runs and the page claims nothing. */
(function () {
  "use strict";

  var NOTES = "[data-when-polling], [data-when-not-polling]";

  function notesIn(root) {
    var found = Array.prototype.slice.call(root.querySelectorAll(NOTES));
    if (root.matches(NOTES)) found.push(root);
    return found;
  }

  document.addEventListener("htmx:load", function (event) {
    var root = event.detail && event.detail.elt;
    if (!root || !root.querySelectorAll) return;
    notesIn(root).forEach(function (note) {
      if (!note.closest('[hx-trigger*="every"]')) return;
      note.hidden = note.hasAttribute("data-when-not-polling");
    });
  });
})();
