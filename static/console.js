// Small conveniences on top of htmx; every page works without them.

// The live log stays scrolled to its newest line, unless the reader scrolled up to read.
(function () {
  function log() { return document.getElementById("log-lines"); }
  function atBottom(element) { return element.scrollHeight - element.scrollTop - element.clientHeight < 24; }
  let pinned = true;
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    const element = log();
    if (element && event.detail.target === element) pinned = atBottom(element);
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    const element = log();
    if (element && event.detail.target === element && pinned) element.scrollTop = element.scrollHeight;
  });
  document.addEventListener("DOMContentLoaded", function () {
    const element = log();
    if (element) element.scrollTop = element.scrollHeight;
  });
})();

// "Select all" for the functions list: shown only when scripts run.
document.addEventListener("change", function (event) {
  const box = event.target;
  if (!box.matches("[data-select-all]")) return;
  document.querySelectorAll('input[type=checkbox][name="' + box.dataset.selectAll + '"]').forEach(function (other) {
    other.checked = box.checked;
  });
});
function revealSelectAll() {
  document.querySelectorAll("[data-select-all]").forEach(function (box) { box.hidden = false; });
}
document.addEventListener("DOMContentLoaded", revealSelectAll);
document.addEventListener("htmx:afterSettle", revealSelectAll);

// Asks before destructive buttons (delete a secret, revoke a token); without scripts the
// page still works, just without the question.
document.addEventListener("click", function (event) {
  const button = event.target.closest("button[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
});

// The live log polls only while the tab is visible: a poll from a hidden tab is dropped. (An
// htmx trigger filter would say this in the template, but it needs eval, which the page's
// Content-Security-Policy forbids.)
document.addEventListener("htmx:confirm", function (event) {
  if (event.target.matches("[data-only-while-visible]") && document.visibilityState !== "visible") {
    event.preventDefault();
  }
});

// The new token's field selects itself on focus, ready to copy (no inline handlers: the CSP
// forbids them).
document.addEventListener("focusin", function (event) {
  if (event.target.matches("input[data-select-on-focus]")) event.target.select();
});
