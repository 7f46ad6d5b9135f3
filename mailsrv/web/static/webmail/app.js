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
    constructor(base, storageKey, prompt2) {
      this.base = base;
      this.storageKey = storageKey;
      this.prompt = prompt2;
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
    const status2 = h("p", { class: "login-status", role: "status" }, reason === "not logged in" ? "" : reason);
    const submit = h("button", { type: "submit" }, "Log in");
    const form = h(
      "form",
      { class: "login" },
      h("h1", {}, "Log in"),
      h("label", {}, "Email address or account", username),
      h("label", {}, "Password", password),
      submit,
      status2
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      submit.disabled = true;
      replace(status2, "Logging in…");
      try {
        await login(username.value, password.value);
        overlay.remove();
        resolve();
      } catch (e) {
        replace(status2, e instanceof ApiError ? e.message : String(e));
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

  // web/ts/webmail/client.ts
  var client = new Client("api/", "mailsrv-webmail-csrf", loginForm);
  function csrfToken() {
    return client.csrf;
  }
  async function logout() {
    await client.logout();
    location.reload();
  }

  // web/ts/webmail/api.ts
  var api = {
    Mailboxes: () => client.call("Mailboxes"),
    MailboxCreate: (name) => client.call("MailboxCreate", name),
    MailboxRename: (oldName, newName) => client.call("MailboxRename", oldName, newName),
    MailboxDelete: (name) => client.call("MailboxDelete", name),
    MailboxEmpty: (id) => client.call("MailboxEmpty", id),
    MessageList: (req) => client.call("MessageList", req),
    Thread: (threadId) => client.call("Thread", threadId),
    Search: (req) => client.call("Search", req),
    Message: (id) => client.call("Message", id),
    FlagsChange: (ids, action, flags) => client.call("FlagsChange", ids, action, flags),
    Move: (ids, dest) => client.call("Move", ids, dest),
    Copy: (ids, dest) => client.call("Copy", ids, dest),
    Delete: (ids) => client.call("Delete", ids),
    Archive: (ids) => client.call("Archive", ids),
    Junk: (ids, junk) => client.call("Junk", ids, junk),
    RuleAnswer: (prompt2, answer) => client.call("RuleAnswer", prompt2, answer),
    RemoteAllow: (address, allow) => client.call("RemoteAllow", address, allow),
    Settings: () => client.call("Settings"),
    SettingsSave: (s) => client.call("SettingsSave", s),
    FromChoices: () => client.call("FromChoices"),
    ComposeTemplate: (id, mode) => client.call("ComposeTemplate", id, mode),
    DraftSave: (form) => client.call("DraftSave", form),
    DraftOpen: (id) => client.call("DraftOpen", id),
    Send: (form) => client.call("Send", form),
    Scheduled: () => client.call("Scheduled"),
    ScheduledReschedule: (id, sendAt) => client.call("ScheduledReschedule", id, sendAt),
    ScheduledCancel: (id) => client.call("ScheduledCancel", id),
    Complete: (prefix) => client.call("Complete", prefix),
    EventToken: () => client.call("EventToken")
  };

  // web/ts/webmail/dom.ts
  var PROPERTIES = /* @__PURE__ */ new Set(["checked", "value", "selected", "htmlFor", "disabled"]);
  function h2(tag, props, ...children) {
    const attributes = {};
    const properties = [];
    let style = null;
    for (const [key, value] of Object.entries(props ?? {})) {
      if (value === void 0 || value === null || value === false) continue;
      if (typeof value === "function") attributes[key.toLowerCase()] = value;
      else if (key === "className") attributes["class"] = String(value);
      else if (key === "style" && typeof value === "object") style = value;
      else if (PROPERTIES.has(key)) properties.push([key, value]);
      else attributes[key] = value === true ? true : String(value);
    }
    const el2 = h(tag, attributes);
    for (const [key, value] of properties) el2[key] = value;
    if (style) Object.assign(el2.style, style);
    append2(el2, children);
    return el2;
  }
  function append2(el2, children) {
    for (const c of children) {
      if (c === null || c === void 0 || c === false) continue;
      if (Array.isArray(c)) append2(el2, c);
      else el2.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    }
  }
  function clear(el2) {
    el2.replaceChildren();
  }

  // web/ts/webmail/scheduled.ts
  function localInputValue(seconds) {
    if (!seconds) return "";
    const d = new Date(seconds * 1e3);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }
  function inputSeconds(value) {
    return value ? Math.floor(new Date(value).getTime() / 1e3) : 0;
  }
  async function showScheduled(view, hooks) {
    let items;
    try {
      items = await api.Scheduled();
    } catch (e) {
      hooks.notify(e instanceof Error ? e.message : String(e), true);
      return;
    }
    clear(view);
    const refresh = () => void showScheduled(view, hooks);
    const list = h2("ul", { id: "scheduled", className: "scheduled" });
    for (const item of items) {
      const when = h2("input", { type: "datetime-local", value: localInputValue(item.send_at), "aria-label": "Send at" });
      const change = async () => {
        try {
          await api.ScheduledReschedule(item.id, inputSeconds(when.value));
          hooks.notify(when.value ? `Will be sent ${new Date(when.value).toLocaleString()}` : "Sending now");
        } catch (e) {
          hooks.notify(e instanceof Error ? e.message : String(e), true);
        }
        refresh();
      };
      const cancel = async () => {
        try {
          const draft = await api.ScheduledCancel(item.id);
          hooks.notify("Not sent: back in Drafts");
          refresh();
          await hooks.editDraft(draft);
        } catch (e) {
          hooks.notify(e instanceof Error ? e.message : String(e), true);
          refresh();
        }
      };
      list.append(h2(
        "li",
        { className: "scheduled-item", "data-id": String(item.id) },
        h2("div", { className: "scheduled-when" }, new Date(item.send_at * 1e3).toLocaleString()),
        h2("div", { className: "scheduled-subject" }, item.subject || "(no subject)"),
        h2("div", { className: "scheduled-to" }, "To: ", item.recipients.join(", ")),
        h2(
          "div",
          { className: "buttons" },
          when,
          h2("button", { type: "button", className: "scheduled-change", onclick: () => void change() }, "Change time"),
          h2("button", { type: "button", className: "scheduled-cancel", onclick: () => void cancel() }, "Cancel and edit"),
          item.requiretls ? h2("span", { className: "hint" }, "Require TLS") : null
        )
      ));
    }
    view.append(
      h2("h1", { className: "subject" }, "Scheduled"),
      items.length ? list : h2("p", { className: "empty" }, "Nothing scheduled")
    );
  }

  // web/ts/webmail/compose.ts
  var AUTOSAVE_MS = 15e3;
  function emptyForm() {
    return {
      from: "",
      to: [],
      cc: [],
      bcc: [],
      subject: "",
      text: "",
      html: "",
      attachments: [],
      reply_to_id: 0,
      forward_ids: [],
      forwarded_id: 0,
      in_reply_to: "",
      references: [],
      draft_id: 0,
      requiretls: false,
      send_at: 0
    };
  }
  function parseAddresses(text) {
    const out = [];
    for (const part of text.match(/("[^"]*"|[^,;])+/g) ?? []) {
      const s = part.trim();
      if (!s) continue;
      const m = /^(.*)<([^<>]+)>$/.exec(s);
      if (m) out.push({ name: (m[1] ?? "").trim().replace(/^"|"$/g, ""), address: (m[2] ?? "").trim() });
      else out.push({ name: "", address: s });
    }
    return out;
  }
  function formatAddresses(list) {
    return list.map((m) => m.name ? `${/[,;"]/.test(m.name) ? `"${m.name.replace(/"/g, "")}"` : m.name} <${m.address}>` : m.address).join(", ");
  }
  function upload(file, progress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "upload");
      xhr.setRequestHeader("x-mailsrv-csrf", csrfToken());
      xhr.setRequestHeader("x-filename", encodeURIComponent(file.name));
      xhr.setRequestHeader("content-type", file.type || "application/octet-stream");
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) progress(e.loaded / e.total);
      });
      xhr.addEventListener("load", () => {
        if (xhr.status === 200) resolve(JSON.parse(xhr.responseText));
        else reject(new Error(xhr.responseText.trim() || `upload failed (${xhr.status})`));
      });
      xhr.addEventListener("error", () => reject(new Error("upload failed")));
      xhr.send(file);
    });
  }
  var choices = null;
  function openCompose(initial) {
    document.getElementById("compose-window")?.remove();
    const form = { ...emptyForm(), ...initial ?? {} };
    const signature = currentSettings()?.signature ?? "";
    if (!initial && signature) form.text = `

-- 
${signature}`;
    let dirty = false;
    let sending = false;
    let uploading = 0;
    const fromSelect = h2("select", { name: "from", id: "compose-from" });
    const field = (name, label, value) => h2("input", { name, id: `compose-${name}`, "aria-label": label, placeholder: label, value, list: name === "subject" ? void 0 : "completions", autocomplete: "off" });
    const to = field("to", "To", formatAddresses(form.to));
    const cc = field("cc", "Cc", formatAddresses(form.cc));
    const bcc = field("bcc", "Bcc", formatAddresses(form.bcc));
    const subject = field("subject", "Subject", form.subject);
    const text = h2("textarea", { name: "text", id: "compose-text", rows: 16, "aria-label": "Message" });
    text.value = form.text;
    const requiretls = h2("input", { type: "checkbox", name: "requiretls", checked: form.requiretls });
    const sendAt = h2("input", { type: "datetime-local", name: "send_at", id: "compose-send-at", "aria-label": "Send later", value: localInputValue(form.send_at) });
    const datalist = h2("datalist", { id: "completions" });
    const attachmentList = h2("ul", { className: "compose-attachments" });
    const fileInput = h2("input", { type: "file", multiple: true, id: "compose-files", "aria-label": "Attach files" });
    const info = h2("span", { className: "compose-info" });
    const win = h2("form", { id: "compose-window", className: "dialog compose", "aria-label": "Compose" });
    const renderAttachments = () => {
      clear(attachmentList);
      form.attachments.forEach((a, i) => attachmentList.append(h2(
        "li",
        null,
        `${a.filename ?? ""} (${fmtSize(a.size ?? 0)}) `,
        h2("button", { type: "button", title: "Remove", onclick: () => {
          form.attachments.splice(i, 1);
          dirty = true;
          renderAttachments();
        } }, "×")
      )));
    };
    renderAttachments();
    const collect = () => ({
      ...form,
      from: fromSelect.value || form.from,
      to: parseAddresses(to.value),
      cc: parseAddresses(cc.value),
      bcc: parseAddresses(bcc.value),
      subject: subject.value,
      text: text.value,
      requiretls: requiretls.checked,
      send_at: inputSeconds(sendAt.value)
    });
    const addFiles = (files) => {
      for (const file of Array.from(files)) {
        const bar = h2("progress", { max: 1, value: 0 });
        const item = h2("li", { className: "uploading" }, `${file.name} `, bar);
        attachmentList.append(item);
        uploading += 1;
        upload(file, (f) => {
          bar.value = f;
        }).then((u) => {
          form.attachments.push({ upload: u.token, message_id: 0, path: "", filename: u.filename, content_type: u.content_type, size: u.size });
          dirty = true;
        }).catch((e) => notify(e instanceof Error ? e.message : String(e), true)).finally(() => {
          uploading -= 1;
          renderAttachments();
        });
      }
    };
    const saveDraft = async (quiet) => {
      if (sending) return;
      try {
        const id = await api.DraftSave(collect());
        form.draft_id = id;
        dirty = false;
        info.textContent = `Draft saved ${(/* @__PURE__ */ new Date()).toLocaleTimeString()}`;
        if (!quiet) notify("Draft saved");
        refreshIfShowing("Drafts");
      } catch (e) {
        if (!quiet) notify(e instanceof Error ? e.message : String(e), true);
      }
    };
    const timer = window.setInterval(() => {
      if (dirty && !uploading) void saveDraft(true);
    }, AUTOSAVE_MS);
    const close = () => {
      window.clearInterval(timer);
      win.remove();
    };
    win.addEventListener("input", () => {
      dirty = true;
    });
    win.addEventListener("submit", (e) => {
      e.preventDefault();
      if (uploading) {
        notify("Wait for the uploads to finish", true);
        return;
      }
      sending = true;
      const later = sendAt.value ? new Date(sendAt.value) : null;
      api.Send(collect()).then(() => {
        close();
        notify(later ? `Will be sent ${later.toLocaleString()}` : "Sent");
        refreshIfShowing(later ? "Scheduled" : "Sent");
        refreshIfShowing("Drafts");
      }).catch((err) => {
        sending = false;
        notify(err instanceof Error ? err.message : String(err), true);
      });
    });
    win.addEventListener("dragover", (e) => {
      e.preventDefault();
      win.classList.add("drop");
    });
    win.addEventListener("dragleave", () => win.classList.remove("drop"));
    win.addEventListener("drop", (e) => {
      e.preventDefault();
      win.classList.remove("drop");
      if (e.dataTransfer?.files.length) addFiles(e.dataTransfer.files);
    });
    win.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        if (!dirty || confirm("Close without saving?")) close();
      }
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        win.requestSubmit();
      }
    });
    fileInput.addEventListener("change", () => {
      if (fileInput.files) addFiles(fileInput.files);
      fileInput.value = "";
    });
    let completing = 0;
    for (const input of [to, cc, bcc]) {
      input.addEventListener("input", () => {
        const last = input.value.split(",").pop()?.trim() ?? "";
        if (last.length < 2) return;
        const mine = ++completing;
        void api.Complete(last).then((found) => {
          if (mine !== completing) return;
          clear(datalist);
          const head = input.value.includes(",") ? input.value.slice(0, input.value.lastIndexOf(",") + 1) + " " : "";
          for (const c of found) datalist.append(h2("option", { value: head + (c.name ? `${c.name} <${c.address}>` : c.address) }));
        }).catch(() => void 0);
      });
    }
    win.append(
      h2("div", { className: "compose-row" }, h2("label", { htmlFor: "compose-from" }, "From"), fromSelect),
      h2("div", { className: "compose-row" }, h2("label", { htmlFor: "compose-to" }, "To"), to),
      h2("div", { className: "compose-row" }, h2("label", { htmlFor: "compose-cc" }, "Cc"), cc),
      h2("div", { className: "compose-row" }, h2("label", { htmlFor: "compose-bcc" }, "Bcc"), bcc),
      h2("div", { className: "compose-row" }, h2("label", { htmlFor: "compose-subject" }, "Subject"), subject),
      datalist,
      text,
      h2("div", { className: "compose-row" }, fileInput, h2("span", { className: "hint" }, "or drop files here")),
      attachmentList,
      h2(
        "div",
        { className: "buttons" },
        h2("button", { type: "submit", id: "compose-send" }, "Send"),
        h2("button", { type: "button", id: "compose-save", onclick: () => void saveDraft(false) }, "Save draft"),
        h2("button", { type: "button", id: "compose-close", onclick: () => close() }, "Close"),
        h2("label", { title: "RFC 8689: delivery only over verified TLS" }, requiretls, " Require TLS"),
        h2("label", { htmlFor: "compose-send-at", title: "Nobody gets the message before then, recipients on this server neither (at most 60 days ahead; listed under Scheduled until then); empty: now" }, "Send later ", sendAt),
        info
      )
    );
    document.body.appendChild(win);
    const fill = (list) => {
      clear(fromSelect);
      for (const c of list) fromSelect.append(h2("option", { value: c.address, selected: c.address === form.from }, c.name ? `${c.name} <${c.address}>` : c.address));
    };
    if (choices) fill(choices);
    else void api.FromChoices().then((list) => {
      choices = list;
      fill(list);
    });
    (form.to.length ? text : to).focus();
  }

  // web/ts/webmail/main.ts
  var SPECIAL_ICONS = {
    "": "▸",
    "\\Sent": "➤",
    "\\Archive": "▤",
    "\\Trash": "✖",
    "\\Drafts": "✎",
    "\\Junk": "⚠"
  };
  var LABEL_COLOURS = ["#d33", "#d80", "#3a3", "#28c", "#85c", "#888"];
  var state = {
    mailboxes: [],
    source: { kind: "mailbox", id: 0 },
    rows: [],
    next: null,
    nextOffset: null,
    total: 0,
    selected: /* @__PURE__ */ new Set(),
    focus: -1,
    openId: 0,
    open: null,
    settings: null,
    sort: "date",
    descending: true,
    seq: 0,
    events: null,
    expanded: /* @__PURE__ */ new Set()
    // thread ids shown expanded
  };
  var showingScheduled = false;
  var el = {
    nav: h2("nav", { id: "mailboxes", "aria-label": "Mailboxes" }),
    listTitle: h2("h2", { id: "list-title" }),
    list: h2("ul", { id: "messages", role: "listbox", "aria-multiselectable": "true" }),
    more: h2("button", { id: "more", type: "button", hidden: true }, "More"),
    view: h2("section", { id: "view", "aria-live": "polite" }),
    status: h2("div", { id: "status", role: "status" }),
    query: h2("input", { id: "q", type: "search", placeholder: "Search (from: to: subject: has:attachment is:unread …)", autocomplete: "off" }),
    moveSelect: h2("select", { id: "move-to", title: "Move to (m)" }),
    sortSelect: h2("select", { id: "sort", title: "Sort" }),
    threaded: h2("input", { id: "threaded", type: "checkbox" }),
    selectAll: h2("input", { id: "select-all", type: "checkbox", title: "Select all" })
  };
  function contentURL(path, query = "") {
    return `${path}?csrf=${encodeURIComponent(csrfToken())}${query ? "&" + query : ""}`;
  }
  function status(text, error = false) {
    el.status.textContent = text;
    el.status.className = error ? "error" : "";
    if (text && !error) setTimeout(() => {
      if (el.status.textContent === text) el.status.textContent = "";
    }, 4e3);
  }
  async function guarded(f) {
    try {
      return await f();
    } catch (e) {
      status(e instanceof Error ? e.message : String(e), true);
      return void 0;
    }
  }
  function fmtDate(seconds, long = false) {
    const d = new Date(seconds * 1e3);
    const now = /* @__PURE__ */ new Date();
    if (!long && d.toDateString() === now.toDateString()) return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    if (!long && d.getFullYear() === now.getFullYear()) return d.toLocaleDateString([], { month: "short", day: "numeric" });
    return long ? d.toLocaleString() : d.toLocaleDateString();
  }
  function fmtSize(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
    return `${(n / 1024 / 1024).toFixed(1)} MB`;
  }
  function who(addrs) {
    return addrs.map((a) => a.name || a.addr).join(", ") || "(nobody)";
  }
  function mailboxById(id) {
    return state.mailboxes.find((m) => m.id === id);
  }
  async function loadMailboxes() {
    const result = await api.Mailboxes();
    state.mailboxes = result.mailboxes;
    if (!state.seq) state.seq = result.seq;
    renderMailboxes();
  }
  function renderMailboxes() {
    clear(el.nav);
    const ul = h2("ul");
    for (const mb of state.mailboxes) {
      const active = state.source.kind === "mailbox" && state.source.id === mb.id;
      const depth = mb.name.split("/").length - 1;
      const li = h2(
        "li",
        {
          className: "mailbox" + (active ? " active" : "") + (mb.unseen ? " has-unseen" : ""),
          "data-name": mb.name,
          "data-id": String(mb.id),
          style: { paddingLeft: `${0.5 + depth}em` },
          onclick: () => {
            void selectMailbox(mb.id);
          },
          ondragover: (e) => {
            e.preventDefault();
            li.classList.add("drop");
          },
          ondragleave: () => li.classList.remove("drop"),
          ondrop: (e) => {
            e.preventDefault();
            li.classList.remove("drop");
            const ids = (e.dataTransfer?.getData("text/x-mailsrv-ids") ?? "").split(",").filter(Boolean).map(Number);
            if (ids.length) void moveTo(ids, mb.name);
          }
        },
        h2("span", { className: "icon", "aria-hidden": "true" }, mb.name === "INBOX" ? "✉" : SPECIAL_ICONS[mb.special_use] ?? "▸"),
        h2("span", { className: "name" }, mb.name.split("/").pop() ?? mb.name),
        mb.unseen ? h2("span", { className: "count", title: `${mb.unseen} unread` }, String(mb.unseen)) : null
      );
      ul.appendChild(li);
    }
    ul.appendChild(h2(
      "li",
      { className: "mailbox scheduled-link" + (showingScheduled ? " active" : ""), id: "scheduled-link", onclick: () => void openScheduled() },
      h2("span", { className: "icon", "aria-hidden": "true" }, "◷"),
      h2("span", { className: "name" }, "Scheduled")
    ));
    const tools = h2(
      "div",
      { className: "mailbox-tools" },
      h2("button", { type: "button", id: "mailbox-create", title: "New mailbox", onclick: () => void mailboxCreate() }, "+ New"),
      h2("button", { type: "button", title: "Rename the selected mailbox", onclick: () => void mailboxRename() }, "Rename"),
      h2("button", { type: "button", title: "Delete the selected mailbox", onclick: () => void mailboxDelete() }, "Delete"),
      h2("button", { type: "button", id: "mailbox-empty", title: "Delete every message of the selected mailbox", onclick: () => void mailboxEmpty() }, "Empty")
    );
    el.nav.append(ul, tools);
    clear(el.moveSelect);
    el.moveSelect.append(h2("option", { value: "" }, "Move to…"));
    for (const mb of state.mailboxes) el.moveSelect.append(h2("option", { value: mb.name }, mb.name));
    const inbox = state.mailboxes.find((m) => m.name === "INBOX");
    document.title = inbox && inbox.unseen ? `(${inbox.unseen}) Mail` : "Mail";
  }
  function currentMailbox() {
    return state.source.kind === "mailbox" ? mailboxById(state.source.id) : void 0;
  }
  async function mailboxCreate() {
    const name = prompt("Name of the new mailbox (use / for a sub-mailbox):");
    if (!name) return;
    await guarded(async () => {
      await api.MailboxCreate(name);
      await loadMailboxes();
    });
  }
  async function mailboxRename() {
    const mb = currentMailbox();
    if (!mb || mb.name === "INBOX") return status("Select a mailbox other than the Inbox first", true);
    const name = prompt(`New name for ${mb.name}:`, mb.name);
    if (!name || name === mb.name) return;
    await guarded(async () => {
      await api.MailboxRename(mb.name, name);
      await loadMailboxes();
    });
  }
  async function mailboxDelete() {
    const mb = currentMailbox();
    if (!mb || mb.name === "INBOX") return status("Select a mailbox other than the Inbox first", true);
    if (!confirm(`Delete ${mb.name} and its ${mb.messages} messages?`)) return;
    await guarded(async () => {
      await api.MailboxDelete(mb.name);
      await loadMailboxes();
      await selectMailbox(state.mailboxes[0]?.id ?? 0);
    });
  }
  async function mailboxEmpty() {
    const mb = currentMailbox();
    if (!mb) return;
    if (!confirm(`Delete all ${mb.messages} messages of ${mb.name} for good?`)) return;
    await guarded(async () => {
      await api.MailboxEmpty(mb.id);
      await reloadList();
    });
  }
  async function selectMailbox(id) {
    state.source = { kind: "mailbox", id };
    el.query.value = "";
    renderMailboxes();
    document.body.classList.remove("show-nav");
    showPane("list");
    await reloadList();
  }
  async function reloadList() {
    state.rows = [];
    state.next = null;
    state.nextOffset = null;
    state.selected.clear();
    state.focus = -1;
    await loadMore();
  }
  function pageSize() {
    return state.settings?.page_size ?? 50;
  }
  async function loadMore() {
    const src = state.source;
    await guarded(async () => {
      if (src.kind === "mailbox") {
        const page = await api.MessageList({
          mailbox_id: src.id,
          sort: state.sort,
          descending: state.descending,
          count: pageSize(),
          anchor: state.next,
          threaded: el.threaded.checked
        });
        state.rows.push(...page.messages);
        state.next = page.next;
        state.total = page.total;
      } else {
        const result = await api.Search({ query: src.query, mailbox_id: src.mailboxId, offset: state.nextOffset ?? 0, count: pageSize() });
        state.rows.push(...result.messages);
        state.nextOffset = result.next_offset;
        state.total = result.total;
      }
      renderList();
    });
  }
  function hasMore() {
    return state.source.kind === "mailbox" ? state.next !== null : state.nextOffset !== null;
  }
  function renderList() {
    const src = state.source;
    el.listTitle.textContent = src.kind === "mailbox" ? `${mailboxById(src.id)?.name ?? ""} · ${state.total} message${state.total === 1 ? "" : "s"}` : `Search: ${src.query} · ${state.total} found`;
    clear(el.list);
    state.rows.forEach((m, i) => el.list.appendChild(row(m, i)));
    if (!state.rows.length) el.list.appendChild(h2("li", { className: "empty" }, "No messages"));
    el.more.hidden = !hasMore();
    el.selectAll.checked = state.rows.length > 0 && state.selected.size === state.rows.length;
  }
  function labelsOf(flags) {
    return flags.filter((f) => !f.startsWith("\\") && !f.startsWith("$"));
  }
  function labelColour(label) {
    let hash = 0;
    for (const ch of label) hash = hash * 31 + ch.charCodeAt(0) >>> 0;
    return LABEL_COLOURS[hash % LABEL_COLOURS.length] ?? "#888";
  }
  function row(m, index) {
    const unread = !m.flags.includes("\\Seen");
    const flagged = m.flags.includes("\\Flagged");
    const checkbox = h2("input", {
      type: "checkbox",
      className: "pick",
      checked: state.selected.has(m.id),
      "aria-label": "Select",
      onclick: (e) => {
        e.stopPropagation();
        toggleSelect(m.id, e.target.checked);
      }
    });
    const li = h2(
      "li",
      {
        className: "msg" + (unread || m.thread_unread ? " unread" : "") + (flagged ? " flagged" : "") + (state.selected.has(m.id) ? " selected" : "") + (index === state.focus ? " focused" : "") + (m.id === state.openId ? " open" : ""),
        "data-id": String(m.id),
        role: "option",
        draggable: "true",
        "aria-selected": state.selected.has(m.id) ? "true" : "false",
        onclick: (e) => onRowClick(e, m, index),
        ondragstart: (e) => {
          const ids = state.selected.has(m.id) ? [...state.selected] : [m.id];
          e.dataTransfer?.setData("text/x-mailsrv-ids", ids.join(","));
        }
      },
      checkbox,
      h2("button", {
        type: "button",
        className: "star",
        title: flagged ? "Unflag (s)" : "Flag (s)",
        "aria-pressed": flagged ? "true" : "false",
        onclick: (e) => {
          e.stopPropagation();
          void setFlags([m.id], flagged ? "remove" : "add", ["\\Flagged"]);
        }
      }, flagged ? "★" : "☆"),
      h2("span", { className: "from" }, who(m.from)),
      (m.thread_count ?? 1) > 1 ? h2("button", {
        type: "button",
        className: "thread-count",
        title: "Show the conversation",
        onclick: (e) => {
          e.stopPropagation();
          void toggleThread(m);
        }
      }, String(m.thread_count)) : null,
      h2(
        "span",
        { className: "subject" },
        m.subject || "(no subject)",
        ...labelsOf(m.flags).map((l) => h2("span", { className: "label", style: { background: labelColour(l) } }, l)),
        h2("span", { className: "preview" }, " — " + m.preview)
      ),
      m.has_attachment ? h2("span", { className: "clip", title: "Has attachments", "aria-label": "Has attachments" }, "⊕") : null,
      h2("span", { className: "date", title: fmtDate(m.date, true) }, fmtDate(m.date)),
      h2("span", { className: "size" }, fmtSize(m.size))
    );
    return li;
  }
  async function toggleThread(m) {
    const index = state.rows.findIndex((r) => r.id === m.id);
    if (state.expanded.has(m.thread_id)) {
      state.expanded.delete(m.thread_id);
      state.rows = state.rows.filter((r) => r.thread_id !== m.thread_id || r.id === m.id);
    } else {
      const all = await guarded(() => api.Thread(m.thread_id));
      if (!all) return;
      state.expanded.add(m.thread_id);
      const others = all.filter((r) => r.id !== m.id).map((r) => ({ ...r, thread_count: 1 }));
      state.rows.splice(index + 1, 0, ...others);
    }
    renderList();
  }
  function toggleSelect(id, on) {
    if (on) state.selected.add(id);
    else state.selected.delete(id);
    renderList();
  }
  function onRowClick(e, m, index) {
    if (e.shiftKey && state.focus >= 0) {
      const [a, b] = [Math.min(state.focus, index), Math.max(state.focus, index)];
      for (let i = a; i <= b; i++) {
        const r = state.rows[i];
        if (r) state.selected.add(r.id);
      }
      renderList();
      return;
    }
    if (e.ctrlKey || e.metaKey) {
      toggleSelect(m.id, !state.selected.has(m.id));
      return;
    }
    state.focus = index;
    void openMessage(m.id);
  }
  function targets() {
    if (state.selected.size) return [...state.selected];
    if (state.openId) return [state.openId];
    const focused = state.rows[state.focus];
    return focused ? [focused.id] : [];
  }
  function removeRows(ids) {
    const gone = new Set(ids);
    const openGone = gone.has(state.openId);
    const index = state.rows.findIndex((r) => gone.has(r.id));
    const before = state.rows.length;
    state.rows = state.rows.filter((r) => !gone.has(r.id));
    state.total = Math.max(0, state.total - (before - state.rows.length));
    for (const id of ids) state.selected.delete(id);
    if (openGone) {
      const next = state.rows[Math.min(Math.max(index, 0), state.rows.length - 1)];
      state.openId = 0;
      state.open = null;
      clear(el.view);
      if (next) {
        state.focus = state.rows.indexOf(next);
        void openMessage(next.id);
      }
    }
    renderList();
  }
  async function setFlags(ids, action, flags) {
    if (!ids.length) return;
    await guarded(async () => {
      await api.FlagsChange(ids, action, flags);
      for (const r of state.rows) {
        if (!ids.includes(r.id)) continue;
        r.flags = action === "add" ? [.../* @__PURE__ */ new Set([...r.flags, ...flags])] : r.flags.filter((f) => !flags.includes(f));
        if (flags.includes("\\Seen")) r.thread_unread = action === "add" ? 0 : 1;
      }
      if (state.open && ids.includes(state.open.id)) {
        state.open.flags = action === "add" ? [.../* @__PURE__ */ new Set([...state.open.flags, ...flags])] : state.open.flags.filter((f) => !flags.includes(f));
        renderViewFlags();
      }
      renderList();
    });
  }
  async function moveTo(ids, dest) {
    if (!ids.length) return;
    const result = await guarded(() => api.Move(ids, dest));
    if (!result) return;
    status(`Moved ${result.moved} to ${dest}`);
    if (state.source.kind === "mailbox") removeRows(ids);
    if (result.prompt) showRulePrompt(result.prompt);
  }
  async function bulk(kind) {
    const ids = targets();
    if (!ids.length) return;
    const done = await guarded(() => kind === "delete" ? api.Delete(ids) : kind === "archive" ? api.Archive(ids) : api.Junk(ids, kind === "junk"));
    if (done === void 0) return;
    status({ delete: "Deleted", archive: "Archived", junk: "Marked as junk", notjunk: "Marked as not junk" }[kind] + ` (${done})`);
    if (state.source.kind === "mailbox") removeRows(ids);
  }
  function showRulePrompt(p) {
    const what = p.list_id ? `messages from the mailing list ${p.list_id} (verified by ${p.verified_domain})` : `messages from ${p.from_address}`;
    const question = p.kind === "create" ? `Deliver future ${what} to ${p.mailbox} automatically?` : `Stop delivering ${what} to ${p.mailbox}?`;
    const box = h2("div", { id: "rule-prompt", className: "dialog", role: "dialog", "aria-label": "Make a rule?" });
    const answer = (a) => {
      box.remove();
      void guarded(async () => {
        await api.RuleAnswer(p, a);
        if (a === "yes") status(p.kind === "create" ? "Rule created (edit rules on the account page)" : "Rule removed");
      });
    };
    box.append(
      h2("p", null, question),
      h2(
        "div",
        { className: "buttons" },
        h2("button", { type: "button", id: "rule-yes", onclick: () => answer("yes") }, "Yes"),
        h2("button", { type: "button", id: "rule-no-sender", onclick: () => answer("no-sender") }, p.list_id ? "No, not for this list" : "No, not for this sender"),
        h2("button", { type: "button", id: "rule-no-mailbox", onclick: () => answer("no-mailbox") }, `No, not for ${p.mailbox}`),
        h2("button", { type: "button", id: "rule-later", onclick: () => answer("later") }, "Not now")
      )
    );
    document.getElementById("rule-prompt")?.remove();
    document.body.appendChild(box);
  }
  function showPane(pane) {
    document.body.classList.toggle("show-view", pane === "view");
  }
  async function openMessage(id) {
    const view = await guarded(() => api.Message(id));
    if (!view) return;
    state.openId = id;
    state.open = view;
    renderView(view);
    showPane("view");
    renderList();
    const isDraft = view.flags.includes("\\Draft");
    if (!view.flags.includes("\\Seen") && !isDraft) await setFlags([id], "add", ["\\Seen"]);
  }
  function addressList(label, addrs) {
    if (!addrs.length) return null;
    return h2(
      "div",
      { className: "addr-line" },
      h2("span", { className: "addr-label" }, label + ": "),
      addrs.map((a, i) => [i ? ", " : "", h2("span", { className: "addr", title: a.address }, a.name ? `${a.name} <${a.address}>` : a.address)])
    );
  }
  function verdictBadge(v) {
    const auth = v.auth;
    if (!auth.spf && !auth.dmarc && !(auth.dkim ?? []).length) {
      return h2("span", { className: "auth none", title: "No authentication results (sent from this server, or not checked)" }, "not checked");
    }
    const dkim = (auth.dkim ?? []).map((d) => `DKIM ${d.result} (${d.domain})`).join(", ") || "DKIM none";
    const detail = `SPF ${auth.spf || "none"}${auth.spf_domain ? ` (${auth.spf_domain})` : ""}, ${dkim}, DMARC ${auth.dmarc || "none"}`;
    return h2(
      "span",
      { className: "auth " + (auth.from_verified ? "verified" : "unverified"), title: detail },
      auth.from_verified ? "✔ From verified" : "✖ From not verified",
      h2("span", { className: "auth-detail" }, " · " + detail)
    );
  }
  function renderViewFlags() {
    const v = state.open;
    const holder = document.getElementById("view-flags");
    if (!v || !holder) return;
    clear(holder);
    for (const label of labelsOf(v.flags)) {
      holder.append(h2(
        "span",
        { className: "label", style: { background: labelColour(label) } },
        label,
        h2("button", { type: "button", title: "Remove label", onclick: () => void setFlags([v.id], "remove", [label]) }, "×")
      ));
    }
    holder.append(h2("button", {
      type: "button",
      className: "add-label",
      title: "Add a label (l)",
      onclick: () => addLabel()
    }, "+ label"));
  }
  function addLabel() {
    const v = state.open;
    const ids = targets();
    const label = prompt("Label (keyword) to add:");
    if (label && (v || ids.length)) void setFlags(ids, "add", [label.replace(/\s+/g, "_")]);
  }
  function textBody(blocks) {
    const pre = h2("div", { className: "text-body" });
    for (const b of blocks) {
      const block = h2(b.quote ? "blockquote" : "div", { className: `quote-${Math.min(b.quote, 3)}` });
      let pos = 0;
      for (const [start2, end, href] of b.links ?? []) {
        block.append(b.text.slice(pos, start2), h2("a", { href, target: "_blank", rel: "noopener noreferrer" }, b.text.slice(start2, end)));
        pos = end;
      }
      block.append(b.text.slice(pos));
      pre.append(block);
    }
    return pre;
  }
  function htmlFrame(v, remote) {
    const frame = h2("iframe", {
      id: "html-frame",
      title: "Message",
      sandbox: "allow-same-origin allow-popups allow-popups-to-escape-sandbox",
      referrerpolicy: "no-referrer",
      src: contentURL(`msg/${v.id}/html`, remote ? "remote=1" : "")
    });
    frame.addEventListener("load", () => {
      const doc = frame.contentDocument;
      if (doc?.documentElement) frame.style.height = `${doc.documentElement.scrollHeight + 20}px`;
    });
    return frame;
  }
  function renderView(v) {
    if (showingScheduled) {
      showingScheduled = false;
      renderMailboxes();
    }
    clear(el.view);
    const sender = v.from[0];
    const settings = state.settings;
    let showHtml = v.has_html && (settings?.show ?? "html") === "html";
    let remote = v.remote_allowed;
    const body = h2("div", { className: "body" });
    const drawBody = () => {
      clear(body);
      if (showHtml) {
        if (v.html_blocked && !remote) {
          const bar = h2(
            "div",
            { className: "remote-bar", id: "remote-bar" },
            `${v.html_blocked} remote resource(s) blocked. `,
            h2("button", { type: "button", id: "load-remote", onclick: () => {
              remote = true;
              drawBody();
            } }, "Load this time"),
            sender ? h2("button", {
              type: "button",
              id: "allow-sender",
              onclick: () => void guarded(async () => {
                await api.RemoteAllow(sender.address, true);
                remote = true;
                drawBody();
              })
            }, `Always for ${sender.address}`) : null
          );
          if (settings?.remote !== "never") body.append(bar);
        }
        body.append(htmlFrame(v, remote));
      } else {
        body.append(textBody(v.text));
        if (v.text_truncated) body.append(h2("p", { className: "note" }, "The text was cut; open the raw message for all of it."));
      }
    };
    drawBody();
    const isDraft = v.flags.includes("\\Draft");
    const toolbar = h2(
      "div",
      { className: "view-tools" },
      h2("button", { type: "button", className: "back", onclick: () => showPane("list") }, "← Back"),
      isDraft ? h2("button", { type: "button", id: "edit-draft", onclick: () => void editDraft(v.id) }, "Edit draft") : null,
      h2("button", { type: "button", id: "reply", title: "Reply (r)", onclick: () => void reply("reply") }, "Reply"),
      h2("button", { type: "button", id: "reply-all", title: "Reply all (a)", onclick: () => void reply("all") }, "Reply all"),
      h2("button", { type: "button", id: "forward", title: "Forward (f)", onclick: () => void reply("forward") }, "Forward"),
      h2("button", { type: "button", title: "Forward as attachment", onclick: () => void reply("forward-attached") }, "Forward as attachment"),
      h2("button", { type: "button", title: "Archive (e)", onclick: () => void bulk("archive") }, "Archive"),
      h2("button", { type: "button", title: "Delete (#)", onclick: () => void bulk("delete") }, "Delete"),
      h2(
        "button",
        { type: "button", title: "Junk (!)", onclick: () => void bulk(mailboxById(v.mailbox_id)?.special_use === "\\Junk" ? "notjunk" : "junk") },
        mailboxById(v.mailbox_id)?.special_use === "\\Junk" ? "Not junk" : "Junk"
      ),
      h2("button", { type: "button", title: "Mark unread (u)", onclick: () => void setFlags([v.id], "remove", ["\\Seen"]) }, "Unread"),
      v.has_html ? h2("button", { type: "button", id: "toggle-html", onclick: () => {
        showHtml = !showHtml;
        drawBody();
      } }, "HTML / text") : null,
      h2("a", { href: contentURL(`msg/${v.id}/raw`), target: "_blank", rel: "noopener", id: "raw" }, "Raw")
    );
    const attachments = v.attachments.length ? h2("ul", { className: "attachments" }, v.attachments.map((a) => {
      const url = `msg/${v.id}/part/${a.path}`;
      const inlineURL = contentURL(url);
      const preview = /^image\/(png|jpeg|gif|webp)$/.test(a.content_type) ? h2("img", { src: inlineURL, alt: a.filename, className: "thumb", loading: "lazy" }) : null;
      return h2(
        "li",
        null,
        preview,
        h2("a", { href: contentURL(url, "download=1"), download: a.filename || "attachment" }, a.filename || "(unnamed)"),
        ` ${a.content_type}, ${fmtSize(a.size)}`,
        /^(application\/pdf|image\/|text\/plain)/.test(a.content_type) ? [" ", h2("a", { href: inlineURL, target: "_blank", rel: "noopener" }, "open")] : null
      );
    })) : null;
    const parts = [
      toolbar,
      h2("h1", { className: "subject" }, v.subject || "(no subject)"),
      h2(
        "div",
        { className: "headers" },
        addressList("From", v.from),
        v.sender.length && v.sender[0]?.address !== sender?.address ? addressList("Sender", v.sender) : null,
        addressList("Reply-To", v.reply_to),
        addressList("To", v.to),
        addressList("Cc", v.cc),
        addressList("Bcc", v.bcc),
        h2("div", { className: "addr-line" }, h2("span", { className: "addr-label" }, "Date: "), fmtDate(v.date, true)),
        v.list_id ? h2("div", { className: "addr-line" }, h2("span", { className: "addr-label" }, "List: "), v.list_id) : null,
        h2("div", { className: "addr-line" }, verdictBadge(v)),
        h2("div", { id: "view-flags", className: "flags" })
      ),
      attachments,
      body
    ];
    for (const part of parts) if (part) el.view.append(part);
    renderViewFlags();
  }
  async function reply(mode) {
    const id = state.openId || targets()[0];
    if (!id) return;
    const form = await guarded(() => api.ComposeTemplate(id, mode));
    if (form) openCompose(form);
  }
  async function openScheduled() {
    showingScheduled = true;
    state.openId = 0;
    state.open = null;
    renderMailboxes();
    document.body.classList.remove("show-nav");
    showPane("view");
    await showScheduled(el.view, { notify: status, editDraft });
  }
  async function editDraft(id) {
    const form = await guarded(() => api.DraftOpen(id));
    if (form) openCompose(form);
  }
  async function search(query) {
    query = query.trim();
    if (!query) {
      if (state.source.kind === "search") await selectMailbox(state.source.mailboxId || state.mailboxes[0]?.id || 0);
      return;
    }
    const here = state.source.kind === "mailbox" ? 0 : state.source.mailboxId;
    state.source = { kind: "search", query, mailboxId: here };
    renderMailboxes();
    showPane("list");
    await reloadList();
  }
  function advancedSearch() {
    const existing = document.getElementById("advanced-search");
    if (existing) {
      existing.remove();
      return;
    }
    const field = (name, label, type = "text") => h2("label", null, label, h2("input", { name, type }));
    const form = h2(
      "form",
      { id: "advanced-search", className: "dialog" },
      field("from", "From"),
      field("to", "To"),
      field("subject", "Subject"),
      field("words", "Words"),
      field("after", "After", "date"),
      field("before", "Before", "date"),
      field("larger", "Larger than (e.g. 1M)"),
      h2("label", null, h2("input", { name: "attachment", type: "checkbox" }), "Has attachment"),
      h2("label", null, h2("input", { name: "unread", type: "checkbox" }), "Unread"),
      h2("label", null, h2("input", { name: "flagged", type: "checkbox" }), "Flagged"),
      h2("label", null, "In", h2(
        "select",
        { name: "in" },
        h2("option", { value: "" }, "all mailboxes"),
        state.mailboxes.map((m) => h2("option", { value: m.name }, m.name))
      )),
      h2(
        "div",
        { className: "buttons" },
        h2("button", { type: "submit" }, "Search"),
        h2("button", { type: "button", onclick: () => form.remove() }, "Close")
      )
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const data = new FormData(form);
      const q = (s) => /\s/.test(s) ? `"${s}"` : s;
      const parts = [];
      for (const key of ["from", "to", "subject", "after", "before", "larger"]) {
        const value = String(data.get(key) ?? "").trim();
        if (value) parts.push(`${key}:${q(value)}`);
      }
      if (data.get("attachment")) parts.push("has:attachment");
      if (data.get("unread")) parts.push("is:unread");
      if (data.get("flagged")) parts.push("is:flagged");
      const inbox = String(data.get("in") ?? "");
      parts.push(inbox ? `in:${q(inbox)}` : "in:all");
      const words = String(data.get("words") ?? "").trim();
      if (words) parts.push(words);
      el.query.value = parts.join(" ");
      form.remove();
      void search(el.query.value);
    });
    document.body.appendChild(form);
  }
  function applyCounts(counts) {
    for (const c of counts) {
      const mb = mailboxById(c.mailbox_id);
      if (mb) {
        mb.messages = c.messages;
        mb.unseen = c.unseen;
        mb.size = c.size;
      }
    }
  }
  function rowKey(mailboxId, uid) {
    return `${mailboxId}:${uid}`;
  }
  function applyChange(c) {
    applyCounts(c.counts);
    if (c.kind === "mailboxes") {
      void loadMailboxes();
      return;
    }
    const src = state.source;
    if (src.kind !== "mailbox") {
      renderMailboxes();
      return;
    }
    const gone = /* @__PURE__ */ new Set();
    if (c.kind === "expunged" || c.kind === "moved") for (const uid of c.uids) gone.add(rowKey(c.mailbox_id, uid));
    if (gone.size) removeRows(state.rows.filter((r) => gone.has(rowKey(r.mailbox_id, r.uid))).map((r) => r.id));
    if (c.truncated) {
      void reloadList();
      renderMailboxes();
      return;
    }
    for (const m of c.messages) {
      const existing = state.rows.findIndex((r) => r.id === m.id);
      if (existing >= 0) {
        const old = state.rows[existing];
        state.rows[existing] = { ...m, thread_count: old?.thread_count ?? 1, thread_unread: m.flags.includes("\\Seen") ? 0 : 1 };
      } else if (m.mailbox_id === src.id && c.kind !== "flags") {
        let count = 1;
        let unread = m.flags.includes("\\Seen") ? 0 : 1;
        if (el.threaded.checked) {
          const sameThread = state.rows.findIndex((r) => r.thread_id === m.thread_id);
          const old = state.rows[sameThread];
          if (old) {
            count += old.thread_count ?? 1;
            unread += old.thread_unread ?? 0;
            state.rows.splice(sameThread, 1);
          }
        }
        insertSorted({ ...m, thread_count: count, thread_unread: unread });
        state.total += 1;
      }
    }
    renderMailboxes();
    renderList();
  }
  function insertSorted(m) {
    const key = (r) => state.sort === "arrival" ? r.received : state.sort === "size" ? r.size : state.sort === "from" ? who(r.from).toLowerCase() : state.sort === "subject" ? r.subject.toLowerCase() : r.date;
    const k = key(m);
    let i = state.rows.findIndex((r) => state.descending ? key(r) < k : key(r) > k);
    if (i < 0) {
      if (hasMore()) return;
      i = state.rows.length;
    }
    state.rows.splice(i, 0, m);
    if (state.focus >= i) state.focus += 1;
  }
  var reconnectDelay = 1e3;
  async function connectEvents() {
    state.events?.close();
    const token = await guarded(() => api.EventToken());
    if (!token) {
      setTimeout(() => void connectEvents(), 1e4);
      return;
    }
    const source = new EventSource(`events?token=${encodeURIComponent(token)}&since=${state.seq}`);
    state.events = source;
    source.addEventListener("open", () => {
      reconnectDelay = 1e3;
      document.body.classList.remove("offline");
    });
    source.addEventListener("change", (e) => {
      const change = JSON.parse(e.data);
      if (change.seq <= state.seq) return;
      state.seq = change.seq;
      applyChange(change);
    });
    source.addEventListener("reload", (e) => {
      state.seq = JSON.parse(e.data).next_seq;
      void loadMailboxes().then(() => reloadList());
    });
    source.addEventListener("error", () => {
      source.close();
      document.body.classList.add("offline");
      setTimeout(() => void connectEvents(), reconnectDelay);
      reconnectDelay = Math.min(reconnectDelay * 2, 3e4);
    });
  }
  function openSettings() {
    const s = state.settings;
    if (!s) return;
    document.getElementById("settings")?.remove();
    const select = (name, value, options) => h2("select", { name }, options.map(([v, label]) => h2("option", { value: v, selected: v === value }, label)));
    const form = h2(
      "form",
      { id: "settings", className: "dialog" },
      h2("h2", null, "Settings"),
      h2("label", null, "Show messages as ", select("show", s.show, [["html", "HTML when there is HTML"], ["text", "text"]])),
      h2("label", null, "Remote images and resources ", select("remote", s.remote, [["ask", "blocked, with a button to load"], ["never", "blocked"], ["always", "always loaded"]])),
      h2("label", null, "Reply ", select("quoting", s.quoting, [["bottom", "below the quoted text"], ["top", "above the quoted text"]])),
      h2("label", null, h2("input", { name: "threading", type: "checkbox", checked: s.threading }), " Group by conversation"),
      h2("label", null, "Messages per page ", h2("input", { name: "page_size", type: "number", min: "10", max: "500", value: String(s.page_size) })),
      h2("label", null, "Signature", h2("textarea", { name: "signature", rows: 4, value: s.signature })),
      h2("div", { className: "buttons" }, h2("button", { type: "submit" }, "Save"), h2("button", { type: "button", onclick: () => form.remove() }, "Cancel"))
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const d = new FormData(form);
      const next = {
        show: d.get("show") === "text" ? "text" : "html",
        remote: String(d.get("remote")),
        quoting: d.get("quoting") === "top" ? "top" : "bottom",
        threading: d.get("threading") !== null,
        page_size: Number(d.get("page_size")),
        signature: String(d.get("signature") ?? "")
      };
      void guarded(async () => {
        state.settings = fullSettings(await api.SettingsSave(next));
        el.threaded.checked = state.settings.threading;
        form.remove();
        status("Settings saved");
        await reloadList();
      });
    });
    document.body.appendChild(form);
  }
  function currentSettings() {
    return state.settings;
  }
  function fullSettings(s) {
    return {
      show: s.show ?? "html",
      remote: s.remote ?? "ask",
      signature: s.signature ?? "",
      quoting: s.quoting ?? "bottom",
      threading: s.threading ?? true,
      page_size: s.page_size ?? 50
    };
  }
  function notify(text, error = false) {
    status(text, error);
  }
  function refreshIfShowing(mailboxName) {
    if (mailboxName === "Scheduled") {
      if (showingScheduled && !state.openId) void openScheduled();
      return;
    }
    const mb = currentMailbox();
    if (mb && mb.name === mailboxName) void reloadList();
  }
  var SHORTCUTS = [
    ["j / ↓", "next message"],
    ["k / ↑", "previous message"],
    ["o / Enter", "open"],
    ["x", "select"],
    ["r", "reply"],
    ["a", "reply all"],
    ["f", "forward"],
    ["c", "compose"],
    ["e", "archive"],
    ["# / Delete", "delete"],
    ["!", "junk"],
    ["m", "move to…"],
    ["u", "mark unread"],
    ["Shift+I", "mark read"],
    ["s", "flag / unflag"],
    ["l", "add a label"],
    ["/", "search"],
    ["Esc", "close"],
    ["?", "this list"]
  ];
  function showHelp() {
    const existing = document.getElementById("shortcuts");
    if (existing) {
      existing.remove();
      return;
    }
    document.body.appendChild(h2(
      "div",
      { id: "shortcuts", className: "dialog", role: "dialog", "aria-label": "Keyboard shortcuts" },
      h2("h2", null, "Keyboard shortcuts"),
      h2("table", null, SHORTCUTS.map(([k, what]) => h2("tr", null, h2("th", null, k), h2("td", null, what)))),
      h2("button", { type: "button", onclick: () => document.getElementById("shortcuts")?.remove() }, "Close")
    ));
  }
  function moveFocus(delta) {
    if (!state.rows.length) return;
    state.focus = Math.max(0, Math.min(state.rows.length - 1, state.focus + delta));
    const m = state.rows[state.focus];
    if (m) void openMessage(m.id);
    el.list.querySelector(".focused")?.scrollIntoView({ block: "nearest" });
  }
  function onKey(e) {
    const t = e.target;
    if (t.closest("input, textarea, select, [contenteditable]") || e.ctrlKey || e.metaKey || e.altKey) {
      if (e.key === "Escape" && t === el.query) el.query.blur();
      return;
    }
    const open = state.open;
    const actions = {
      j: () => moveFocus(1),
      ArrowDown: () => moveFocus(1),
      k: () => moveFocus(-1),
      ArrowUp: () => moveFocus(-1),
      o: () => {
        const m = state.rows[state.focus];
        if (m) void openMessage(m.id);
      },
      Enter: () => {
        const m = state.rows[state.focus];
        if (m) void openMessage(m.id);
      },
      x: () => {
        const m = state.rows[state.focus];
        if (m) toggleSelect(m.id, !state.selected.has(m.id));
      },
      r: () => void reply("reply"),
      a: () => void reply("all"),
      f: () => void reply("forward"),
      c: () => openCompose(null),
      e: () => void bulk("archive"),
      "#": () => void bulk("delete"),
      Delete: () => void bulk("delete"),
      "!": () => void bulk("junk"),
      m: () => el.moveSelect.focus(),
      u: () => void setFlags(targets(), "remove", ["\\Seen"]),
      I: () => void setFlags(targets(), "add", ["\\Seen"]),
      s: () => {
        const ids = targets();
        const first = state.rows.find((r) => r.id === ids[0]) ?? open;
        void setFlags(ids, first?.flags.includes("\\Flagged") ? "remove" : "add", ["\\Flagged"]);
      },
      l: () => addLabel(),
      "/": () => el.query.focus(),
      "?": () => showHelp(),
      Escape: () => {
        for (const id of ["shortcuts", "settings", "advanced-search", "rule-prompt"]) document.getElementById(id)?.remove();
        showPane("list");
      }
    };
    const action = actions[e.key];
    if (action) {
      e.preventDefault();
      action();
    }
  }
  function layout() {
    const searchForm = h2(
      "form",
      { id: "search", role: "search" },
      el.query,
      h2("button", { type: "button", id: "advanced", title: "Advanced search", onclick: () => advancedSearch() }, "⚙")
    );
    searchForm.addEventListener("submit", (e) => {
      e.preventDefault();
      void search(el.query.value);
    });
    for (const [value, label] of [["date", "Date"], ["arrival", "Arrival"], ["from", "From"], ["subject", "Subject"], ["size", "Size"]]) {
      el.sortSelect.append(h2("option", { value }, label));
    }
    el.sortSelect.addEventListener("change", () => {
      state.sort = el.sortSelect.value;
      void reloadList();
    });
    el.threaded.addEventListener("change", () => void reloadList());
    el.moveSelect.addEventListener("change", () => {
      const dest = el.moveSelect.value;
      el.moveSelect.value = "";
      if (dest) void moveTo(targets(), dest);
    });
    el.selectAll.addEventListener("change", () => {
      state.selected = el.selectAll.checked ? new Set(state.rows.map((r) => r.id)) : /* @__PURE__ */ new Set();
      renderList();
    });
    el.more.addEventListener("click", () => void loadMore());
    const top = h2(
      "header",
      { className: "top" },
      h2("button", { type: "button", id: "menu", title: "Mailboxes", onclick: () => document.body.classList.toggle("show-nav") }, "☰"),
      searchForm,
      h2("button", { type: "button", id: "compose", title: "Compose (c)", onclick: () => openCompose(null) }, "Compose"),
      h2("button", { type: "button", id: "open-settings", title: "Settings", onclick: () => openSettings() }, "Settings"),
      h2("button", { type: "button", id: "help", title: "Keyboard shortcuts (?)", onclick: () => showHelp() }, "?"),
      h2("button", { type: "button", id: "logout", onclick: () => void logout() }, "Log out"),
      el.status
    );
    const listTools = h2(
      "div",
      { className: "list-tools" },
      el.selectAll,
      h2("button", { type: "button", title: "Archive (e)", onclick: () => void bulk("archive") }, "Archive"),
      h2("button", { type: "button", title: "Delete (#)", onclick: () => void bulk("delete") }, "Delete"),
      h2("button", { type: "button", title: "Junk (!)", onclick: () => void bulk("junk") }, "Junk"),
      h2("button", { type: "button", title: "Mark read", onclick: () => void setFlags(targets(), "add", ["\\Seen"]) }, "Read"),
      h2("button", { type: "button", title: "Mark unread (u)", onclick: () => void setFlags(targets(), "remove", ["\\Seen"]) }, "Unread"),
      h2("button", { type: "button", title: "Flag (s)", onclick: () => void setFlags(targets(), "add", ["\\Flagged"]) }, "Flag"),
      el.moveSelect,
      el.sortSelect,
      h2("button", { type: "button", title: "Reverse the order", onclick: () => {
        state.descending = !state.descending;
        void reloadList();
      } }, "⇅"),
      h2("label", { title: "Group by conversation" }, el.threaded, "Threads")
    );
    const main = h2(
      "div",
      { className: "main" },
      el.nav,
      h2("section", { id: "list" }, listTools, el.listTitle, el.list, el.more),
      el.view
    );
    const app = document.getElementById("app") ?? document.body;
    clear(app);
    app.append(top, main);
    document.addEventListener("keydown", onKey);
  }
  async function start() {
    layout();
    state.settings = fullSettings(await api.Settings());
    el.threaded.checked = state.settings.threading;
    await loadMailboxes();
    const inbox = state.mailboxes.find((m) => m.name === "INBOX") ?? state.mailboxes[0];
    if (inbox) await selectMailbox(inbox.id);
    void connectEvents();
  }
  void start();
})();
