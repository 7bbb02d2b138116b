// Behaviour every dashboard page shares, kept out of the markup: the Content-Security-Policy
// allows no inline script or event handler.
(function () {
  "use strict";

  // The organization switcher submits itself when a new organization is picked.
  document.addEventListener("change", (event) => {
    const select = event.target.closest && event.target.closest("select[data-submit-on-change]");
    if (select && select.form) select.form.requestSubmit();
  });
})();
