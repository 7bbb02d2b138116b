// Copy buttons: <button data-copy-target="element-id">. Delegated from the document, so buttons
// that htmx swaps in later work too.
(function () {
  "use strict";

  function textOf(target) {
    return "value" in target && target.tagName !== "BUTTON" ? target.value : target.textContent.trim();
  }

  function selectText(target) {
    if (typeof target.select === "function") {
      target.select();
      return;
    }
    const range = document.createRange();
    range.selectNodeContents(target);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function flash(button, label) {
    if (!button.dataset.label) button.dataset.label = button.textContent;
    button.textContent = label;
    clearTimeout(button._copyTimer);
    button._copyTimer = setTimeout(() => { button.textContent = button.dataset.label; }, 2000);
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-copy-target]");
    if (!button) return;
    const target = document.getElementById(button.dataset.copyTarget);
    if (!target) return;
    try {
      await navigator.clipboard.writeText(textOf(target));
      flash(button, "Copied");
    } catch (e) {
      // No clipboard access (an insecure origin, or refused): leave it selected to copy by hand.
      selectText(target);
      flash(button, "Press Ctrl+C");
    }
  });
})();
