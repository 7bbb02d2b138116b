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
  // Parts in flight at once; parts signed per call; attempts per part (and per call to Stowage)
  // before giving up, with pauses of 1, 2, 4, 8 s between them; how long to wait for the check.
  const PARTS_IN_FLIGHT = 3;
  const SIGN_BATCH = 2;
  const PART_ATTEMPTS = 5;
  const RETRIES = 5;
  const CHECK_WAIT_MS = 10 * 60 * 1000;
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

  function parseJson(xhr) {
    try {
      return JSON.parse(xhr.responseText);
    } catch (e) {
      return null;
    }
  }

  function errorMessage(xhr, fallbackText) {
    const body = parseJson(xhr);
    if (body && body.error && body.error.message) return body.error.message;
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

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // No answer, or the server or the queue briefly unavailable: worth another try.
  function transient(xhr) {
    return xhr.status === 0 || xhr.status === 502 || xhr.status === 503 || xhr.status === 504;
  }

  function backoff(xhr, attempt) {
    // Only Stowage's own answers are read for it: the browser hides other origins' headers.
    const ours = xhr.responseURL && new URL(xhr.responseURL).origin === window.location.origin;
    const asked = ours ? Number(xhr.getResponseHeader("Retry-After")) : 0;
    return Math.min(asked > 0 ? asked * 1000 : 1000 * 2 ** (attempt - 1), 30000);
  }

  // A call to Stowage itself, tried again over a short outage (about half a minute in all).
  async function callStowage(method, url, payload) {
    const options = payload === undefined ? {} : { body: JSON.stringify(payload), headers: { "Content-Type": "application/json" } };
    let xhr;
    for (let attempt = 1; attempt <= RETRIES; attempt++) {
      xhr = await request(method, url, options);
      if (!transient(xhr)) return xhr;
      if (attempt < RETRIES) await sleep(backoff(xhr, attempt));
    }
    return xhr;
  }

  function showProgress(item, loaded, total) {
    item.progress.value = Math.floor((loaded / total) * 100);
    item.status.textContent = `Uploading… ${humanSize(loaded)} of ${humanSize(total)}`;
  }

  function failed(item, message) {
    item.nameInput.readOnly = false;
    item.progress.value = 0;
    setStatus(item, "error", message);
  }

  function published(item, artifact, note) {
    item.progress.value = 100;
    setStatus(item, "done", `Uploaded as ${artifact.remote_path}, version ${artifact.version}.`, artifact.url);
    if (note) item.status.prepend(note);
  }

  async function upload(item, sharedMetadata) {
    const path = remotePath(item);
    item.nameInput.readOnly = true;
    item.progress.removeAttribute("value");
    setStatus(item, "sending", "Checking…");
    // A name or size the server would refuse is reported before any byte is sent.
    const check = await callStowage("POST", checkUrl, { remote_path: path, size: item.file.size, metadata: sharedMetadata });
    const answer = check.status === 200 ? parseJson(check) : null;
    if (!answer) {
      failed(item, errorMessage(check, "The check failed: the server could not be reached."));
      return;
    }
    let note = "";
    if (answer.direct && window.crypto && window.crypto.subtle) {
      if ((await uploadDirect(item, path, sharedMetadata)) !== "unreachable") return;
      // The bucket refused the browser (no CORS rule for this site, say): go through Stowage.
      note = "The storage bucket could not be reached from this page, so the file went through Stowage. ";
    }
    await uploadStream(item, path, sharedMetadata, note);
  }

  async function uploadStream(item, path, sharedMetadata, note) {
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
    const artifact = xhr.status === 201 ? parseJson(xhr) : null;
    if (artifact) {
      published(item, artifact, note);
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

  // What the object store said, from its XML error body (readable when its CORS rule matched).
  function storeError(xhr) {
    const code = /<Code>([^<]+)<\/Code>/.exec(xhr.responseText || "");
    return code ? code[1] : xhr.status ? `HTTP ${xhr.status}` : "no answer";
  }

  class UploadProblem extends Error {}

  // Resolves to "done", "failed", "checking" (stored, its check still running) or "unreachable"
  // (nothing is left behind and the caller may send the file through Stowage instead).
  async function uploadDirect(item, path, sharedMetadata) {
    const file = item.file;
    const begin = await callStowage("POST", directUrl, { remote_path: path, size: file.size, content_type: file.type || "", metadata: sharedMetadata });
    const plan = begin.status === 201 ? parseJson(begin) : null;
    if (!plan) {
      failed(item, errorMessage(begin, "The upload could not begin: the server could not be reached."));
      return "failed";
    }
    const loaded = new Array(plan.part_count + 1).fill(0);
    let reached = false;
    item.progress.value = 0;
    setStatus(item, "sending", "Uploading…");

    function hashPart(number) {
      const start = (number - 1) * plan.part_size;
      const blob = file.slice(start, Math.min(start + plan.part_size, file.size));
      return sha256Base64(blob).then((sha256) => ({ number, blob, sha256 }));
    }

    // Presigned PUTs for a few hashed parts in one call, by part number.
    async function sign(parts) {
      const signed = await callStowage("POST", plan.urls.part, { parts: parts.map(({ number, sha256 }) => ({ number, sha256 })) });
      const answer = signed.status === 200 ? parseJson(signed) : null;
      if (!answer) throw new UploadProblem(errorMessage(signed, "The server could not sign a part of the file."));
      return new Map(answer.parts.map((part) => [part.number, part]));
    }

    async function putPart({ number, blob, sha256 }, signed) {
      let xhr;
      for (let attempt = 1; attempt <= PART_ATTEMPTS; attempt++) {
        // A fresh URL for every retry: one that expired meanwhile is not tried again.
        const part = attempt === 1 ? signed : (await sign([{ number, sha256 }])).get(number);
        xhr = await request(part.method, part.url, {
          body: blob,
          headers: part.headers,
          sameOrigin: false,
          onProgress: (done) => {
            loaded[number] = done;
            showProgress(item, loaded.reduce((a, b) => a + b, 0), file.size);
          },
        });
        loaded[number] = 0;
        if (xhr.status >= 200 && xhr.status < 300) {
          reached = true;
          loaded[number] = blob.size;
          return;
        }
        // The first part tells whether this page may reach the bucket at all; two tries suffice.
        if (xhr.status === 0 && !reached && attempt >= 2) throw new UploadProblem("unreachable");
        if (attempt < PART_ATTEMPTS) await sleep(backoff(xhr, attempt));
      }
      throw new UploadProblem(`Part ${number} of ${plan.part_count} could not be stored (the storage answered: ${storeError(xhr)}).`);
    }

    // A few parts at a time: hashed, signed in one call, then sent one after the other.
    async function sendBatch(numbers) {
      const parts = [];
      for (const number of numbers) parts.push(await hashPart(number));
      const signed = await sign(parts);
      for (const part of parts) await putPart(part, signed.get(part.number));
    }

    async function sendParts(numbers) {
      const queue = numbers.slice();
      let problem = null;
      async function worker() {
        while (!problem && queue.length) {
          try {
            await sendBatch(queue.splice(0, SIGN_BATCH));
          } catch (error) {
            problem = problem || error.message;
          }
        }
      }
      if (!reached) {
        // The first part alone, so that a bucket this page cannot reach is known before the rest.
        try {
          await sendBatch(queue.splice(0, 1));
        } catch (error) {
          problem = error.message;
        }
      }
      if (!problem) await Promise.all(Array.from({ length: Math.min(PARTS_IN_FLIGHT, queue.length) }, worker));
      if (problem) throw new UploadProblem(problem);
    }

    // A worker joins the parts and reads the object back once, recording its SHA-256; then it
    // is published. Polled until it ends, or for CHECK_WAIT_MS.
    async function settle() {
      item.progress.value = 100;
      setStatus(item, "sending", "Checking the stored file…");
      const started = Date.now();
      for (let attempt = 0; ; attempt++) {
        const status = await request("GET", plan.urls.status);
        const answer = status.status === 200 ? parseJson(status) : null;
        if (answer && answer.state === "succeeded") {
          published(item, answer.artifact, "");
          return "done";
        }
        if (answer && answer.state === "failed") {
          failed(item, `${sentence(answer.error.message)} Nothing was stored; try again.`);
          return "failed";
        }
        if (status.status === 401 || status.status === 404 || Date.now() - started > CHECK_WAIT_MS) {
          setStatus(item, "checking", "Stored, and still being checked: it will appear in the artifact list once the check ends.");
          return "checking";
        }
        await sleep(Math.min(250 * 2 ** attempt, 2000));
      }
    }

    // Stop here; unless the server says the upload was completed after all (a lost answer),
    // in which case it is checked as usual.
    async function giveUp(message) {
      const abort = await callStowage("POST", plan.urls.abort, {});
      const answer = abort.status === 200 ? parseJson(abort) : null;
      if (answer && (answer.state === "verifying" || answer.state === "succeeded")) return settle();
      if (transient(abort)) {
        failed(item, "The server could not be reached to confirm the upload. Look for it in the artifact list in a few minutes before trying again.");
        return "failed";
      }
      if (message === "unreachable") return "unreachable";
      failed(item, `${sentence(message)} Nothing was stored; try again.`);
      return "failed";
    }

    const all = Array.from({ length: plan.part_count }, (_, i) => i + 1);
    try {
      await sendParts(all);
    } catch (error) {
      return giveUp(error.message);
    }

    item.progress.removeAttribute("value");
    setStatus(item, "sending", "Checking the stored file…");
    let complete;
    for (let round = 1; ; round++) {
      complete = await callStowage("POST", plan.urls.complete, {});
      const answer = parseJson(complete);
      const missing = complete.status === 409 && answer && answer.error && answer.error.code === "UPLOAD_INCOMPLETE" ? answer.error.details.missing_parts : null;
      if (!missing || round > 2) break;
      // The store lost a part it had acknowledged: send those again, then complete once more.
      try {
        await sendParts(missing);
      } catch (error) {
        return giveUp(error.message);
      }
    }
    if (complete.status === 202) return settle();
    return giveUp(errorMessage(complete, "The upload could not be completed."));
  }

  function sentence(text) {
    return /[.!?]$/.test(text) ? text : `${text}.`;
  }

  async function uploadAll() {
    running = true;
    refreshButtons();
    try {
      const sharedMetadata = metadata();
      for (const item of items.slice()) {
        if (item.state !== "waiting" && !(item.state === "error" && item.file.size <= maxBytes)) continue;
        try {
          await upload(item, sharedMetadata);
        } catch (error) {
          failed(item, `The upload stopped: ${error.message}`);
        }
      }
    } finally {
      running = false;
      const done = items.filter((item) => item.state === "done").length;
      const checking = items.filter((item) => item.state === "checking").length;
      const failedCount = items.filter((item) => item.state === "error").length;
      const parts = [`${done} uploaded`];
      if (checking) parts.push(`${checking} still being checked`);
      summary.textContent = failedCount ? `${parts.join(", ")}, ${failedCount} not: see the messages above.` : `${parts.join(", ")}.`;
      refreshButtons();
    }
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
