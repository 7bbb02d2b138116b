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

  // The navigation folds behind the menu button on a narrow screen (the CSS decides when); without
  // this script there is no button and the navigation stays open.
  function setMenu(header, open) {
    header.classList.toggle("menu-open", open);
    header.querySelector(".menu-toggle").setAttribute("aria-expanded", String(open));
  }
  document.querySelectorAll("header[data-menu]").forEach((header) => {
    header.classList.add("has-menu");
    header.querySelector(".menu-toggle").hidden = false;
  });
  document.addEventListener("click", (event) => {
    const toggle = event.target.closest && event.target.closest(".menu-toggle");
    if (!toggle) return;
    const header = toggle.closest("header[data-menu]");
    setMenu(header, !header.classList.contains("menu-open"));
    if (header.classList.contains("menu-open")) {
      const first = header.querySelector("nav a");
      if (first) first.focus();
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const header = document.querySelector("header[data-menu].menu-open");
    if (!header) return;
    setMenu(header, false);
    header.querySelector(".menu-toggle").focus();
  });

  // A link to a form's section (the row actions' "Share…" to #share-links) puts the focus in its first field.
  function focusLinkedForm() {
    const section = location.hash.length > 1 ? document.getElementById(location.hash.slice(1)) : null;
    const field = section && section.querySelector("form input:not([type=hidden]), form select, form textarea");
    if (field) field.focus();
  }
  // After the browser's own move to the fragment, which takes the focus to the section itself.
  window.addEventListener("load", () => setTimeout(focusLinkedForm, 0));
  window.addEventListener("hashchange", () => setTimeout(focusLinkedForm, 0));

  // After an htmx swap, focus goes to what comes next ([data-focus-next], e.g. the first of the
  // rows "Load more" brought) and the swapped content's [data-announce] text is read out.
  document.addEventListener("htmx:afterSettle", (event) => {
    const root = event.target instanceof Element ? event.target : null;
    if (!root) return;
    const within = (selector) => (root.matches(selector) ? root : root.querySelector(selector));
    const next = within("[data-focus-next]");
    if (next) {
      next.removeAttribute("data-focus-next");
      const target = next.matches("a, button, input, select, textarea") ? next : next.querySelector("a, button");
      if (target) target.focus();
    }
    const announce = within("[data-announce]");
    const live = document.getElementById("live-status");
    if (announce && live) live.textContent = announce.dataset.announce || announce.textContent.trim();
  });
})();

