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

// Passkeys: the browser's WebAuthn API, between the server's options and a form that posts the answer.
(function () {
  "use strict";
  function toBuf(b64) {
    var s = atob(b64.replace(/-/g, "+").replace(/_/g, "/"));
    var out = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out.buffer;
  }
  function toB64(buf) {
    var bytes = new Uint8Array(buf), s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function creation(o) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) return PublicKeyCredential.parseCreationOptionsFromJSON(o);
    o.challenge = toBuf(o.challenge);
    o.user.id = toBuf(o.user.id);
    (o.excludeCredentials || []).forEach(function (c) { c.id = toBuf(c.id); });
    return o;
  }
  function request(o) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) return PublicKeyCredential.parseRequestOptionsFromJSON(o);
    o.challenge = toBuf(o.challenge);
    (o.allowCredentials || []).forEach(function (c) { c.id = toBuf(c.id); });
    return o;
  }
  function answer(cred) {
    if (cred.toJSON) return cred.toJSON();
    var r = cred.response, out = { id: cred.id, rawId: toB64(cred.rawId), type: cred.type, response: {
      clientDataJSON: toB64(r.clientDataJSON) } };
    if (r.attestationObject) {
      out.response.attestationObject = toB64(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = toB64(r.authenticatorData);
      out.response.signature = toB64(r.signature);
      if (r.userHandle) out.response.userHandle = toB64(r.userHandle);
    }
    return out;
  }
  function wire(form, optionsUrl, ceremony) {
    if (!window.PublicKeyCredential || !window.fetch) { form.hidden = true; return; }
    form.addEventListener("submit", function (event) {
      if (form.elements.credential.value) return;
      event.preventDefault();
      var error = form.querySelector("[data-passkey-error]");
      fetch(optionsUrl, { method: "POST", credentials: "same-origin",
        body: new URLSearchParams(new FormData(form)) })
        .then(function (res) { if (!res.ok) throw new Error("The server refused (" + res.status + ")."); return res.json(); })
        .then(function (body) { return ceremony(body.options); })
        .then(function (cred) {
          form.elements.credential.value = JSON.stringify(answer(cred));
          form.submit();
        })
        .catch(function (e) {
          if (error) { error.textContent = "No passkey was used: " + e.message; error.hidden = false; }
        });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-passkey-add]").forEach(function (form) {
      wire(form, "/settings/passkeys/options", function (o) { return navigator.credentials.create({ publicKey: creation(o) }); });
    });
    document.querySelectorAll("form[data-passkey-signin]").forEach(function (form) {
      wire(form, "/signin/passkey/options", function (o) { return navigator.credentials.get({ publicKey: request(o) }); });
    });
  });
})();
