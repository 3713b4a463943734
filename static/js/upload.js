// Upload page: checks type and size in the page before sending anything, accepts a dropped file,
// shows the upload's progress, then opens the job page (which follows the job live).
// Without JavaScript the form posts to the page itself and the server does the same checks.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = document.getElementById("id_file");
  const zone = document.getElementById("drop-zone");
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const selected = document.getElementById("selected-file");
  const button = document.getElementById("upload-button");
  const maxBytes = Number(form.dataset.maxBytes);
  const allowed = /\.(fa|fasta|fna|fastq|fq)(\.gz)?$/i;

  function megabytes(bytes) {
    if (bytes < 1024) return bytes + " bytes";
    if (bytes < 1048576) return (bytes / 1024).toFixed(1) + " KB";
    return (bytes / 1048576).toFixed(1) + " MB";
  }

  // The same words as the server's error matrix (DESIGN.md, "Errors").
  function problemWith(file) {
    if (!file) return "No file provided";
    if (!allowed.test(file.name)) return "Only FASTA/FASTQ allowed (.fa .fasta .fna .fastq .fq, optionally .gz)";
    if (file.size === 0) return "Only FASTA/FASTQ allowed: the file is empty";
    // A gzip file's decompressed size is only known to the server, which checks it.
    if (!/\.gz$/i.test(file.name) && file.size > maxBytes) return "File exceeds 50MB limit (" + megabytes(file.size) + ")";
    return null;
  }

  function say(text, isError) {
    status.textContent = text;
    status.className = isError ? "error" : "";
  }

  function showSelection() {
    const file = input.files[0];
    selected.textContent = file ? "Selected: " + file.name + " (" + megabytes(file.size) + ")" : "";
    const problem = file ? problemWith(file) : null;
    say(problem ? problem + ". Please choose another file." : "", Boolean(problem));
    input.setAttribute("aria-invalid", problem ? "true" : "false");
  }

  input.addEventListener("change", showSelection);
  ["dragover", "dragenter"].forEach((name) => zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, () => zone.classList.remove("dragging")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer.files.length) input.files = event.dataTransfer.files;
    showSelection();
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = input.files[0];
    const problem = problemWith(file);
    if (problem) {
      say(problem + ". Please choose another file.", true);
      input.focus();
      return;
    }
    const data = new FormData(form);
    const request = new XMLHttpRequest();
    request.open("POST", form.dataset.api);
    request.setRequestHeader("X-CSRFToken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    bar.hidden = false;
    bar.value = 0;
    button.disabled = true;
    say("Uploading " + file.name + "…", false);
    request.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
    });
    request.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch (e) { /* not JSON */ }
      if (request.status === 202 && body.job_id) {
        bar.value = 100;
        say("Uploaded. Opening the job…", false);
        window.location.assign(form.dataset.jobUrl.replace("00000000-0000-0000-0000-000000000000", body.job_id));
      } else {
        button.disabled = false;
        bar.hidden = true;
        say((body.message || "Upload failed (HTTP " + request.status + ")") + (body.detail ? ": " + body.detail : "") + ". Please try again.", true);
      }
    });
    request.addEventListener("error", () => {
      button.disabled = false;
      bar.hidden = true;
      say("The upload was interrupted. Please try again.", true);
    });
    request.send(data);
  });
})();
