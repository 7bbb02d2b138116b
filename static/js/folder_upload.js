// The upload page's folder upload: pick a folder (webkitdirectory) or drop one, and it is sent
// as one folder artifact. The server is told the plan first (every path and size, checked before
// anything is stored), then each file goes as the raw body of a PUT, streamed to storage, and a
// commit makes them one artifact. One progress bar follows the whole folder.
(function () {
  "use strict";

  const root = document.getElementById("folder-uploader");
  if (!root) return;
  const beginUrl = root.dataset.beginUrl;
  const dropzone = document.getElementById("folder-dropzone");
  const picker = document.getElementById("folder-picker");
  const nameInput = document.getElementById("folder-name");
  const startButton = document.getElementById("folder-start");
  const progress = document.getElementById("folder-progress");
  const status = document.getElementById("folder-status");
  const RETRIES = 4;

  let chosen = null; // {files: [{file, path}], dirs: [path]}
  let running = false;
  root.hidden = false;

  function csrfToken() {
    try {
      const headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
      if (headers["X-CSRFToken"]) return headers["X-CSRFToken"];
    } catch (e) { /* the cookie then */ }
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
    return (unit === 0 ? String(value) : value.toFixed(1)) + "\u00a0" + units[unit];
  }

  function request(method, url, body, headers, onProgress) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      xhr.setRequestHeader("X-CSRFToken", csrfToken());
      xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      for (const [name, value] of Object.entries(headers || {})) xhr.setRequestHeader(name, value);
      if (onProgress) {
        xhr.upload.addEventListener("progress", (event) => {
          if (event.lengthComputable) onProgress(event.loaded);
        });
      }
      xhr.addEventListener("load", () => resolve(xhr));
      xhr.addEventListener("error", () => resolve(xhr));
      xhr.addEventListener("abort", () => resolve(xhr));
      xhr.send(body);
    });
  }

  async function call(method, url, body, headers, onProgress) {
    let xhr;
    for (let attempt = 1; attempt <= RETRIES; attempt++) {
      xhr = await request(method, url, body, headers, onProgress);
      if (![0, 502, 503, 504].includes(xhr.status)) return xhr;
      await new Promise((resolve) => setTimeout(resolve, 1000 * 2 ** (attempt - 1)));
    }
    return xhr;
  }

  function json(payload) {
    return [JSON.stringify(payload), { "Content-Type": "application/json" }];
  }

  function message(xhr, fallbackText) {
    try {
      const body = JSON.parse(xhr.responseText);
      if (body && body.error && body.error.message) return body.error.message;
    } catch (e) { /* no JSON */ }
    return fallbackText;
  }

  function say(text, state) {
    status.textContent = text;
    root.dataset.state = state || "";
  }

  function choose(files, dirs, name) {
    chosen = { files, dirs };
    if (!nameInput.value) nameInput.value = name;
    const total = files.reduce((sum, item) => sum + item.file.size, 0);
    say(`${files.length} file${files.length === 1 ? "" : "s"} (${humanSize(total)}) in ${name}.`, "chosen");
    startButton.disabled = files.length === 0;
    progress.value = 0;
  }

  picker.addEventListener("change", () => {
    const files = [];
    let top = "";
    for (const file of picker.files) {
      const parts = (file.webkitRelativePath || file.name).split("/");
      top = parts.length > 1 ? parts[0] : top;
      files.push({ file, path: parts.length > 1 ? parts.slice(1).join("/") : parts[0] });
    }
    choose(files, [], top || "folder");
  });

  function readAll(reader) {
    return new Promise((resolve, reject) => {
      const found = [];
      const next = () => reader.readEntries((batch) => {
        if (!batch.length) return resolve(found);
        found.push(...batch);
        next();
      }, reject);
      next();
    });
  }

  async function walk(directory, prefix, files, dirs) {
    const children = await readAll(directory.createReader());
    if (!children.length && prefix) dirs.push(prefix.slice(0, -1));
    for (const child of children) {
      if (child.isDirectory) {
        await walk(child, prefix + child.name + "/", files, dirs);
      } else if (child.isFile) {
        const file = await new Promise((resolve, reject) => child.file(resolve, reject));
        files.push({ file, path: prefix + child.name });
      }
    }
  }

  for (const name of ["dragenter", "dragover"]) {
    dropzone.addEventListener(name, (event) => {
      event.preventDefault();
      dropzone.classList.add("dragover");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    dropzone.addEventListener(name, () => dropzone.classList.remove("dragover"));
  }
  dropzone.addEventListener("drop", async (event) => {
    event.preventDefault();
    const item = event.dataTransfer.items && event.dataTransfer.items[0];
    const entry = item && item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
    if (!entry || !entry.isDirectory) {
      say("Drop a folder here; single files go in the list above.", "failed");
      return;
    }
    const files = [];
    const dirs = [];
    await walk(entry, "", files, dirs);
    choose(files, dirs, entry.name);
  });

  async function upload() {
    if (!chosen || running) return;
    running = true;
    startButton.disabled = true;
    const { files, dirs } = chosen;
    const total = files.reduce((sum, item) => sum + item.file.size, 0) || 1;
    say("Checking the folder…", "uploading");
    const begun = await call("POST", beginUrl, ...json({
      remote_path: nameInput.value.trim(),
      files: files.map((item) => ({ path: item.path, size: item.file.size })),
    }));
    if (begun.status !== 201) {
      say(message(begun, "The folder could not be started."), "failed");
      running = false;
      startButton.disabled = false;
      return;
    }
    const plan = JSON.parse(begun.responseText);
    let done = 0;
    for (const [index, item] of files.entries()) {
      say(`Sending ${index + 1} of ${files.length}: ${item.path}`, "uploading");
      const url = plan.file_url + "?path=" + encodeURIComponent(item.path);
      const sent = await call("PUT", url, item.file, { "Content-Type": "application/octet-stream" }, (loaded) => {
        progress.value = Math.floor(((done + loaded) / total) * 100);
      });
      if (sent.status !== 201) {
        say(`${item.path}: ${message(sent, "the file could not be sent.")} Nothing was stored.`, "failed");
        await request("POST", plan.abort_url, ...json({}));
        running = false;
        startButton.disabled = false;
        return;
      }
      done += item.file.size;
      progress.value = Math.floor((done / total) * 100);
    }
    say("Sealing the folder…", "uploading");
    const committed = await call("POST", plan.commit_url, ...json({
      entries: dirs.map((path) => ({ path, type: "directory" })),
    }));
    running = false;
    if (committed.status !== 201) {
      say(message(committed, "The folder could not be stored."), "failed");
      await request("POST", plan.abort_url, ...json({}));
      startButton.disabled = false;
      return;
    }
    const artifact = JSON.parse(committed.responseText);
    progress.value = 100;
    status.textContent = `Stored ${artifact.remote_path} (v${artifact.version}, ${artifact.entry_count} entries, ${humanSize(artifact.size)}). `;
    const link = document.createElement("a");
    link.href = artifact.url;
    link.textContent = "Open the folder";
    status.appendChild(link);
    root.dataset.state = "succeeded";
    chosen = null;
  }

  startButton.addEventListener("click", upload);
})();
