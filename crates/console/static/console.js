// Gatehouse console enhancements. Every page works without this file; it only adds a Copy
// button for one-time secrets, a preview of a chosen logo, and hides the fieldsets of other
// authentication methods on the access-profile form. No storage of any kind is used.
(function () {
  "use strict";

  function setup(root) {
    root.querySelectorAll("button.copy[data-copy]").forEach(function (b) {
      if (navigator.clipboard) { b.hidden = false; }
    });
    root.querySelectorAll("form.profile-form").forEach(syncProfileForm);
  }

  function syncProfileForm(form) {
    var auth = form.querySelector("[data-auth-switch]");
    var method = form.querySelector("[data-method-switch]");
    if (!auth) { return; }
    form.querySelectorAll("fieldset[data-auth]").forEach(function (fs) {
      var show = fs.getAttribute("data-auth").split(" ").indexOf(auth.value) >= 0;
      fs.hidden = !show;
      fs.disabled = !show;
    });
    if (method) {
      form.querySelectorAll("fieldset[data-method]").forEach(function (fs) {
        var show = fs.getAttribute("data-method") === method.value;
        fs.hidden = !show;
        fs.disabled = !show;
      });
    }
  }

  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("button.copy[data-copy]");
    if (!b) { return; }
    var field = document.getElementById(b.getAttribute("data-copy"));
    if (!field || !navigator.clipboard) { return; }
    navigator.clipboard.writeText(field.value).then(function () {
      b.textContent = "Copied";
    }, function () {
      field.select();
      b.textContent = "Select and copy";
    });
  });

  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.matches && t.matches("[data-auth-switch], [data-method-switch]")) {
      var form = t.closest("form");
      if (form) { syncProfileForm(form); }
    }
    if (t.matches && t.matches("input[type=file][data-preview]")) {
      var img = document.getElementById(t.getAttribute("data-preview"));
      if (!img) { return; }
      if (img.src && img.src.indexOf("blob:") === 0) { URL.revokeObjectURL(img.src); }
      var file = t.files && t.files[0];
      if (file && /^image\/(png|jpeg)$/.test(file.type)) {
        img.src = URL.createObjectURL(file);
        img.hidden = false;
      } else {
        img.removeAttribute("src");
        img.hidden = true;
      }
    }
  });

  document.addEventListener("DOMContentLoaded", function () { setup(document); });
  document.addEventListener("htmx:load", function (e) { setup(e.target); });
})();
