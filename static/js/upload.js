// The upload page: drop or pick several files, name each one, add metadata, and send them one
// after the other. Each file goes as the raw body of a PUT (never multipart), so the server
// streams it to storage; its progress bar follows XMLHttpRequest's upload progress.
(function () {
  "use strict";

  const root = document.getElementById("uploader");
  if (!root) return;

  const checkUrl = root.dataset.checkUrl;
  const streamUrl = root.dataset.streamUrl;
  const maxBytes = Number(root.dataset.maxBytes);
  const dropzone = document.getElementById("dropzone");
  const picker = document.getElementById("file-picker");
  const prefixInput = document.getElementById("common-prefix");
  const queue = document.getElementById("upload-queue");
  const queueEmpty = document.getElementById("queue-empty");
  const startButton = document.getElementById("upload-start");
  const clearButton = document.getElementById("upload-clear");
  const summary = document.getElementById("upload-summary");
  const metadataRows = document.getElementById("metadata-rows");
  const itemTemplate = document.getElementById("upload-item-template");
  const rowTemplate = document.getElementById("metadata-row-template");

  const items = [];
  let running = false;
  let nextId = 0;

  root.hidden = false;
  const fallback = document.getElementById("upload-fallback");
  if (fallback) fallback.hidden = true;

  function csrfToken() {
    // base.html puts the token in hx-headers on <body>; the cookie is the fallback.
    try {
      const headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
      if (headers["X-CSRFToken"]) return headers["X-CSRFToken"];
    } catch (e) { /* fall through to the cookie */ }
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function humanSize(bytes) {
    const units = ["bytes", "KB", "MB", "GB", "TB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
  }

  // Header values must be plain ASCII: escape everything else the JSON way.
  function asciiJson(value) {
    return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (ch) => "\\u" + ch.charCodeAt(0).toString(16).padStart(4, "0"));
  }

  function metadata() {
    const result = {};
    for (const row of metadataRows.querySelectorAll(".metadata-row")) {
      const key = row.querySelector(".metadata-key").value.trim();
      const value = row.querySelector(".metadata-value").value;
      if (key) result[key] = value;
    }
    return result;
  }

  function remotePath(item) {
    const prefix = prefixInput.value.trim();
    const name = item.nameInput.value.trim();
    if (!prefix) return name;
    return prefix.endsWith("/") ? prefix + name : `${prefix}/${name}`;
  }

  function setStatus(item, state, message, link) {
    item.state = state;
    item.element.dataset.state = state;
    item.status.textContent = message;
    if (link) {
      item.status.append(" ");
      const anchor = document.createElement("a");
      anchor.href = link;
      anchor.textContent = "Open it";
      item.status.append(anchor);
    }
    item.status.classList.toggle("error", state === "error");
  }

  function refreshButtons() {
    const waiting = items.some((item) => item.state === "waiting" || item.state === "error");
    startButton.disabled = running || !waiting;
    clearButton.disabled = running || items.length === 0;
    queueEmpty.hidden = items.length > 0;
  }

  function addFiles(files) {
    for (const file of files) {
      const fragment = itemTemplate.content.cloneNode(true);
      const element = fragment.querySelector(".upload-item");
      const id = `upload-name-${nextId++}`;
      const item = {
        file,
        element,
        state: "waiting",
        nameInput: element.querySelector(".upload-name"),
        progress: element.querySelector(".upload-progress"),
        status: element.querySelector(".upload-status"),
      };
      element.querySelector(".upload-filename").textContent = file.name;
      element.querySelector(".upload-name-label").htmlFor = id;
      item.nameInput.id = id;
      item.nameInput.value = file.name;
      item.progress.setAttribute("aria-label", `Upload progress of ${file.name}`);
      element.querySelector(".upload-meta").textContent = `${humanSize(file.size)} · ${file.type || "type guessed by the server"}`;
      element.querySelector(".upload-remove").addEventListener("click", () => {
        if (running && item.state === "sending") return;
        items.splice(items.indexOf(item), 1);
        element.remove();
        refreshButtons();
      });
      if (file.size > maxBytes) {
        setStatus(item, "error", `Too large: ${humanSize(file.size)}, more than the ${humanSize(maxBytes)} an artifact may be.`);
      } else {
        setStatus(item, "waiting", "Ready to upload.");
      }
      items.push(item);
      queue.append(fragment);
    }
    refreshButtons();
  }

  function errorMessage(xhr, fallbackText) {
    try {
      const body = JSON.parse(xhr.responseText);
      if (body && body.error && body.error.message) return body.error.message;
    } catch (e) { /* not JSON */ }
    if (xhr.status === 403) return "Refused: your session may have ended. Reload the page and sign in again.";
    if (xhr.status === 413) return "Too large for the server.";
    return fallbackText;
  }

  function request(method, url, { body = null, headers = {}, onProgress = null } = {}) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      xhr.setRequestHeader("X-CSRFToken", csrfToken());
      xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
      if (onProgress) {
        xhr.upload.addEventListener("progress", (event) => {
          if (event.lengthComputable) onProgress(event.loaded, event.total);
        });
      }
      xhr.addEventListener("load", () => resolve(xhr));
      xhr.addEventListener("error", () => resolve(xhr));
      xhr.addEventListener("abort", () => resolve(xhr));
      xhr.send(body);
    });
  }

  async function upload(item, sharedMetadata) {
    const path = remotePath(item);
    item.nameInput.readOnly = true;
    item.progress.removeAttribute("value");
    setStatus(item, "sending", "Checking…");
    // A name or size the server would refuse is reported before any byte is sent.
    const check = await request("POST", checkUrl, {
      body: JSON.stringify({ remote_path: path, size: item.file.size, metadata: sharedMetadata }),
      headers: { "Content-Type": "application/json" },
    });
    if (check.status !== 200) {
      item.nameInput.readOnly = false;
      item.progress.value = 0;
      setStatus(item, "error", errorMessage(check, "The check failed: the server could not be reached."));
      return;
    }
    item.progress.value = 0;
    setStatus(item, "sending", "Uploading…");
    const url = `${streamUrl}?${new URLSearchParams({ remote_path: path })}`;
    const headers = { "Content-Type": item.file.type || "application/octet-stream" };
    if (Object.keys(sharedMetadata).length) headers["X-Artifact-Metadata"] = asciiJson(sharedMetadata);
    const xhr = await request("PUT", url, {
      body: item.file,
      headers,
      onProgress: (loaded, total) => {
        item.progress.value = Math.floor((loaded / total) * 100);
        item.status.textContent = `Uploading… ${humanSize(loaded)} of ${humanSize(total)}`;
      },
    });
    if (xhr.status === 201) {
      const artifact = JSON.parse(xhr.responseText);
      item.progress.value = 100;
      setStatus(item, "done", `Uploaded as ${artifact.remote_path}, version ${artifact.version}.`, artifact.url);
      return;
    }
    item.nameInput.readOnly = false;
    item.progress.value = 0;
    setStatus(item, "error", errorMessage(xhr, "The upload failed: the connection was lost. Nothing was stored; try again."));
  }

  async function uploadAll() {
    running = true;
    refreshButtons();
    const sharedMetadata = metadata();
    for (const item of items.slice()) {
      if (item.state !== "waiting" && !(item.state === "error" && item.file.size <= maxBytes)) continue;
      await upload(item, sharedMetadata);
    }
    running = false;
    const done = items.filter((item) => item.state === "done").length;
    const failed = items.filter((item) => item.state === "error").length;
    summary.textContent = failed ? `${done} uploaded, ${failed} not: see the messages above.` : `${done} uploaded.`;
    refreshButtons();
  }

  function addMetadataRow() {
    const fragment = rowTemplate.content.cloneNode(true);
    const row = fragment.querySelector(".metadata-row");
    row.querySelector(".metadata-remove").addEventListener("click", () => row.remove());
    metadataRows.append(fragment);
    return row;
  }

  document.getElementById("add-metadata-row").addEventListener("click", () => {
    addMetadataRow().querySelector(".metadata-key").focus();
  });
  addMetadataRow();

  picker.addEventListener("change", () => {
    addFiles(picker.files);
    picker.value = "";
  });
  for (const name of ["dragenter", "dragover"]) {
    dropzone.addEventListener(name, (event) => {
      event.preventDefault();
      dropzone.classList.add("dragover");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    dropzone.addEventListener(name, (event) => {
      event.preventDefault();
      dropzone.classList.remove("dragover");
    });
  }
  dropzone.addEventListener("drop", (event) => {
    if (event.dataTransfer && event.dataTransfer.files.length) addFiles(event.dataTransfer.files);
  });
  startButton.addEventListener("click", uploadAll);
  clearButton.addEventListener("click", () => {
    items.splice(0, items.length);
    queue.replaceChildren();
    summary.textContent = "";
    refreshButtons();
  });
  window.addEventListener("beforeunload", (event) => {
    if (running) event.preventDefault();
  });
  refreshButtons();
})();
