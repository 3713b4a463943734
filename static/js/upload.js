// Upload page: checks size and type before sending, shows upload progress, then opens the job.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = document.getElementById("id_file");
  const zone = document.getElementById("drop-zone");
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const maxBytes = Number(form.dataset.maxBytes);
  const allowed = /\.(fa|fasta|fna|fastq|fq)(\.gz)?$/i;

  function check(file) {
    if (!file) return "No file provided";
    if (!allowed.test(file.name)) return "Only FASTA/FASTQ allowed (.fa .fasta .fna .fastq .fq, optionally .gz)";
    if (!/\.gz$/i.test(file.name) && file.size > maxBytes) return "File exceeds 50MB limit";
    return null;
  }

  ["dragover", "dragenter"].forEach((name) => zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, () => zone.classList.remove("dragging")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer.files.length) input.files = event.dataTransfer.files;
    status.textContent = input.files.length ? "Selected " + input.files[0].name : "";
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = input.files[0];
    const problem = check(file);
    if (problem) { status.textContent = problem; status.className = "error"; return; }
    const data = new FormData(form);
    const request = new XMLHttpRequest();
    request.open("POST", form.dataset.api);
    request.setRequestHeader("X-CSRFToken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    bar.hidden = false;
    status.className = "";
    status.textContent = "Uploading…";
    request.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
    });
    request.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch (e) { /* not JSON */ }
      if (request.status === 202 && body.job_id) {
        window.location.href = "/jobs/" + body.job_id + "/";
      } else {
        status.className = "error";
        status.textContent = (body.message || "Upload failed") + (body.detail ? ": " + body.detail : "") + ". Please try again.";
      }
    });
    request.addEventListener("error", () => { status.className = "error"; status.textContent = "The upload was interrupted. Please try again."; });
    request.send(data);
  });
})();
