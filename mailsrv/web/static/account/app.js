"use strict";
(() => {
  // web/ts/lib/api.ts
  var ApiError = class extends Error {
    constructor(code, message, field) {
      super(message);
      this.code = code;
      this.field = field;
    }
    code;
    field;
  };
  var AUTH_CODES = /* @__PURE__ */ new Set(["user:noAuth", "user:badAuth"]);
  var Client = class {
    // base: the API's URL ("api/" relative to the page); storageKey: where the CSRF token is kept.
    constructor(base, storageKey, prompt) {
      this.base = base;
      this.storageKey = storageKey;
      this.prompt = prompt;
    }
    base;
    storageKey;
    prompt;
    pendingLogin = null;
    get csrf() {
      return localStorage.getItem(this.storageKey) ?? "";
    }
    async call(method, ...params) {
      for (; ; ) {
        try {
          return await this.raw(method, params);
        } catch (e) {
          if (!(e instanceof ApiError) || !AUTH_CODES.has(e.code) || method === "Login") {
            throw e;
          }
          await this.loginOnce(e.message);
        }
      }
    }
    async logout() {
      try {
        await this.raw("Logout", []);
      } finally {
        localStorage.removeItem(this.storageKey);
      }
    }
    loginOnce(reason) {
      if (this.pendingLogin === null) {
        this.pendingLogin = this.prompt(async (username, password) => {
          const token = await this.raw("LoginPrep", []);
          const csrf = await this.raw("Login", [token, username, password]);
          localStorage.setItem(this.storageKey, csrf);
        }, reason).finally(() => {
          this.pendingLogin = null;
        });
      }
      return this.pendingLogin;
    }
    async raw(method, params) {
      const response = await fetch(this.base + method, {
        method: "POST",
        headers: { "content-type": "application/json", "x-mailsrv-csrf": this.csrf },
        body: JSON.stringify({ params }),
        credentials: "same-origin"
      });
      let answer;
      try {
        answer = await response.json();
      } catch {
        throw new ApiError("server:error", `HTTP ${response.status} ${response.statusText}`);
      }
      if (answer.error) {
        throw new ApiError(answer.error.code, answer.error.message, answer.error.field);
      }
      return answer.result;
    }
  };

  // web/ts/lib/dom.ts
  function h(tag, attributes = {}, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === void 0 || value === false) {
        continue;
      }
      if (typeof value === "function") {
        element.addEventListener(name.replace(/^on/, ""), value);
      } else if (value === true) {
        element.setAttribute(name, "");
      } else {
        element.setAttribute(name, value);
      }
    }
    append(element, ...children);
    return element;
  }
  function append(parent, ...children) {
    for (const child of children) {
      if (child === null || child === void 0 || child === false) {
        continue;
      }
      parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    }
  }
  function replace(parent, ...children) {
    parent.replaceChildren();
    append(parent, ...children);
  }

  // web/ts/lib/login.ts
  var loginForm = (login, reason) => new Promise((resolve) => {
    const username = h("input", { name: "username", autocomplete: "username", required: true });
    const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
    const status = h("p", { class: "login-status", role: "status" }, reason === "not logged in" ? "" : reason);
    const submit = h("button", { type: "submit" }, "Log in");
    const form = h(
      "form",
      { class: "login" },
      h("h1", {}, "Log in"),
      h("label", {}, "Email address or account", username),
      h("label", {}, "Password", password),
      submit,
      status
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      submit.disabled = true;
      replace(status, "Logging in…");
      try {
        await login(username.value, password.value);
        overlay.remove();
        resolve();
      } catch (e) {
        replace(status, e instanceof ApiError ? e.message : String(e));
        password.value = "";
        password.focus();
      } finally {
        submit.disabled = false;
      }
    });
    const overlay = h("div", { class: "login-overlay" }, form);
    document.body.appendChild(overlay);
    username.focus();
  });

  // web/ts/account/client.ts
  var client = new Client("api/", "mailsrv-account-csrf", loginForm);

  // web/ts/account/format.ts
  function formatSize(n) {
    if (n < 1024) return `${n} B`;
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let v = n / 1024;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
  }
  function formatDuration(seconds) {
    if (!seconds) return "0";
    const units = [
      ["d", 86400],
      ["h", 3600],
      ["m", 60],
      ["s", 1]
    ];
    let out = "";
    for (const [unit, size] of units) {
      if (seconds >= size) {
        out += `${Math.floor(seconds / size)}${unit}`;
        seconds %= size;
      }
    }
    return out;
  }
  function parseDuration(text) {
    const t = text.trim().toLowerCase();
    if (/^\d+$/.test(t)) return parseInt(t, 10);
    if (!/^(\d+[wdhms])+$/.test(t)) return null;
    const sizes = { w: 604800, d: 86400, h: 3600, m: 60, s: 1 };
    let total = 0;
    for (const m of t.matchAll(/(\d+)([wdhms])/g)) total += parseInt(m[1] ?? "0", 10) * (sizes[m[2] ?? "s"] ?? 1);
    return total;
  }
  function download(data, filename, type) {
    const url = URL.createObjectURL(new Blob([data], { type }));
    const a = document.createElement("a");
    a.href = url;
    a.download = filename;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1e4);
  }
  function base64Bytes(text) {
    const raw = atob(text);
    const out = new Uint8Array(new ArrayBuffer(raw.length));
    for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  // web/ts/account/section.ts
  function section(id, title, ...intro) {
    const statusEl = h("p", { class: "status", role: "status" });
    const body = h("div", { class: "body" });
    const el = h("section", { id }, h("h2", {}, title), ...intro, body, statusEl);
    const status = (text, error = false) => {
      statusEl.textContent = text;
      statusEl.className = error ? "status error" : "status";
    };
    const run = async (what, done = "Saved.") => {
      status("…");
      try {
        await what();
        status(done);
      } catch (e) {
        status(e instanceof Error ? e.message : String(e), true);
      }
    };
    return { el, body, status, run };
  }

  // web/ts/account/transfer.ts
  function upload(file, mailbox, onUpload, onLine) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      let seen = 0;
      const take = () => {
        const text = xhr.responseText;
        let end = text.indexOf("\n", seen);
        while (end >= 0) {
          const raw = text.slice(seen, end);
          seen = end + 1;
          if (raw.trim()) onLine(JSON.parse(raw));
          end = text.indexOf("\n", seen);
        }
      };
      xhr.open("POST", `import?mailbox=${encodeURIComponent(mailbox)}`);
      xhr.setRequestHeader("x-mailsrv-csrf", client.csrf);
      xhr.setRequestHeader("content-type", "application/octet-stream");
      xhr.upload.onprogress = (e) => onUpload(e.loaded, e.total);
      xhr.onprogress = take;
      xhr.onload = () => {
        take();
        resolve(xhr.status);
      };
      xhr.onerror = () => reject(new Error("the upload failed (connection lost)"));
      xhr.send(file);
    });
  }
  function importSection() {
    const s = section(
      "import",
      "Import mail",
      h("p", { class: "hint" }, "An mbox file, or a zip or tgz of mbox files and Maildir folders (as the export makes). Folders become mailboxes; flags are kept.")
    );
    const file = h("input", { type: "file", name: "file", required: true });
    const mailbox = h("input", { type: "text", name: "mailbox", value: "INBOX", size: "20" });
    const bar = h("progress", { id: "import-progress", max: "1", value: "0" });
    const text = h("span", { id: "import-text" });
    const outcome = h("div", { id: "import-result" });
    const button = h("button", { type: "submit" }, "Import");
    const form = h(
      "form",
      { id: "import-form" },
      h("label", {}, "File ", file),
      h("label", {}, "Mailbox for a plain mbox file ", mailbox),
      button,
      h("div", { class: "progress" }, bar, " ", text),
      outcome
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const f = file.files?.[0];
      if (!f) return;
      button.disabled = true;
      replace(outcome);
      s.status("");
      const attempt = async () => {
        let failure;
        const status = await upload(
          f,
          mailbox.value,
          (sent, total) => {
            bar.max = total || 1;
            bar.value = sent;
            text.textContent = `uploading ${formatSize(sent)} of ${formatSize(total)}`;
          },
          (line) => {
            if (line.progress) {
              const p = line.progress;
              bar.max = p.total || 1;
              bar.value = p.read;
              text.textContent = `importing: ${p.messages} messages${p.mailbox ? ` (${p.mailbox})` : ""}, ${formatSize(p.read)} of ${formatSize(p.total)} read`;
            } else if (line.result) {
              const r = line.result;
              bar.value = bar.max;
              text.textContent = `done: ${r.messages} messages imported, ${r.skipped} skipped`;
              replace(
                outcome,
                r.mailboxes.length ? h("p", {}, `Into: ${r.mailboxes.join(", ")}`) : null,
                r.problems.length ? h("ul", { class: "problems" }, ...r.problems.map((p) => h("li", {}, p))) : null
              );
            } else if (line.error) {
              failure = line.error;
            }
          }
        );
        if (failure && (failure.code === "user:noAuth" || failure.code === "user:badAuth")) {
          await client.call("Account");
          return attempt();
        }
        if (failure) throw new Error(failure.message);
        if (status === 413) throw new Error("The file is larger than the server accepts for an import.");
        if (status !== 200) throw new Error(`The server answered HTTP ${status}.`);
      };
      void s.run(attempt, "Import finished.").finally(() => button.disabled = false);
    });
    replace(s.body, form);
    return s.el;
  }
  function exportSection() {
    const s = section("export", "Export mail", h("p", { class: "hint" }, "All mailboxes or one, as a zip or tgz of mbox files or Maildir folders."));
    const select = h("select", { name: "mailbox" }, h("option", { value: "" }, "All mailboxes"));
    const csrf = h("input", { type: "hidden", name: "csrf", value: "" });
    const form = h(
      "form",
      { id: "export-form", method: "post", action: "export" },
      csrf,
      h("label", {}, "Mailbox ", select),
      h("label", {}, "Format ", h("select", { name: "format" }, h("option", { value: "mbox" }, "mbox"), h("option", { value: "maildir" }, "Maildir"))),
      h("label", {}, "Archive ", h("select", { name: "archive" }, h("option", { value: "zip" }, "zip"), h("option", { value: "tgz" }, "tgz"))),
      h("button", { type: "submit" }, "Export")
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      void s.run(async () => {
        await client.call("Mailboxes");
        csrf.value = client.csrf;
        form.submit();
      }, "The download starts in a moment.");
    });
    void client.call("Mailboxes").then((boxes) => {
      for (const b of boxes) select.appendChild(h("option", { value: b.name }, `${b.name} (${b.messages} messages, ${formatSize(b.size)})`));
    }).catch((e) => s.status(e instanceof Error ? e.message : String(e), true));
    replace(s.body, form);
    return s.el;
  }

  // web/ts/account/keys.ts
  function keysSection(overview) {
    const s = section(
      "keys",
      "TLS client certificates",
      h(
        "p",
        { class: "hint" },
        "A mail client that presents one of these certificates logs in without a password (IMAP and submission)."
      )
    );
    const list = h("div", { id: "keys-list" });
    const addressSelect = (name) => h(
      "select",
      { name },
      h("option", { value: "" }, "primary address"),
      ...overview.addresses.map((a) => h("option", { value: a }, a))
    );
    const load = async () => {
      const keys = await client.call("TLSPublicKeys");
      if (keys.length === 0) {
        replace(list, h("p", {}, "No keys registered."));
        return;
      }
      replace(
        list,
        h(
          "table",
          {},
          h(
            "thead",
            {},
            h("tr", {}, ...["Name", "Type", "Fingerprint (SHA-256 of the public key)", "Login address", "IMAP", ""].map((t) => h("th", {}, t)))
          ),
          h(
            "tbody",
            {},
            ...keys.map((k) => {
              const remove = h("button", { type: "button", class: "remove" }, "Remove");
              remove.addEventListener("click", () => {
                if (!confirm(`Remove key ${k.name}? Its certificate no longer logs in.`)) return;
                void s.run(async () => {
                  await client.call("TLSPublicKeyRemove", k.fingerprint);
                  await load();
                }, "Key removed.");
              });
              return h(
                "tr",
                { "data-fingerprint": k.fingerprint },
                h("td", {}, k.name),
                h("td", {}, k.key_type),
                h("td", {}, h("code", {}, k.fingerprint)),
                h("td", {}, k.login_address || overview.addresses[0] || ""),
                h("td", {}, k.no_imap_preauth ? "log in with EXTERNAL" : "pre-authenticated"),
                h("td", {}, remove)
              );
            })
          )
        )
      );
    };
    const pem = h("textarea", { name: "cert_pem", rows: "4", cols: "64", placeholder: "-----BEGIN CERTIFICATE-----" });
    const file = h("input", { type: "file", accept: ".pem,.crt,.cer" });
    file.addEventListener("change", () => {
      const f = file.files?.[0];
      if (f) void f.text().then((t) => pem.value = t);
    });
    const addName = h("input", { type: "text", name: "name", value: "device", maxlength: "64" });
    const addLogin = addressSelect("login_address");
    const addNoPreauth = h("input", { type: "checkbox", name: "no_imap_preauth" });
    const addForm = h(
      "form",
      { id: "key-add" },
      h("h3", {}, "Add a certificate"),
      h("label", {}, "Certificate (PEM) ", pem),
      h("label", {}, "or a file ", file),
      h("label", {}, "Name ", addName),
      h("label", {}, "Log in as ", addLogin),
      h("label", { class: "check" }, addNoPreauth, " IMAP: greet normally, the client logs in with AUTHENTICATE EXTERNAL"),
      h("button", { type: "submit" }, "Add")
    );
    addForm.addEventListener("submit", (e) => {
      e.preventDefault();
      void s.run(async () => {
        await client.call("TLSPublicKeyAdd", {
          cert_pem: pem.value,
          name: addName.value,
          login_address: addLogin.value,
          no_imap_preauth: addNoPreauth.checked
        });
        addForm.reset();
        await load();
      }, "Key added.");
    });
    const genName = h("input", { type: "text", name: "name", value: "device", maxlength: "64", pattern: "[A-Za-z0-9._\\-]+" });
    const genLogin = addressSelect("login_address");
    const genNoPreauth = h("input", { type: "checkbox", name: "no_imap_preauth" });
    const genPassword = h("input", { type: "password", name: "pkcs12_password", autocomplete: "new-password" });
    const commands = h("div", { id: "key-commands" });
    const genForm = h(
      "form",
      { id: "key-generate" },
      h("h3", {}, "Generate a new key"),
      h("p", { class: "hint" }, "An ed25519 key and certificate, downloaded once as PKCS#12 (.p12) for your mail client; the server keeps only the public key."),
      h("label", {}, "Name ", genName),
      h("label", {}, "Log in as ", genLogin),
      h("label", { class: "check" }, genNoPreauth, " IMAP: log in with AUTHENTICATE EXTERNAL"),
      h("label", {}, "Password for the .p12 file (optional) ", genPassword),
      h("button", { type: "submit" }, "Generate and download"),
      commands
    );
    genForm.addEventListener("submit", (e) => {
      e.preventDefault();
      void s.run(async () => {
        const made = await client.call("TLSPublicKeyGenerate", {
          name: genName.value,
          login_address: genLogin.value,
          no_imap_preauth: genNoPreauth.checked,
          pkcs12_password: genPassword.value
        });
        download(base64Bytes(made.pkcs12), `${made.key.name}.p12`, "application/x-pkcs12");
        replace(
          commands,
          h("p", {}, "The same by hand with openssl:"),
          h("pre", {}, made.openssl_commands.join("\n"))
        );
        genPassword.value = "";
        await load();
      }, "Key generated and registered; the .p12 file is downloaded.");
    });
    replace(s.body, list, addForm, genForm);
    void load().catch((e) => s.status(e instanceof Error ? e.message : String(e), true));
    return s.el;
  }

  // web/ts/account/rules.ts
  function describe(r) {
    const when2 = [];
    if (r.smtp_mail_from) when2.push(`MAIL FROM ~ ${r.smtp_mail_from}`);
    if (r.msg_from) when2.push(`From ~ ${r.msg_from}`);
    if (r.verified_domain) when2.push(`verified domain ${r.verified_domain}`);
    for (const [name, value] of r.headers ?? []) when2.push(`header ${name} ~ ${value}`);
    const then = [];
    if (r.mailbox) then.push(`into ${r.mailbox}`);
    if (r.is_list) then.push("mailing list");
    if (r.accept_regardless) then.push("skip junk filter");
    return `${when2.join(" and ")} → ${then.join(", ")}`;
  }
  function rulesSection() {
    const s = section(
      "rules",
      "Delivery rules",
      h("p", { class: "hint" }, "Incoming mail goes by the first ruleset that matches (regular expressions); otherwise into INBOX.")
    );
    const list = h("div", { id: "rules-list" });
    let editing = 0;
    const fields = {
      comment: h("input", { type: "text", name: "comment", size: "40" }),
      smtp_mail_from: h("input", { type: "text", name: "smtp_mail_from", size: "40" }),
      msg_from: h("input", { type: "text", name: "msg_from", size: "40" }),
      verified_domain: h("input", { type: "text", name: "verified_domain", size: "30" }),
      headers: h("textarea", { name: "headers", rows: "2", cols: "40", placeholder: "one per line: name-regexp: value-regexp" }),
      mailbox: h("input", { type: "text", name: "mailbox", size: "30" }),
      is_list: h("input", { type: "checkbox", name: "is_list" }),
      accept_regardless: h("input", { type: "checkbox", name: "accept_regardless" })
    };
    const title = h("h3", {}, "Add a ruleset");
    const submit = h("button", { type: "submit" }, "Add");
    const cancel = h("button", { type: "button" }, "Cancel");
    const form = h(
      "form",
      { id: "rule-form" },
      title,
      h("label", {}, "Comment ", fields.comment),
      h(
        "fieldset",
        {},
        h("legend", {}, "When (all given must match)"),
        h("label", {}, "SMTP MAIL FROM ", fields.smtp_mail_from),
        h("label", {}, "From: address ", fields.msg_from),
        h("label", {}, "SPF/DKIM-verified domain ", fields.verified_domain),
        h("label", {}, "Header fields ", fields.headers)
      ),
      h(
        "fieldset",
        {},
        h("legend", {}, "Then"),
        h("label", {}, "Deliver to mailbox ", fields.mailbox),
        h("label", { class: "check" }, fields.is_list, " Treat as a mailing list"),
        h("label", { class: "check" }, fields.accept_regardless, " Accept regardless of the junk filter")
      ),
      submit,
      cancel
    );
    const reset = () => {
      editing = 0;
      form.reset();
      title.textContent = "Add a ruleset";
      submit.textContent = "Add";
      cancel.hidden = true;
    };
    cancel.addEventListener("click", reset);
    const spec = () => {
      const headers = [];
      for (const line of fields.headers.value.split("\n")) {
        const t = line.trim();
        if (!t) continue;
        const i = t.indexOf(":");
        headers.push(i < 0 ? [t, ""] : [t.slice(0, i).trim(), t.slice(i + 1).trim()]);
      }
      return {
        comment: fields.comment.value,
        smtp_mail_from: fields.smtp_mail_from.value,
        msg_from: fields.msg_from.value,
        verified_domain: fields.verified_domain.value,
        headers,
        mailbox: fields.mailbox.value,
        is_list: fields.is_list.checked,
        accept_regardless: fields.accept_regardless.checked
      };
    };
    const edit = (index, r) => {
      editing = index;
      fields.comment.value = r.comment ?? "";
      fields.smtp_mail_from.value = r.smtp_mail_from ?? "";
      fields.msg_from.value = r.msg_from ?? "";
      fields.verified_domain.value = r.verified_domain ?? "";
      fields.headers.value = (r.headers ?? []).map(([n, v]) => `${n}: ${v}`).join("\n");
      fields.mailbox.value = r.mailbox ?? "";
      fields.is_list.checked = Boolean(r.is_list);
      fields.accept_regardless.checked = Boolean(r.accept_regardless);
      title.textContent = `Edit ruleset ${index}`;
      submit.textContent = "Save";
      cancel.hidden = false;
      fields.comment.focus();
    };
    const load = async () => {
      const rules = await client.call("Rulesets");
      if (rules.length === 0) {
        replace(list, h("p", {}, "No rulesets: all mail goes to INBOX (or Junk, by the junk filter)."));
        return;
      }
      const button = (label, action, done, disabled = false) => {
        const b = h("button", { type: "button", disabled }, label);
        b.addEventListener("click", () => {
          void s.run(async () => {
            await action();
            await load();
          }, done);
        });
        return b;
      };
      replace(
        list,
        h(
          "ol",
          {},
          ...rules.map((r, i) => {
            const index = i + 1;
            const editButton = h("button", { type: "button" }, "Edit");
            editButton.addEventListener("click", () => edit(index, r));
            return h(
              "li",
              { class: "rule" },
              h("span", { class: "comment" }, r.comment || "(no comment)"),
              " ",
              h("span", { class: "spec" }, describe(r)),
              " ",
              button("↑", () => client.call("RulesetMove", index, index - 1), "Moved.", index === 1),
              button("↓", () => client.call("RulesetMove", index, index + 1), "Moved.", index === rules.length),
              editButton,
              button("Remove", () => client.call("RulesetRemove", index), "Removed.")
            );
          })
        )
      );
    };
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      void s.run(async () => {
        if (editing) await client.call("RulesetSave", editing, spec());
        else await client.call("RulesetAdd", spec());
        reset();
        await load();
      });
    });
    reset();
    replace(s.body, list, form);
    void load().catch((e) => s.status(e instanceof Error ? e.message : String(e), true));
    return s.el;
  }

  // web/ts/account/junk.ts
  var lines = (text) => text.split("\n").map((l) => l.trim()).filter((l) => l);
  function junkSection() {
    const s = section(
      "junk",
      "Junk filter",
      h("p", { class: "hint" }, "A Bayesian filter trained by where you move messages: into Junk, or out of it.")
    );
    const load = async () => {
      const [j, stats] = await Promise.all([client.call("JunkSettings"), client.call("JunkStats")]);
      const f = {
        enabled: h("input", { type: "checkbox", name: "enabled", checked: j.enabled }),
        threshold: h("input", { type: "number", name: "threshold", min: "0.5", max: "0.9999", step: "0.0001", value: String(j.threshold) }),
        action: h(
          "select",
          { name: "action" },
          h("option", { value: "junk" }, "Deliver to the Junk mailbox"),
          h("option", { value: "reject" }, "Refuse at SMTP, keep a copy for a while")
        ),
        rejects_mailbox: h("input", { type: "text", name: "rejects_mailbox", value: j.rejects_mailbox }),
        rejects_keep_days: h("input", { type: "number", name: "rejects_keep_days", min: "0", max: "365", value: String(j.rejects_keep_days) }),
        junk_mailboxes: h("textarea", { name: "junk_mailboxes", rows: "2", cols: "30" }),
        notjunk_mailboxes: h("textarea", { name: "notjunk_mailboxes", rows: "3", cols: "30" }),
        ignored_words: h("textarea", { name: "ignored_words", rows: "3", cols: "30" }),
        train_untouched: h("input", { type: "checkbox", name: "train_untouched", checked: j.train_untouched }),
        top_words: h("input", { type: "number", name: "top_words", min: "5", max: "1000", value: String(j.top_words) }),
        rare_word_cutoff: h("input", { type: "number", name: "rare_word_cutoff", min: "1", max: "100", value: String(j.rare_word_cutoff) }),
        ngram_sizes: h("input", { type: "text", name: "ngram_sizes", value: (j.ngram_sizes ?? []).join(", "), size: "8" })
      };
      f.action.value = j.action ?? "junk";
      f.junk_mailboxes.value = (j.junk_mailboxes ?? []).join("\n");
      f.notjunk_mailboxes.value = (j.notjunk_mailboxes ?? []).join("\n");
      f.ignored_words.value = (j.ignored_words ?? []).join("\n");
      const form = h(
        "form",
        { id: "junk-form" },
        h("label", { class: "check" }, f.enabled, " Filter incoming mail"),
        h("label", {}, "Junk at a score of ", f.threshold),
        h("label", {}, "Junk mail: ", f.action),
        h("label", {}, "Refused mail kept in ", f.rejects_mailbox, " for days ", f.rejects_keep_days),
        h("label", {}, "Moving into these trains as junk (one per line, * at the end for a prefix) ", f.junk_mailboxes),
        h("label", {}, "Moving into these trains as not junk ", f.notjunk_mailboxes),
        h("label", {}, "Words to ignore (one per line) ", f.ignored_words),
        h("label", { class: "check" }, f.train_untouched, " Also train on messages never moved or flagged"),
        h(
          "details",
          {},
          h("summary", {}, "Advanced"),
          h("label", {}, "Words that decide ", f.top_words),
          h("label", {}, "Ignore words seen in fewer messages than ", f.rare_word_cutoff),
          h("label", {}, "Word n-gram sizes (1 to 3) ", f.ngram_sizes)
        ),
        h("button", { type: "submit" }, "Save")
      );
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        const settings = {
          enabled: f.enabled.checked,
          threshold: Number(f.threshold.value),
          action: f.action.value === "reject" ? "reject" : "junk",
          rejects_mailbox: f.rejects_mailbox.value,
          rejects_keep_days: Number(f.rejects_keep_days.value),
          junk_mailboxes: lines(f.junk_mailboxes.value),
          notjunk_mailboxes: lines(f.notjunk_mailboxes.value),
          ignored_words: lines(f.ignored_words.value),
          train_untouched: f.train_untouched.checked,
          top_words: Number(f.top_words.value),
          rare_word_cutoff: Number(f.rare_word_cutoff.value),
          ngram_sizes: f.ngram_sizes.value.split(/[ ,]+/).filter((x) => x).map(Number)
        };
        void s.run(() => client.call("JunkSettingsSave", settings));
      });
      const trained = h(
        "p",
        { id: "junk-stats" },
        `Trained on ${stats.ham_messages} messages as not junk and ${stats.spam_messages} as junk; ${stats.words} words known.`
      );
      replace(s.body, trained, form);
    };
    void load().catch((e) => s.status(e instanceof Error ? e.message : String(e), true));
    return s.el;
  }

  // web/ts/account/sending.ts
  function fromidSection(overview) {
    const s = section(
      "fromid",
      "Unique sender address per message (fromid)",
      h(
        "p",
        { class: "hint" },
        "Mail you send after logging in with one of these addresses gets a unique SMTP MAIL FROM per recipient, so a bounce or webhook event names the message it is about."
      )
    );
    const chosen = new Set(overview.fromid_login_addresses);
    const boxes = overview.addresses.map((a) => h("input", { type: "checkbox", name: "fromid", value: a, checked: chosen.has(a) }));
    const form = h(
      "form",
      { id: "fromid-form" },
      ...boxes.map((b) => h("label", { class: "check" }, b, ` ${b.value}`)),
      h("button", { type: "submit" }, "Save")
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      void s.run(async () => {
        const saved = new Set(await client.call("FromIDLoginAddressesSave", boxes.filter((b) => b.checked).map((b) => b.value)));
        for (const b of boxes) b.checked = saved.has(b.value);
      });
    });
    replace(s.body, form);
    return s.el;
  }
  function suppressionsSection() {
    const s = section(
      "suppressions",
      "Suppression list",
      h("p", { class: "hint" }, "Mail you send to these addresses fails at once without a delivery attempt. The server adds addresses that bounced permanently.")
    );
    const list = h("div", { id: "suppressions-list" });
    const load = async () => {
      const entries = await client.call("Suppressions");
      if (entries.length === 0) {
        replace(list, h("p", {}, "The list is empty."));
        return;
      }
      replace(
        list,
        h(
          "table",
          {},
          h("thead", {}, h("tr", {}, ...["Address", "Added", "Why", ""].map((t) => h("th", {}, t)))),
          h(
            "tbody",
            {},
            ...entries.map((e) => {
              const remove = h("button", { type: "button" }, "Remove");
              remove.addEventListener("click", () => {
                void s.run(async () => {
                  await client.call("SuppressionRemove", e.base_address);
                  await load();
                }, "Removed.");
              });
              return h(
                "tr",
                {},
                h("td", {}, e.original_address || e.base_address),
                h("td", {}, new Date(e.created * 1e3).toLocaleString()),
                h("td", {}, (e.manual ? "added by you" : "bounced") + (e.reason ? `: ${e.reason}` : "")),
                h("td", {}, remove)
              );
            })
          )
        )
      );
    };
    const address = h("input", { type: "email", name: "address", required: true, size: "30" });
    const reason = h("input", { type: "text", name: "reason", size: "30" });
    const form = h(
      "form",
      { id: "suppression-add", class: "inline" },
      h("label", {}, "Address ", address),
      h("label", {}, "Reason ", reason),
      h("button", { type: "submit" }, "Add")
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      void s.run(async () => {
        await client.call("SuppressionAdd", address.value, reason.value);
        form.reset();
        await load();
      }, "Added.");
    });
    replace(s.body, list, form);
    void load().catch((e) => s.status(e instanceof Error ? e.message : String(e), true));
    return s.el;
  }

  // web/ts/account/webhooks.ts
  function webhooksSection() {
    const s = section(
      "webhooks",
      "Webhooks",
      h("p", { class: "hint" }, "HTTP POSTs in mox's webhook format to your application, signed per Standard Webhooks once a secret is made.")
    );
    const load = async () => {
      const w = await client.call("Webhooks");
      const st = w.settings;
      const outgoingEvents = st.outgoing_events ?? [];
      const outUrl = h("input", { type: "url", name: "outgoing_url", value: st.outgoing_url, size: "50" });
      const outAuth = h("input", { type: "text", name: "outgoing_authorization", value: st.outgoing_authorization, size: "50" });
      const chosen = new Set(outgoingEvents);
      const events = w.events.map((e) => h("input", { type: "checkbox", name: "event", value: e, checked: chosen.has(e) }));
      const outForm = h(
        "form",
        { id: "webhook-outgoing" },
        h("h3", {}, "Outgoing mail"),
        h("label", {}, "URL (empty: off) ", outUrl),
        h("label", {}, "Authorization header ", outAuth),
        h("fieldset", {}, h("legend", {}, "Events (none checked: all)"), ...events.map((e) => h("label", { class: "check" }, e, ` ${e.value}`))),
        h("button", { type: "submit" }, "Save")
      );
      outForm.addEventListener("submit", (e) => {
        e.preventDefault();
        void s.run(
          () => client.call("OutgoingWebhookSave", outUrl.value, outAuth.value, events.filter((x) => x.checked).map((x) => x.value))
        );
      });
      const inUrl = h("input", { type: "url", name: "incoming_url", value: st.incoming_url, size: "50" });
      const inAuth = h("input", { type: "text", name: "incoming_authorization", value: st.incoming_authorization, size: "50" });
      const inForm = h(
        "form",
        { id: "webhook-incoming" },
        h("h3", {}, "Incoming mail"),
        h("label", {}, "URL (empty: off) ", inUrl),
        h("label", {}, "Authorization header ", inAuth),
        h("button", { type: "submit" }, "Save")
      );
      inForm.addEventListener("submit", (e) => {
        e.preventDefault();
        void s.run(() => client.call("IncomingWebhookSave", inUrl.value, inAuth.value));
      });
      const secretOut = h("div", { id: "webhook-secret" });
      const rotate = h("button", { type: "button", id: "webhook-rotate" }, st.has_secret ? "Replace the signing secret" : "Make a signing secret");
      rotate.addEventListener("click", () => {
        if (st.has_secret && !confirm("Replace the secret? Your application must then use the new one.")) return;
        void s.run(async () => {
          const made = await client.call("WebhookSecretRotate");
          replace(secretOut, h("p", {}, "Shown only now; verify the webhook-signature header with it:"), h("pre", {}, made.secret));
        }, "New secret made.");
      });
      const keep = h("input", { type: "text", name: "webhook_keep", value: formatDuration(st.retired_keep ?? 0), size: "8" });
      const keepForm = h("form", { id: "webhook-keep", class: "inline" }, h("label", {}, "Keep finished webhooks for ", keep), h("button", { type: "submit" }, "Save"));
      keepForm.addEventListener("submit", (e) => {
        e.preventDefault();
        const seconds = parseDuration(keep.value);
        if (seconds === null) {
          s.status("Write a duration such as 7d, 12h or 30m, or 0.", true);
          return;
        }
        void s.run(() => client.call("KeepRetiredWebhookPeriodSave", seconds));
      });
      replace(s.body, outForm, inForm, h("h3", {}, "Signing secret"), rotate, secretOut, keepForm);
    };
    void load().catch((e) => s.status(e instanceof Error ? e.message : String(e), true));
    return s.el;
  }

  // web/ts/account/tokens.ts
  function when(seconds, none) {
    return seconds ? new Date(seconds * 1e3).toLocaleString() : none;
  }
  function tokensSection(address) {
    const s = section(
      "apitokens",
      "Webapi tokens",
      h(
        "p",
        { class: "hint" },
        "An application that sends mail through the webapi can use a token as its HTTP Basic password, with one of your addresses as the user name. A token works only there (not for IMAP, SMTP or this page); removing it stops it at once. Changing your password keeps your tokens."
      )
    );
    const list = h("div", { id: "apitokens-list" });
    const shown = h("div", { id: "apitoken-new" });
    const load = async () => {
      const tokens = await client.call("ApiTokens");
      if (tokens.length === 0) {
        replace(list, h("p", {}, "No tokens."));
        return;
      }
      replace(
        list,
        h(
          "table",
          {},
          h("thead", {}, h("tr", {}, ...["Name", "Created", "Last used", "Expires", ""].map((t) => h("th", {}, t)))),
          h(
            "tbody",
            {},
            ...tokens.map((t) => {
              const remove = h("button", { type: "button" }, "Remove");
              remove.addEventListener("click", () => {
                if (!window.confirm(`Remove the token "${t.name}"? Applications using it stop working.`)) return;
                void s.run(async () => {
                  await client.call("ApiTokenRemove", t.name);
                  replace(shown);
                  await load();
                }, "Removed.");
              });
              return h(
                "tr",
                {},
                h("td", { class: "token-name" }, t.name),
                h("td", {}, when(t.created, "-")),
                h("td", {}, when(t.last_used, "never")),
                h("td", {}, t.expired ? `expired ${when(t.expires, "")}` : when(t.expires, "never")),
                h("td", {}, remove)
              );
            })
          )
        )
      );
    };
    const name = h("input", { type: "text", name: "name", required: true, maxlength: "64", size: "24" });
    const days = h("input", { type: "number", name: "days", min: "0", max: "3650", value: "0", size: "5" });
    const form = h(
      "form",
      { id: "apitoken-add", class: "inline" },
      h("label", {}, "Name ", name),
      h("label", {}, "Expires after days (0: never) ", days),
      h("button", { type: "submit" }, "Create token")
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      void s.run(async () => {
        const made = await client.call("ApiTokenAdd", name.value, parseInt(days.value || "0", 10));
        replace(
          shown,
          h("p", {}, `Token "${made.info.name}", shown only now; copy it:`),
          h("pre", { id: "apitoken-secret" }, made.token),
          h("p", { class: "hint" }, `Use it as: curl --user '${address}:${made.token}' …/webapi/v0/Send`)
        );
        form.reset();
        await load();
      }, "Token created.");
    });
    replace(s.body, list, form, shown);
    void load().catch((e) => s.status(e instanceof Error ? e.message : String(e), true));
    return s.el;
  }

  // web/ts/account/main.ts
  function overviewSection(overview) {
    const s = section("overview", "Account");
    const fullName = h("input", { type: "text", name: "full_name", value: overview.full_name, maxlength: "200" });
    const form = h(
      "form",
      { id: "fullname-form", class: "inline" },
      h("label", {}, "Full name ", fullName),
      h("button", { type: "submit" }, "Save")
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      void s.run(async () => {
        fullName.value = await client.call("AccountSaveFullName", fullName.value);
      });
    });
    const quota = overview.quota;
    const usage = h(
      "div",
      { class: "quota" },
      h("span", { id: "quota-text" }, `${formatSize(overview.usage)} used`, quota ? ` of ${formatSize(quota)}` : ", no limit"),
      quota ? h("progress", { id: "quota-bar", max: String(quota), value: String(Math.min(overview.usage, quota)) }) : null
    );
    replace(
      s.body,
      h("p", {}, "Account ", h("strong", { id: "account-name" }, overview.account), ` in domain ${overview.domain}`),
      form,
      h("h3", {}, "Addresses"),
      h("p", { class: "hint" }, "Mail to each of these reaches this account; the first is the primary address."),
      h("ul", { id: "addresses" }, ...overview.addresses.map((a) => h("li", {}, a))),
      h("h3", {}, "Aliases and lists you are a member of"),
      overview.aliases.length === 0 ? h("p", { id: "aliases" }, "None.") : h(
        "ul",
        { id: "aliases" },
        ...overview.aliases.map(
          (a) => h(
            "li",
            {},
            h("strong", {}, a.address),
            a.allow_msg_from ? " (you may send as this address)" : "",
            a.list_members ? h("span", { class: "members" }, ` members: ${a.members.join(", ")}`) : ""
          )
        )
      ),
      h("h3", {}, "Storage"),
      usage
    );
    return s.el;
  }
  function passwordSection(address) {
    const s = section("password", "Password", h("p", { class: "hint" }, "Changing it logs out your other sessions."));
    const current = h("input", { type: "password", name: "current", autocomplete: "current-password", required: true });
    const fresh = h("input", { type: "password", name: "new", autocomplete: "new-password", required: true, minlength: "8" });
    const repeat = h("input", { type: "password", name: "repeat", autocomplete: "new-password", required: true });
    const form = h(
      "form",
      { id: "password-form" },
      // For password managers: which account the new password belongs to.
      h("input", { type: "text", name: "username", autocomplete: "username", value: address, hidden: true }),
      h("label", {}, "Current password ", current),
      h("label", {}, "New password ", fresh),
      h("label", {}, "New password again ", repeat),
      h("button", { type: "submit" }, "Change password")
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (fresh.value !== repeat.value) {
        s.status("The two new passwords differ.", true);
        return;
      }
      void s.run(async () => {
        await client.call("SetPassword", current.value, fresh.value);
        form.reset();
      }, "Password changed; your other sessions are logged out.");
    });
    replace(s.body, form);
    return s.el;
  }
  function clientSection(settings) {
    const s = section(
      "clients",
      "Mail client setup",
      h("p", { class: "hint" }, "Thunderbird and Outlook find these settings by themselves from your address.")
    );
    const security = (v) => v === "implicit" ? "TLS" : "STARTTLS";
    const rows = [...settings.imap, ...settings.submission].map(
      (e) => h(
        "tr",
        {},
        h("td", {}, e.protocol === "imap" ? "IMAP (incoming)" : "Submission (outgoing)"),
        h("td", {}, e.host),
        h("td", {}, String(e.port)),
        h("td", {}, security(e.security))
      )
    );
    const button = h("button", { type: "button", id: "apple-profile" }, "Download Apple profile (.mobileconfig)");
    button.addEventListener("click", () => {
      void s.run(async () => {
        const data = await client.call("AppleProfile");
        download(base64Bytes(data), `${settings.address}.mobileconfig`, "application/x-apple-aspen-config");
      }, "Profile downloaded: open it on the Mac or iPhone to add the account.");
    });
    replace(
      s.body,
      h("p", {}, "User name: ", h("code", {}, settings.username), ". Password: your account password."),
      h(
        "table",
        { id: "endpoints" },
        h("thead", {}, h("tr", {}, h("th", {}, "Service"), h("th", {}, "Host"), h("th", {}, "Port"), h("th", {}, "Security"))),
        h("tbody", {}, ...rows)
      ),
      button
    );
    return s.el;
  }
  function retiredSection(overview) {
    const s = section(
      "retired",
      "Keep finished outgoing messages",
      h("p", { class: "hint" }, "How long the queue keeps messages you sent, with their delivery attempts, after they are done (e.g. 7d, 12h; 0: not kept).")
    );
    const input = h("input", { type: "text", name: "retired_keep", value: formatDuration(overview.retired_keep), size: "8" });
    const form = h("form", { id: "retired-form", class: "inline" }, h("label", {}, "Messages ", input), h("button", { type: "submit" }, "Save"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const seconds = parseDuration(input.value);
      if (seconds === null) {
        s.status("Write a duration such as 7d, 12h or 30m, or 0.", true);
        return;
      }
      void s.run(async () => {
        const kept = await client.call("KeepRetiredPeriodSave", seconds);
        input.value = formatDuration(kept);
        input.setAttribute("value", input.value);
      });
    });
    replace(s.body, form);
    return s.el;
  }
  async function render() {
    const root = document.getElementById("page");
    if (!root) return;
    const [overview, settings] = await Promise.all([client.call("Account"), client.call("ClientSettings")]);
    const who = document.getElementById("who");
    if (who) who.textContent = overview.addresses[0] ?? overview.account;
    replace(
      root,
      overviewSection(overview),
      passwordSection(overview.addresses[0] ?? overview.account),
      clientSection(settings),
      keysSection(overview),
      rulesSection(),
      junkSection(),
      retiredSection(overview),
      fromidSection(overview),
      suppressionsSection(),
      webhooksSection(),
      tokensSection(overview.addresses[0] ?? overview.account),
      importSection(),
      exportSection()
    );
  }
  function init() {
    const out = document.getElementById("logout");
    out?.addEventListener("click", () => {
      void client.logout().then(() => {
        replace(document.getElementById("page") ?? document.body);
        void render();
      });
    });
    void render().catch((e) => {
      const root = document.getElementById("page");
      if (root) replace(root, h("p", { class: "error" }, e instanceof Error ? e.message : String(e)));
    });
  }
  init();
})();
