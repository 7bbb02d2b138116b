// Copy buttons: <button data-copy-target="element-id" [data-copy-status="element-id"]>, and
// fields that select themselves on focus (data-select-on-focus). Delegated from the document, so
// elements that htmx swaps in later work too.
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
    const status = button.dataset.copyStatus ? document.getElementById(button.dataset.copyStatus) : null;
    try {
      await navigator.clipboard.writeText(textOf(target));
      flash(button, "Copied");
      if (status) status.textContent = "It is on your clipboard.";
    } catch (e) {
      // No clipboard access (an insecure origin, or refused): leave it selected to copy by hand.
      selectText(target);
      flash(button, "Press Ctrl+C");
    }
  });

  document.addEventListener("focusin", (event) => {
    if (event.target.matches && event.target.matches("[data-select-on-focus]")) event.target.select();
  });
})();
