// The loop page's Run dialog (runs/_run_dialog.html): open and close it, ask for required
// inputs only for a live run, and refuse a payload that is not a JSON object before submit.
(function () {
  "use strict";
  var dialog = document.querySelector("[data-run-dialog]");
  if (!dialog) return;
  var form = dialog.querySelector("[data-run-dialog-form]");
  var payload = form.querySelector("textarea[name=payload]");
  var payloadError = form.querySelector("[data-payload-error]");

  document.querySelectorAll("[data-run-dialog-open]").forEach(function (button) {
    button.addEventListener("click", function () { dialog.showModal(); });
  });
  dialog.querySelectorAll("[data-run-dialog-close]").forEach(function (button) {
    button.addEventListener("click", function () { dialog.close(); });
  });

  function live() {
    var checked = form.querySelector("input[name=dry_run]:checked");
    return checked !== null && checked.value === "0";
  }

  function syncRequired() {
    form.querySelectorAll("[data-required]").forEach(function (input) {
      input.required = live();
    });
  }
  form.querySelectorAll("input[name=dry_run]").forEach(function (radio) {
    radio.addEventListener("change", syncRequired);
  });
  syncRequired();

  function payloadProblem() {
    if (!payload || payload.value.trim() === "") return "";
    var value;
    try {
      value = JSON.parse(payload.value);
    } catch (error) {
      return "The payload is not valid JSON: " + error.message;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return "The payload must be a JSON object ({...}).";
    }
    return "";
  }

  if (payload) {
    payload.addEventListener("input", function () {
      payloadError.hidden = true;
      payload.setCustomValidity("");
    });
  }

  form.addEventListener("submit", function (event) {
    var problem = payloadProblem();
    if (problem) {
      event.preventDefault();
      payloadError.textContent = problem;
      payloadError.hidden = false;
      payload.setCustomValidity(problem);
      payload.focus();
      return;
    }
    if (!form.checkValidity()) {
      event.preventDefault();
      form.reportValidity();
    }
  });
})();
