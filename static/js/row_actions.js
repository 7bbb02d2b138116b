// Row actions of the artifact list and the folder view: "Copy link" POSTs for a presigned URL
// (<button data-presign="url" data-presign-for="artifact id">), puts it on the clipboard and says
// so; the URL is also shown in a field beside it, selected, for a browser that refuses the copy.
(function () {
  "use strict";

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  function fallbackField(button, id, url) {
    let field = document.getElementById("presign-url-" + id);
    if (!field) {
      const wrap = document.createElement("span");
      wrap.className = "presigned-fallback";
      const label = document.createElement("label");
      label.className = "visually-hidden";
      label.htmlFor = "presign-url-" + id;
      label.textContent = "Presigned link";
      field = document.createElement("input");
      field.id = "presign-url-" + id;
      field.type = "text";
      field.readOnly = true;
      field.setAttribute("data-select-on-focus", "");
      field.addEventListener("focus", () => field.select());
      wrap.append(label, field);
      button.parentElement.append(wrap);
    }
    field.value = url;
    return field;
  }

  async function copyLink(button) {
    const id = button.dataset.presignFor;
    const status = document.getElementById("presign-status-" + id);
    const say = (text, ok) => {
      if (!status) return;
      status.textContent = text;
      status.classList.toggle("copied", ok);
      status.classList.toggle("error", !ok);
    };
    button.disabled = true;
    say("Making a link…", true);
    let answer;
    try {
      const response = await fetch(button.dataset.presign, {
        method: "POST",
        headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
        credentials: "same-origin",
      });
      answer = await response.json().catch(() => ({}));
      if (!response.ok) {
        say((answer.error && answer.error.message) || "The link could not be made. Reload the page and try again.", false);
        return;
      }
    } catch (e) {
      say("Stowage did not answer. Check the connection and try again.", false);
      return;
    } finally {
      // Disabling took the focus away; it comes back to the button.
      button.disabled = false;
      button.focus();
    }
    const field = fallbackField(button, id, answer.url);
    const hours = Math.round(answer.expires_in / 3600);
    const valid = hours >= 1 ? `valid for ${hours} hour${hours === 1 ? "" : "s"}` : `valid for ${answer.expires_in} seconds`;
    try {
      await navigator.clipboard.writeText(answer.url);
      say(`Link copied, ${valid}.`, true);
    } catch (e) {
      // No clipboard access (an insecure origin, or refused): the field holds it, selected.
      say(`Copy the link from the field (Ctrl+C), ${valid}.`, true);
      field.focus();
      field.select();
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("button[data-presign]");
    if (button) copyLink(button);
  });
})();
