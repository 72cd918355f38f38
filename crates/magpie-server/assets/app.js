// Progressive enhancement only: every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Forms that ask before doing something that cannot be undone.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });
  // Inline recategorizing: choosing a category from the list saves it.
  document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
    var input = form.querySelector("input[name=category]");
    if (!input) return;
    var initial = input.value;
    input.addEventListener("change", function () {
      if (input.value.trim() !== "" && input.value !== initial) {
        form.requestSubmit();
      }
    });
  });
  // "Select all" for bulk actions (the checkbox is hidden without this script).
  document.querySelectorAll("input[data-select-all]").forEach(function (all) {
    var name = all.getAttribute("data-select-all");
    all.hidden = false;
    all.addEventListener("change", function () {
      document.querySelectorAll("input[type=checkbox][name=" + name + "]").forEach(function (box) {
        box.checked = all.checked;
      });
    });
  });
  // A new token is selected when focused, ready to copy.
  document.querySelectorAll("input[data-select-on-focus]").forEach(function (input) {
    input.addEventListener("focus", function () { input.select(); });
  });
});
