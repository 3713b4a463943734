// Small page helpers that need no library. Loaded as a file (no inline script), CSP-friendly.
(function () {
  "use strict";
  // "Copy" buttons: data-copy holds a selector of the field whose value is copied.
  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const field = document.querySelector(button.dataset.copy);
      const status = button.parentElement.querySelector(".copy-status");
      if (!field) return;
      try {
        await navigator.clipboard.writeText(field.value);
        if (status) status.textContent = "Copied.";
      } catch (error) {
        field.select(); // no clipboard permission: leave it selected for Ctrl+C
        if (status) status.textContent = "Press Ctrl+C to copy the selected token.";
      }
    });
  });
})();

// Print buttons (the certificate page): shown only when scripts run, no inline handler.
document.querySelectorAll("[data-print]").forEach((button) => {
  button.hidden = false;
  button.addEventListener("click", () => window.print());
});
