// The upload page: drop or pick several files, name each one, add metadata, and send them one
// after the other. Each file goes as the raw body of a PUT (never multipart), so the server
// streams it to storage; its progress bar follows XMLHttpRequest's upload progress.
// When the store is S3 and the file is large, the server says so ("direct"): the file is cut
// into parts, each hashed here (SHA-256) and sent with a URL the server signed for that part's
// length and hash straight to the bucket; the server then joins the parts and checks the whole.
(function () {
  "use strict";

  const root = document.getElementById("uploader");
  if (!root) return;

  const checkUrl = root.dataset.checkUrl;
  const streamUrl = root.dataset.streamUrl;
  const directUrl = root.dataset.directUrl;
  // Parts in flight at once, and attempts per part before the file is given up on.
  const PARTS_IN_FLIGHT = 3;
  const PART_ATTEMPTS = 3;
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

  // sameOrigin: false for the object store, which must get no cookie-bound header of ours.
  function request(method, url, { body = null, headers = {}, onProgress = null, sameOrigin = true } = {}) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      if (sameOrigin) {
        xhr.setRequestHeader("X-CSRFToken", csrfToken());
        xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      }
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

  function postJson(url, payload) {
    return request("POST", url, { body: JSON.stringify(payload), headers: { "Content-Type": "application/json" } });
  }

  function showProgress(item, loaded, total) {
    item.progress.value = Math.floor((loaded / total) * 100);
    item.status.textContent = `Uploading… ${humanSize(loaded)} of ${humanSize(total)}`;
  }

  function uploaded(item, xhr) {
    const artifact = JSON.parse(xhr.responseText);
    item.progress.value = 100;
    setStatus(item, "done", `Uploaded as ${artifact.remote_path}, version ${artifact.version}.`, artifact.url);
  }

  function failed(item, message) {
    item.nameInput.readOnly = false;
    item.progress.value = 0;
    setStatus(item, "error", message);
  }

  async function upload(item, sharedMetadata) {
    const path = remotePath(item);
    item.nameInput.readOnly = true;
    item.progress.removeAttribute("value");
    setStatus(item, "sending", "Checking…");
    // A name or size the server would refuse is reported before any byte is sent.
    const check = await postJson(checkUrl, { remote_path: path, size: item.file.size, metadata: sharedMetadata });
    if (check.status !== 200) {
      failed(item, errorMessage(check, "The check failed: the server could not be reached."));
      return;
    }
    if (JSON.parse(check.responseText).direct && window.crypto && window.crypto.subtle) {
      const outcome = await uploadDirect(item, path, sharedMetadata);
      if (outcome !== "unreachable") return;
      // The bucket refused the browser (no CORS rule for this site, say): go through Stowage.
      item.fallbackNote = "The storage bucket could not be reached from this page, so the file went through Stowage. ";
    }
    await uploadStream(item, path, sharedMetadata);
  }

  async function uploadStream(item, path, sharedMetadata) {
    item.progress.value = 0;
    setStatus(item, "sending", "Uploading…");
    const url = `${streamUrl}?${new URLSearchParams({ remote_path: path })}`;
    const headers = { "Content-Type": item.file.type || "application/octet-stream" };
    if (Object.keys(sharedMetadata).length) headers["X-Artifact-Metadata"] = asciiJson(sharedMetadata);
    const xhr = await request("PUT", url, {
      body: item.file,
      headers,
      onProgress: (loaded, total) => showProgress(item, loaded, total),
    });
    if (xhr.status === 201) {
      uploaded(item, xhr);
      if (item.fallbackNote) item.status.prepend(item.fallbackNote);
      return;
    }
    failed(item, errorMessage(xhr, "The upload failed: the connection was lost. Nothing was stored; try again."));
  }

  async function sha256Base64(blob) {
    const digest = new Uint8Array(await window.crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
    let binary = "";
    for (const byte of digest) binary += String.fromCharCode(byte);
    return btoa(binary);
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // Resolves to "done", "failed" (the message is shown) or "unreachable" (nothing is left
  // behind and the caller may send the file through Stowage instead).
  async function uploadDirect(item, path, sharedMetadata) {
    const file = item.file;
    const begin = await postJson(directUrl, { remote_path: path, size: file.size, content_type: file.type || "", metadata: sharedMetadata });
    if (begin.status !== 201) {
      failed(item, errorMessage(begin, "The upload could not begin: the server could not be reached."));
      return "failed";
    }
    const plan = JSON.parse(begin.responseText);
    const loaded = new Array(plan.part_count + 1).fill(0);
    let reached = false;
    let problem = null;
    let next = 1;
    item.progress.value = 0;
    setStatus(item, "sending", "Uploading…");

    async function sendPart(number) {
      const start = (number - 1) * plan.part_size;
      const blob = file.slice(start, Math.min(start + plan.part_size, file.size));
      const sha256 = await sha256Base64(blob);
      for (let attempt = 1; attempt <= PART_ATTEMPTS; attempt++) {
        const signed = await postJson(plan.urls.part, { number, sha256 });
        if (signed.status !== 200) throw new Error(errorMessage(signed, "The server could not sign a part of the file."));
        const part = JSON.parse(signed.responseText);
        const xhr = await request(part.method, part.url, {
          body: blob,
          headers: part.headers,
          sameOrigin: false,
          onProgress: (done) => {
            loaded[number] = done;
            showProgress(item, loaded.reduce((a, b) => a + b, 0), file.size);
          },
        });
        if (xhr.status >= 200 && xhr.status < 300) {
          reached = true;
          loaded[number] = blob.size;
          return;
        }
        loaded[number] = 0;
        if (xhr.status === 0 && !reached) throw new Error("unreachable");
        if (attempt < PART_ATTEMPTS) await sleep(500 * attempt);
      }
      throw new Error(`Part ${number} of ${plan.part_count} could not be stored after ${PART_ATTEMPTS} attempts.`);
    }

    async function worker() {
      while (!problem && next <= plan.part_count) {
        const number = next++;
        try {
          await sendPart(number);
        } catch (error) {
          problem = problem || error.message;
        }
      }
    }

    await Promise.all(Array.from({ length: Math.min(PARTS_IN_FLIGHT, plan.part_count) }, worker));
    if (problem) {
      await postJson(plan.urls.abort, {});
      if (problem === "unreachable") return "unreachable";
      failed(item, `${problem} Nothing was stored; try again.`);
      return "failed";
    }

    item.progress.removeAttribute("value");
    setStatus(item, "sending", "Checking the stored file…");
    const complete = await postJson(plan.urls.complete, {});
    if (complete.status !== 202) {
      await postJson(plan.urls.abort, {});
      failed(item, errorMessage(complete, "The file could not be joined in storage. Nothing was stored; try again."));
      return "failed";
    }
    // A worker reads the object back once and records its SHA-256; then it is published.
    for (let waited = 0; ; waited += 1) {
      const status = await request("GET", plan.urls.status);
      const answer = status.status === 200 ? JSON.parse(status.responseText) : null;
      if (answer && answer.state === "succeeded") {
        item.progress.value = 100;
        setStatus(item, "done", `Uploaded as ${answer.artifact.remote_path}, version ${answer.artifact.version}.`, answer.artifact.url);
        return "done";
      }
      if (answer && answer.state === "failed") {
        failed(item, `${answer.error.message}. Nothing was stored; try again.`);
        return "failed";
      }
      if (waited === 120) {
        item.progress.value = 100;
        setStatus(item, "done", "Stored; still being checked. It will be listed once the check ends.");
        return "done";
      }
      await sleep(waited < 10 ? 250 : 1000);
    }
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
