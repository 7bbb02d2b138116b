// Behaviour every dashboard page shares, kept out of the markup: the Content-Security-Policy
// allows no inline script, no inline event handler and no eval (so no htmx trigger filters).
(function () {
  "use strict";

  // A select that submits its form when changed: the organization switcher, and the selects of
  // a form marked data-submit-on-select (the artifact search, which htmx then sends).
  document.addEventListener("change", (event) => {
    const select = event.target.closest && event.target.closest("select");
    if (!select || !select.form) return;
    if (select.matches("[data-submit-on-change]") || select.form.matches("[data-submit-on-select]")) {
      select.form.requestSubmit();
    }
  });
})();
