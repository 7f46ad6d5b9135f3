"use strict";
(() => {
  // web/ts/lib/api.ts
  var ApiError = class extends Error {
    constructor(code, message, field2) {
      super(message);
      this.code = code;
      this.field = field2;
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

  // web/ts/admin/ui.ts
  var client = new Client("api/", "mailsrv-admin-csrf", loginForm);
  function statusLine() {
    return h("p", { class: "status", role: "status" });
  }
  function say(status, text, error = false) {
    status.classList.toggle("error", error);
    replace(status, text);
  }
  async function act(status, control, action) {
    if (control) {
      control.disabled = true;
    }
    say(status, "…");
    try {
      const done = await action();
      say(status, done ?? "Done.");
    } catch (e) {
      say(status, e instanceof ApiError ? e.message : String(e), true);
    } finally {
      if (control) {
        control.disabled = false;
      }
    }
  }
  function button(text, onclick, attributes = {}) {
    const b = h("button", { type: "button", ...attributes }, text);
    b.addEventListener("click", () => onclick(b));
    return b;
  }
  function table(headers, rows, attributes = {}) {
    return h(
      "table",
      attributes,
      h("thead", {}, h("tr", {}, ...headers.map((t) => h("th", {}, t)))),
      h("tbody", {}, ...rows.map((cells) => h("tr", {}, ...cells.map((c) => h("td", {}, c)))))
    );
  }
  function section(title, ...children) {
    return h("section", {}, h("h2", {}, title), ...children);
  }
  function when(seconds) {
    if (!seconds) {
      return "-";
    }
    return new Date(seconds * 1e3).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }
  function size(octets) {
    octets = octets ?? 0;
    if (octets < 1024) {
      return `${octets} B`;
    }
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let value = octets / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit++;
    }
    return `${value.toFixed(1)} ${units[unit]}`;
  }
  function field(label, attributes = {}) {
    const input = h("input", { type: "text", ...attributes });
    return { label: h("label", {}, label + " ", input), input };
  }
  function checkbox(label, checked) {
    const input = h("input", { type: "checkbox" });
    input.checked = checked;
    return { label: h("label", { class: "check" }, input, label), input };
  }
  function link(href, text) {
    return h("a", { href }, text);
  }
  function localTime(input) {
    return input.value ? new Date(input.value).getTime() / 1e3 : null;
  }
  function durationText(seconds) {
    if (!seconds) {
      return "not kept";
    }
    if (seconds % 86400 === 0) {
      return `${seconds / 86400} day(s)`;
    }
    if (seconds % 3600 === 0) {
      return `${seconds / 3600} hour(s)`;
    }
    return `${seconds} s`;
  }

  // web/ts/admin/accounts.ts
  var PAGE_SIZE = 50;
  async function accountsPage(page) {
    const search = field("Search", { name: "search", placeholder: "name or address" });
    const list = h("div", {});
    const pager = h("div", { class: "pager" });
    const status = statusLine();
    const anchors = [""];
    async function show(index) {
      const result = await client.call("Accounts", search.input.value.trim(), anchors[index] ?? "", PAGE_SIZE);
      replace(
        list,
        table(
          ["Account", "Addresses", "Quota", ""],
          result.accounts.map((a) => [
            link(`#account/${encodeURIComponent(a.account)}`, a.account),
            a.addresses.join(", "),
            a.quota === null || a.quota === void 0 ? "no limit" : size(a.quota),
            a.disabled ? h("span", { class: "badge warning" }, "disabled") : ""
          ]),
          { id: "accounts" }
        )
      );
      const buttons = [];
      if (index > 0) {
        buttons.push(button("Previous page", () => void show(index - 1)));
      }
      if (result.next) {
        anchors[index + 1] = result.next;
        buttons.push(button("Next page", () => void show(index + 1)));
      }
      replace(pager, ...buttons);
    }
    const searchForm = h("form", { class: "inline" }, search.label, h("button", { type: "submit" }, "Search"));
    searchForm.addEventListener("submit", (event) => {
      event.preventDefault();
      anchors.length = 1;
      void act(status, null, () => show(0));
    });
    const name = field("Account name", { name: "account", required: "" });
    const address = field("Address", { name: "address", required: "", placeholder: "user@domain" });
    const fullName = field("Full name", { name: "fullname" });
    const add = h("button", { type: "submit" }, "Add account");
    const created = h("div", { id: "account-created" });
    const addForm = h("form", { class: "inline", id: "account-add" }, name.label, address.label, fullName.label, add);
    const addStatus = statusLine();
    addForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void act(addStatus, add, async () => {
        const result = await client.call("AccountAdd", name.input.value.trim(), address.input.value.trim(), fullName.input.value.trim());
        replace(
          created,
          h("p", {}, `Account ${result.account} (${result.address}) created. Its password, shown only now: `),
          h("p", {}, h("code", { class: "password" }, result.password))
        );
        name.input.value = address.input.value = fullName.input.value = "";
        await show(0);
        return "Added.";
      });
    });
    replace(page, section("Accounts", searchForm, list, pager, status, h("h3", {}, "Add an account"), addForm, addStatus, created));
    await show(0);
  }
  function keyRows(keys, refresh, status) {
    if (keys.length === 0) {
      return h("p", { class: "hint" }, "No client-certificate keys.");
    }
    return table(
      ["Name", "Type", "Fingerprint", "Login address", ""],
      keys.map((k) => [
        k.name,
        k.key_type,
        h("code", {}, k.fingerprint),
        k.login_address,
        button(
          "Remove",
          (b) => act(status, b, async () => {
            await client.call("TLSPublicKeyRemove", k.fingerprint);
            await refresh();
            return "Key removed.";
          })
        )
      ])
    );
  }
  async function accountPage(page, account) {
    const status = statusLine();
    async function render() {
      const info = await client.call("Account", account);
      const listed = (await client.call("Accounts", account, "", 1)).accounts.find((a) => a.account === account);
      const disabled = listed?.disabled ?? false;
      const keys = await client.call("AccountTLSPublicKeys", account);
      const toggle = button(
        disabled ? "Enable" : "Disable",
        (b) => act(status, b, async () => {
          await client.call("AccountSetDisabled", account, !disabled);
          await render();
          return disabled ? "Enabled." : "Disabled: it cannot log in; its mail is still delivered.";
        })
      );
      const password = field("New password", { type: "password", autocomplete: "new-password", name: "password" });
      const setPassword = button(
        "Set password",
        (b) => act(status, b, async () => {
          await client.call("AccountSetPassword", account, password.input.value);
          password.input.value = "";
          return "Password set; the account's web sessions ended.";
        })
      );
      const quota = field("Quota in MiB (0: no limit, empty: the default)", { type: "number", min: "0", name: "quota" });
      const setQuota = button(
        "Save quota",
        (b) => act(status, b, async () => {
          const text = quota.input.value.trim();
          const limit = await client.call("AccountSetQuota", account, text === "" ? null : Math.round(Number(text) * 1024 * 1024));
          await render();
          return `Quota now ${limit === null || limit === void 0 ? "no limit" : size(limit)}.`;
        })
      );
      const newAddress = field("Address", { name: "address" });
      const addAddress = button(
        "Add address",
        (b) => act(status, b, async () => {
          await client.call("AccountAddressAdd", account, newAddress.input.value.trim());
          await render();
          return "Address added.";
        })
      );
      const fromid = info.addresses.map((a) => ({ address: a, box: checkbox(a, info.fromid_login_addresses.includes(a)) }));
      const saveFromid = button(
        "Save fromid addresses",
        (b) => act(status, b, async () => {
          await client.call("AccountFromIDAddressesSave", account, fromid.filter((f) => f.box.input.checked).map((f) => f.address));
          return "Saved.";
        })
      );
      const keep = field("Keep finished outgoing messages, days", { type: "number", min: "0", name: "keep" });
      keep.input.value = String(info.retired_keep / 86400);
      const saveKeep = button(
        "Save",
        (b) => act(status, b, async () => {
          const seconds = await client.call("AccountKeepRetiredSave", account, Math.round(Number(keep.input.value) * 86400));
          return `Retired messages kept: ${durationText(seconds)}.`;
        })
      );
      const keepHooks = field("Keep finished webhooks, days", { type: "number", min: "0", name: "keephooks" });
      const saveKeepHooks = button(
        "Save",
        (b) => act(status, b, async () => {
          const seconds = await client.call("AccountWebhookKeepRetiredSave", account, Math.round(Number(keepHooks.input.value) * 86400));
          return `Retired webhooks kept: ${durationText(seconds)}.`;
        })
      );
      const consequences = h("div", { id: "remove-consequences" });
      const remove = button(
        "Remove account…",
        (b) => act(status, b, async () => {
          const said = await client.call("AccountRemoveConsequences", account);
          replace(
            consequences,
            h(
              "ul",
              {},
              h("li", {}, `Mail to ${said.addresses.join(", ")} is refused ("no such user").`),
              said.aliases.length ? h("li", {}, `It stops receiving the mail of ${said.aliases.join(", ")}.`) : null,
              h("li", {}, `Its stored mail (${size(said.messages_size)}) stays on disk until deleted by hand.`),
              h("li", {}, `Its password and ${said.tls_public_keys} client key(s) are removed; its sessions end.`),
              h("li", {}, `${said.queued}${said.queued_more ? "+" : ""} outgoing message(s) still queued are delivered.`)
            ),
            button(
              `Remove ${account} now`,
              (b2) => act(status, b2, async () => {
                await client.call("AccountRemove", account);
                location.hash = "#accounts";
                return "Removed.";
              }),
              { class: "danger" }
            )
          );
          return "Read what removing does, then confirm.";
        })
      );
      replace(
        page,
        section(
          `Account ${info.account}`,
          h("p", {}, link("#accounts", "All accounts")),
          table(
            ["", ""],
            [
              ["Full name", info.full_name || "-"],
              ["Addresses", info.addresses.join(", ")],
              ["Aliases", info.aliases.map((a) => a.address).join(", ") || "-"],
              ["Stored", `${size(info.usage)} of ${info.quota === null || info.quota === void 0 ? "no limit" : size(info.quota)}`],
              ["State", disabled ? "disabled" : "enabled"]
            ],
            { class: "facts" }
          ),
          toggle,
          h("h3", {}, "Password"),
          h("div", { class: "inline" }, password.label, setPassword),
          h("h3", {}, "Quota"),
          h("div", { class: "inline" }, quota.label, setQuota),
          h("h3", {}, "Addresses"),
          table(
            ["Address", ""],
            info.addresses.map((a) => [
              a,
              info.addresses.length > 1 ? button(
                "Remove",
                (b) => act(status, b, async () => {
                  await client.call("AccountAddressRemove", account, a);
                  await render();
                  return "Address removed.";
                })
              ) : ""
            ])
          ),
          h("div", { class: "inline" }, newAddress.label, addAddress),
          h("h3", {}, "Fromid login addresses"),
          h("p", { class: "hint" }, "Submissions with these login addresses get a unique MAIL FROM per recipient."),
          ...fromid.map((f) => f.box.label),
          saveFromid,
          h("h3", {}, "Keep periods"),
          h("div", { class: "inline" }, keep.label, saveKeep),
          h("div", { class: "inline" }, keepHooks.label, saveKeepHooks),
          h("h3", {}, "TLS client-certificate keys"),
          keyRows(keys, render, status),
          h("h3", {}, "Remove"),
          remove,
          consequences,
          status
        )
      );
    }
    await render();
  }

  // web/ts/admin/aliases.ts
  function settingsBoxes(alias) {
    const postPublic = checkbox("Anyone may send to it (PostPublic)", alias?.post_public ?? false);
    const listMembers = checkbox("Members may see the member list (ListMembers)", alias?.list_members ?? false);
    const allowMsgFrom = checkbox("Members may send as the alias (AllowMsgFrom)", alias?.allow_msg_from ?? false);
    return {
      boxes: [postPublic.label, listMembers.label, allowMsgFrom.label],
      value: () => ({
        postPublic: postPublic.input.checked,
        listMembers: listMembers.input.checked,
        allowMsgFrom: allowMsgFrom.input.checked
      })
    };
  }
  function aliasBlock(alias, refresh) {
    const status = statusLine();
    const member = field("Member", { name: "member", placeholder: "an account's address" });
    const settings = settingsBoxes(alias);
    return h(
      "div",
      { class: "alias", "data-alias": alias.alias },
      h("h3", {}, alias.alias),
      h(
        "ul",
        { class: "members" },
        ...alias.members.map(
          (m) => h(
            "li",
            {},
            m + " ",
            button(
              "Remove",
              (b) => act(status, b, async () => {
                await client.call("AliasMemberRemove", alias.alias, m);
                await refresh();
              })
            )
          )
        )
      ),
      h(
        "div",
        { class: "inline" },
        member.label,
        button(
          "Add member",
          (b) => act(status, b, async () => {
            await client.call("AliasMemberAdd", alias.alias, member.input.value.trim());
            await refresh();
          })
        )
      ),
      ...settings.boxes,
      button(
        "Save settings",
        (b) => act(status, b, async () => {
          await client.call("AliasSettingsSave", alias.alias, settings.value());
          return "Saved.";
        })
      ),
      button(
        "Remove alias",
        (b) => act(status, b, async () => {
          await client.call("AliasRemove", alias.alias);
          await refresh();
        })
      ),
      status
    );
  }
  async function aliasesPage(page) {
    const list = h("div", { id: "aliases" });
    const address = field("Alias address", { name: "alias", required: "" });
    const members = field("Members, comma separated", { name: "members", size: "40" });
    const settings = settingsBoxes(null);
    const add = h("button", { type: "submit" }, "Add alias");
    const status = statusLine();
    const form = h("form", { id: "alias-add" }, address.label, members.label, ...settings.boxes, add, status);
    async function refresh() {
      const aliases = await client.call("Aliases");
      replace(list, ...aliases.length ? aliases.map((a) => aliasBlock(a, refresh)) : [h("p", { class: "hint" }, "No aliases.")]);
    }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void act(status, add, async () => {
        const memberList = members.input.value.split(",").map((m) => m.trim()).filter((m) => m);
        const info = await client.call("AliasAdd", address.input.value.trim(), memberList, settings.value());
        address.input.value = members.input.value = "";
        await refresh();
        return `Alias ${info.alias} added.`;
      });
    });
    replace(page, section("Aliases and lists", list, h("h3", {}, "Add an alias"), form));
    await refresh();
  }

  // web/ts/admin/domains.ts
  function dkimTable(records) {
    return table(
      ["Name", "TXT value"],
      records.map((r) => [h("code", {}, r.name + "."), h("code", { class: "wrap" }, r.value)])
    );
  }
  async function domainsPage(page) {
    const list = h("div", {});
    const status = statusLine();
    const added = h("div", {});
    const name = field("Domain", { name: "domain", required: "" });
    const separator = field("Catchall separator", { name: "separator", value: "+", size: "3" });
    const add = h("button", { type: "submit" }, "Add domain");
    const form = h("form", { class: "inline", id: "domain-add" }, name.label, separator.label, add);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void act(status, add, async () => {
        const result = await client.call("DomainAdd", name.input.value.trim(), separator.input.value);
        replace(added, h("h3", {}, `Publish the DKIM records of ${result.domain}:`), dkimTable(result.dkim ?? []));
        name.input.value = "";
        await refresh();
        return `Domain ${result.domain} added.`;
      });
    });
    async function refresh() {
      const domains = await client.call("Domains");
      replace(
        list,
        table(
          ["Domain", "Catchall separator", ""],
          domains.map((d) => [
            link(`#domain/${encodeURIComponent(d.domain)}`, d.unicode === d.domain ? d.domain : `${d.unicode} (${d.domain})`),
            d.separator || "none",
            link(`#domain/${encodeURIComponent(d.domain)}`, "DNS check")
          ]),
          { id: "domains" }
        )
      );
    }
    replace(page, section("Domains", list, h("h3", {}, "Add a domain"), form, status, added));
    await refresh();
  }
  var STATUS_TEXT = { ok: "OK", warning: "Warning", error: "Error" };
  async function domainPage(page, domain) {
    const status = statusLine();
    const checkArea = h("div", { id: "dns-check" }, h("p", {}, "Checking DNS…"));
    const dkim = h("div", {});
    const remove = button(
      "Remove domain",
      (b) => act(status, b, async () => {
        await client.call("DomainRemove", domain);
        location.hash = "#domains";
        return "Removed.";
      })
    );
    const recheck = button("Check again", (b) => act(status, b, runCheck));
    const reportsArea = h("div", { id: "domain-reports" }, h("p", {}, "Loading reports…"));
    const current = await client.call("Domain", domain);
    const settings = domainSettings(domain, current, status, () => void runCheck());
    replace(page, section(`Domain ${domain}`, h("p", {}, link("#domains", "All domains")), h("h3", {}, "Settings"), settings, h("h3", {}, "DNS check"), recheck, checkArea, h("h3", {}, "DKIM records"), dkim, h("h3", {}, "Reports received"), reportsArea, h("h3", {}, "Remove"), h("p", { class: "hint" }, "Refused while accounts, addresses or aliases use the domain."), remove, status));
    async function runCheck() {
      replace(checkArea, h("p", {}, "Checking DNS…"));
      const check = await client.call("DomainCheck", domain);
      replace(
        checkArea,
        h("p", { class: `verdict ${check.status}` }, `Overall: ${STATUS_TEXT[check.status] ?? check.status} (host ${check.hostname})`),
        table(
          ["", "Item", "Finding", "Published", "Record to add or change"],
          check.items.map((item) => [
            h("span", { class: `badge ${item.status}` }, STATUS_TEXT[item.status] ?? item.status),
            item.name,
            item.message,
            h("div", {}, ...(item.found ?? []).map((f) => h("code", { class: "wrap" }, f))),
            h("div", {}, ...(item.fix ?? []).map((f) => h("code", { class: "wrap" }, f)))
          ]),
          { class: "check" }
        )
      );
      return "DNS checked.";
    }
    const [records, received] = await Promise.all([client.call("DomainDKIMRecords", domain), client.call("DomainReports", domain, 30), runCheck()]);
    replace(dkim, dkimTable(records));
    replace(reportsArea, ...reportsView(received));
  }
  var MTA_STS_MODES = [
    ["", "server default"],
    ["none", "none (withdraw a policy)"],
    ["testing", "testing (reports only)"],
    ["enforce", "enforce"],
    ["off", "off (no policy served)"]
  ];
  function policyText(info) {
    const p = info.mta_sts;
    if (!p || p.mode === "off") {
      return "No MTA-STS policy is served for this domain.";
    }
    return `Served: mode ${p.mode}, max_age ${p.max_age} s, mx ${p.mx}. Publish _mta-sts.${info.domain}. TXT "v=STSv1; id=${p.id}" (the id changes with the policy).`;
  }
  function domainSettings(domain, current, status, saved) {
    const separator = field("Catchall separator (empty: none)", { name: "separator", size: "3", value: current.separator });
    const dmarc = field("DMARC reports to", { name: "dmarc_reports", size: "30", value: current.dmarc_reports ?? "", placeholder: `admin+dmarc@${domain}` });
    const tlsrpt = field("TLS reports to", { name: "tlsrpt_reports", size: "30", value: current.tlsrpt_reports ?? "", placeholder: `admin+tls@${domain}` });
    const mode = h("select", { name: "mta_sts_mode" }, ...MTA_STS_MODES.map(([value, text]) => h("option", { value }, text)));
    mode.value = current.mta_sts_mode ?? "";
    const maxAge = field("max_age in seconds (empty: server default)", { name: "mta_sts_max_age", size: "9", inputmode: "numeric", value: current.mta_sts_max_age ? String(current.mta_sts_max_age) : "" });
    const policy = h("p", { class: "hint", id: "mta-sts-policy" }, policyText(current));
    const save = h("button", { type: "submit" }, "Save settings");
    const form = h(
      "form",
      { id: "domain-settings" },
      h("div", { class: "inline" }, separator.label),
      h("div", { class: "inline" }, dmarc.label, tlsrpt.label),
      h("p", { class: "hint" }, `Reports to an address of an account here are filed in its "DMARC reports" / "TLS reports" mailbox; use an address of its own, not the account's primary one. An address elsewhere needs that domain's consent for DMARC (RFC 7489 §7.1; the DNS check looks).`),
      h("div", { class: "inline" }, h("label", {}, "MTA-STS mode ", mode), maxAge.label),
      policy,
      save
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void act(status, save, async () => {
        const age = maxAge.input.value.trim();
        if (age !== "" && !/^\d+$/.test(age)) {
          throw new Error("max_age: a number of seconds, or empty for the server's default");
        }
        const info = await client.call("DomainSettingsSave", {
          domain,
          separator: separator.input.value,
          dmarc_reports: dmarc.input.value.trim(),
          tlsrpt_reports: tlsrpt.input.value.trim(),
          mta_sts_mode: mode.value,
          mta_sts_max_age: age === "" ? 0 : Number(age)
        });
        replace(policy, policyText(info));
        saved();
        return "Settings saved.";
      });
    });
    return form;
  }
  function day(seconds) {
    return seconds ? new Date(seconds * 1e3).toISOString().slice(0, 10) : "?";
  }
  function reportsView(r) {
    const dmarc = r.dmarc.map((x) => {
      const failing = (x.report.sources ?? []).filter((s) => s.dkim !== "pass" && s.spf !== "pass");
      return [
        `${day(x.report.begin)} – ${day(x.report.end)}`,
        x.report.org,
        String(x.report.passed),
        h("span", { class: x.report.failed ? "badge error" : "" }, String(x.report.failed)),
        h("div", {}, ...failing.map((s) => h("code", {}, `${s.ip} ×${s.count} (${s.disposition})`)))
      ];
    });
    const tls = r.tlsrpt.flatMap(
      (x) => x.report.policies.map((p) => [
        `${day(x.report.begin)} – ${day(x.report.end)}`,
        x.report.org,
        p.policy_type,
        String(p.successful),
        h("span", { class: p.failed ? "badge error" : "" }, String(p.failed)),
        Object.entries(p.failures ?? {}).map(([kind, n]) => `${kind} ×${n}`).join(", ")
      ])
    );
    return [
      h("p", { class: "hint" }, "From the DMARC and TLS reporting addresses above: each report is also in its account's mailbox."),
      h("p", { id: "dmarc-totals" }, `DMARC: ${r.dmarc_passed} messages passed, ${r.dmarc_failed} failed (${r.dmarc.length} reports).`),
      dmarc.length ? table(["Period", "Reporter", "Passed", "Failed", "Failing sources"], dmarc, { id: "dmarc-reports" }) : h("p", {}, "No DMARC reports yet."),
      h("p", { id: "tls-totals" }, `TLS: ${r.tls_successful} sessions succeeded, ${r.tls_failed} failed (${r.tlsrpt.length} reports).`),
      tls.length ? table(["Period", "Reporter", "Policy", "Succeeded", "Failed", "Failures"], tls, { id: "tls-reports" }) : h("p", {}, "No TLS reports yet.")
    ];
  }

  // web/ts/admin/queue.ts
  var transportNames = null;
  function transports() {
    transportNames ??= client.call("Transports").then((list) => list.map((t) => t.name));
    return transportNames;
  }
  function transportSelect(name, first) {
    const select = h("select", { name }, h("option", { value: first[0] }, first[1]));
    void transports().then((names) => select.append(...names.map((n) => h("option", { value: n }, n))));
    return select;
  }
  function filters(onChange, withNext) {
    const transport = transportSelect("transport", ["", "any transport"]);
    const account = field("Account", { name: "account", size: "10" });
    const sender = field("Sender", { name: "sender", placeholder: "address or @domain", size: "16" });
    const domain = field("Recipient domain", { name: "domain", size: "16" });
    const held = h("select", { name: "held" }, h("option", { value: "" }, "held or not"), h("option", { value: "yes" }, "held"), h("option", { value: "no" }, "not held"));
    const after = h("input", { type: "datetime-local", name: "next_after" });
    const before = h("input", { type: "datetime-local", name: "next_before" });
    const sort = h(
      "select",
      { name: "sort" },
      h("option", { value: "id" }, "queued (id)"),
      h("option", { value: "created" }, "queued time"),
      ...withNext ? [h("option", { value: "next_attempt" }, "next attempt")] : []
    );
    const descending = checkbox("newest first", false);
    const limit = h("select", { name: "limit" }, ...["20", "50", "100", "500"].map((n) => h("option", { value: n, selected: n === "50" }, n)));
    const form = h(
      "form",
      { class: "filters" },
      account.label,
      sender.label,
      domain.label,
      h("label", {}, held),
      h("label", {}, "Transport ", transport),
      ...withNext ? [h("label", {}, "Next attempt after ", after), h("label", {}, "before ", before)] : [],
      h("label", {}, "Sort ", sort),
      descending.label,
      h("label", {}, "Per page ", limit),
      h("button", { type: "submit" }, "Apply")
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      onChange();
    });
    return {
      form,
      query: () => {
        const q = { sort: sort.value, descending: descending.input.checked, limit: Number(limit.value) };
        if (account.input.value.trim()) q.account = account.input.value.trim();
        if (sender.input.value.trim()) q.sender = sender.input.value.trim();
        const d = domain.input.value.trim().replace(/^@/, "");
        if (d) q.recipient = "@" + d;
        if (held.value) q.held = held.value === "yes";
        if (transport.value) q.transport = transport.value;
        const a = localTime(after);
        const b = localTime(before);
        if (withNext && a !== null) q.next_after = a;
        if (withNext && b !== null) q.next_before = b;
        return q;
      }
    };
  }
  function selectionOf(q) {
    const { sort: _s, descending: _d, after: _a, limit: _l, ...selection } = q;
    return selection;
  }
  async function historyPanel(panel, id) {
    const history = await client.call("QueueHistory", id);
    const m = history.message;
    replace(
      panel,
      h("h3", {}, `Message ${m.id}`),
      h("p", {}, `From ${m.from || "<>"} (account ${m.account || "-"}), ${size(m.size)}, queued ${when(m.created)}${m.retired_until ? `, retired until ${when(m.retired_until)}` : ""}`),
      table(
        ["Recipient", "Status", "Attempts", "Next attempt", "Transport", "Last error"],
        (m.recipients ?? []).map((r) => [
          r.address,
          r.status,
          String(r.attempts),
          r.status === "queued" ? when(r.next_attempt) : "-",
          (r.transport || "-") + (r.transport_fixed ? " (set by an administrator)" : ""),
          r.last_error
        ])
      ),
      history.attempts.length ? table(
        ["Time", "Recipient", "Transport", "Host", "Code", "Reply"],
        history.attempts.map((a) => [when(a.time), a.recipient, a.transport || "-", a.host || "-", String(a.code), a.reply]),
        { class: "history" }
      ) : h("p", { class: "hint" }, "No delivery attempt yet.")
    );
  }
  function messageList(load, selectable, history) {
    const body = h("div", {});
    const pager = h("div", { class: "pager" });
    const anchors = [null];
    let boxes = [];
    let current = {};
    async function show(query, index) {
      current = query;
      const result = await load({ ...query, after: anchors[index] ?? null });
      boxes = [];
      const all = h("input", { type: "checkbox", title: "select the whole page" });
      all.addEventListener("change", () => boxes.forEach((b) => b.input.checked = all.checked));
      replace(
        body,
        table(
          [...selectable ? [""] : [], "Id", "From", "Account", "Recipients", "Size", "Queued", selectable ? "Next attempt" : "Kept until", ""],
          result.messages.map((m) => {
            const box = h("input", { type: "checkbox", "data-id": String(m.id) });
            boxes.push({ id: m.id, input: box });
            return [
              ...selectable ? [box] : [],
              String(m.id),
              m.from || "<>",
              m.account || "-",
              (m.recipients ?? []).map((r) => `${r.address} (${r.status}${r.transport ? `, via ${r.transport}` : ""})`).join(", "),
              size(m.size),
              when(m.created),
              selectable ? when(m.next_attempt) + (m.held ? " HELD" : "") + (m.requiretls ? " TLS" : "") : when(m.retired_until),
              button("History", () => void historyPanel(history, m.id))
            ];
          }),
          { class: "messages" }
        ),
        selectable ? h("label", { class: "check" }, all, "Select the whole page") : null,
        h("p", { class: "hint" }, `Page ${index + 1}: ${result.messages.length} message(s)${result.next ? "; more follow" : ""}.`)
      );
      const buttons = [];
      if (index > 0) buttons.push(button("Previous page", () => void show(current, index - 1)));
      if (result.next) {
        anchors[index + 1] = result.next;
        buttons.push(button("Next page", () => void show(current, index + 1)));
      }
      replace(pager, ...buttons);
    }
    return {
      element: h("div", {}, body, pager),
      start: (q) => {
        anchors.length = 1;
        return show(q, 0);
      },
      selected: () => boxes.filter((b) => b.input.checked).map((b) => b.id)
    };
  }
  async function queuePage(page) {
    const status = statusLine();
    const history = h("div", { id: "history" });
    const list = messageList((q) => client.call("QueueList", q), true, history);
    const f = filters(() => void act(status, null, () => list.start(f.query())), true);
    const scope = h(
      "select",
      { name: "scope" },
      h("option", { value: "selected" }, "the selected messages"),
      h("option", { value: "filter" }, "every message matching the filter")
    );
    function target() {
      if (scope.value === "filter") {
        return selectionOf(f.query());
      }
      const ids = list.selected();
      if (ids.length === 0) {
        throw new Error("select messages first, or choose every message matching the filter");
      }
      return { ids };
    }
    async function done(text) {
      await list.start(f.query());
      return text;
    }
    const reason = field("Reason", { name: "reason", size: "20" });
    const newTransport = transportSelect("to", ["routes", "as the routes choose"]);
    const nextTime = h("input", { type: "datetime-local", name: "next" });
    const actions = h(
      "div",
      { class: "actions" },
      h("label", {}, "Apply to ", scope),
      button("Hold", (b) => act(status, b, async () => done(`${await client.call("QueueHold", target())} message(s) held.`))),
      button("Release", (b) => act(status, b, async () => done(`${await client.call("QueueRelease", target())} message(s) released.`))),
      button("Retry now", (b) => act(status, b, async () => done(`${await client.call("QueueRetry", target())} recipient(s) due now.`))),
      h("span", {}, nextTime),
      button(
        "Set next attempt",
        (b) => act(status, b, async () => {
          const at = localTime(nextTime);
          if (at === null) throw new Error("choose a time first");
          return done(`${await client.call("QueueNextAttempt", { ...target(), when: at })} recipient(s) rescheduled.`);
        })
      ),
      button("Require TLS", (b) => act(status, b, async () => done(`${await client.call("QueueRequireTLS", { ...target(), required: true })} message(s) changed.`))),
      button("TLS optional", (b) => act(status, b, async () => done(`${await client.call("QueueRequireTLS", { ...target(), required: false })} message(s) changed.`))),
      h("span", {}, newTransport),
      button(
        "Change transport",
        (b) => act(status, b, async () => done(`${await client.call("QueueSetTransport", { ...target(), to: newTransport.value })} recipient(s) changed.`))
      ),
      reason.label,
      button(
        "Drop with DSN",
        (b) => act(status, b, async () => done(`${await client.call("QueueDrop", { ...target(), dsn: true, reason: reason.input.value, all: scope.value === "filter" })} message(s) failed; DSNs go out.`))
      ),
      button(
        "Drop silently",
        (b) => act(status, b, async () => done(`${await client.call("QueueDrop", { ...target(), all: scope.value === "filter" })} message(s) dropped.`)),
        { class: "danger" }
      )
    );
    replace(page, section("Queue", f.form, list.element, actions, status, history));
    await list.start(f.query());
  }
  async function retiredPage(page) {
    const status = statusLine();
    const history = h("div", { id: "history" });
    const list = messageList((q) => client.call("RetiredList", q), false, history);
    const f = filters(() => void act(status, null, () => list.start(f.query())), false);
    const purge = button(
      "Forget those past their keep period",
      (b) => act(status, b, async () => {
        const n = await client.call("RetiredPurge", {});
        await list.start(f.query());
        return `${n} retired message(s) forgotten.`;
      })
    );
    replace(page, section("Retired messages", h("p", { class: "hint" }, "Finished messages, kept with their attempts for their account's keep period."), f.form, list.element, purge, status, history));
    await list.start(f.query());
  }
  async function holdRulesPage(page) {
    const list = h("div", { id: "holdrules" });
    const status = statusLine();
    const inputs = {
      account: field("Account", { name: "account", size: "10" }),
      sender_domain: field("Sender domain", { name: "sender_domain", size: "14" }),
      sender: field("Sender", { name: "sender", size: "14" }),
      recipient_domain: field("Recipient domain", { name: "recipient_domain", size: "14" }),
      recipient: field("Recipient", { name: "recipient", size: "14" })
    };
    async function refresh() {
      const rules = await client.call("HoldRules");
      replace(
        list,
        rules.length ? table(
          ["Id", "Account", "Sender domain", "Sender", "Recipient domain", "Recipient", ""],
          rules.map((r) => [
            String(r.id),
            r.account || "any",
            r.sender_domain || "any",
            r.sender || "any",
            r.recipient_domain || "any",
            r.recipient || "any",
            button(
              "Remove",
              (b) => act(status, b, async () => {
                await client.call("HoldRuleRemove", r.id ?? 0);
                await refresh();
              })
            )
          ])
        ) : h("p", { class: "hint" }, "No hold rules: new messages are delivered at once.")
      );
    }
    const add = h("button", { type: "submit" }, "Add rule");
    const form = h("form", { class: "inline" }, ...Object.values(inputs).map((i) => i.label), add);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void act(status, add, async () => {
        const rule = {};
        for (const [key, value] of Object.entries(inputs)) {
          ;
          rule[key] = value.input.value.trim();
        }
        await client.call("HoldRuleAdd", rule);
        await refresh();
        return "Rule added: matching messages queued from now on are held.";
      });
    });
    replace(page, section("Hold rules", h("p", { class: "hint" }, "A message queued that matches every non-empty field of a rule is held until released. An empty rule holds every message."), list, form, status));
    await refresh();
  }

  // web/ts/admin/server.ts
  async function overviewPage(page) {
    const counts = await client.call("ServerCounts");
    replace(
      page,
      section(
        "Overview",
        table(
          ["", ""],
          [
            [link("#domains", "Domains"), String(counts.domains)],
            [link("#accounts", "Accounts"), String(counts.accounts)],
            [link("#aliases", "Aliases"), String(counts.aliases)],
            [link("#queue", "Messages queued"), String(counts.queued)],
            ["… of which held", String(counts.held)],
            [link("#retired", "Retired messages"), String(counts.retired)]
          ],
          { id: "counts", class: "facts" }
        )
      )
    );
  }
  async function serverPage(page) {
    const [listeners, errors, config] = await Promise.all([
      client.call("ServerListeners"),
      client.call("ServerErrors", 100),
      client.call("ServerConfig")
    ]);
    const now = Date.now() / 1e3;
    replace(
      page,
      section(
        "Server",
        h("p", {}, `Host name ${listeners.hostname}`),
        h("h3", {}, "Listeners"),
        table(
          ["Name", "Protocol", "Address", "Port", "TLS"],
          listeners.listeners.map((l) => [l.name, l.protocol, l.address, String(l.port), l.tls]),
          { id: "listeners" }
        ),
        h("h3", {}, "TLS certificates"),
        table(
          ["File", "Names", "Issuer", "Valid until", ""],
          listeners.certificates.map((c) => [
            h("code", {}, c.file),
            (c.names ?? []).join(", "),
            (c.issuer ?? "") + (c.self_signed ? " (self-signed)" : ""),
            when(c.not_after),
            c.error ? h("span", { class: "badge error" }, c.error) : (c.not_after ?? 0) < now ? h("span", { class: "badge error" }, "expired") : (c.not_after ?? 0) - now < 14 * 86400 ? h("span", { class: "badge warning" }, "expires soon") : h("span", { class: "badge ok" }, "valid")
          ]),
          { id: "certificates" }
        ),
        h("h3", {}, "Recent warnings and errors"),
        errors.length ? table(
          ["Time", "Level", "Where", "Message"],
          errors.map((e) => [e.time, e.level, e.namespace, h("pre", {}, e.text)]),
          { id: "errors" }
        ) : h("p", { class: "hint" }, "None since the server started."),
        h("h3", {}, "Configuration as loaded (secrets hidden)"),
        h("p", {}, h("code", {}, config.file)),
        h("pre", { id: "config" }, JSON.stringify(config.static, null, 2))
      )
    );
  }

  // web/ts/admin/webhooks.ts
  function hookList(retired, status) {
    const body = h("div", {});
    const pager = h("div", { class: "pager" });
    const anchors = [0];
    let account = "";
    let boxes = [];
    async function show(index) {
      const query = { after: anchors[index] ?? 0, limit: 50 };
      if (account) query.account = account;
      const page = retired ? await client.call("WebhookRetired", query) : await client.call("WebhookQueue", query);
      boxes = [];
      replace(
        body,
        page.hooks.length ? table(
          [...retired ? [] : [""], "Id", "Account", "Kind", "Event", "Queue id", "Recipient", "Attempts", retired ? "Outcome" : "Next attempt", "Last result"],
          page.hooks.map((hook) => {
            const box = h("input", { type: "checkbox" });
            boxes.push({ id: hook.id, input: box });
            return [
              ...retired ? [] : [box],
              String(hook.id),
              hook.account,
              hook.kind,
              hook.event,
              String(hook.queue_id),
              hook.recipient,
              String(hook.attempts),
              retired ? hook.outcome : when(hook.next_attempt),
              hook.last_result
            ];
          })
        ) : h("p", { class: "hint" }, retired ? "No retired webhooks." : "No webhooks waiting.")
      );
      const buttons = [];
      if (index > 0) buttons.push(button("Previous page", () => void show(index - 1)));
      if (page.next !== null && page.next !== void 0) {
        anchors[index + 1] = page.next;
        buttons.push(button("Next page", () => void show(index + 1)));
      }
      replace(pager, ...buttons);
    }
    return {
      element: h("div", {}, body, pager),
      start: (forAccount) => {
        account = forAccount;
        anchors.length = 1;
        return act(status, null, () => show(0));
      },
      selection: () => {
        const ids = boxes.filter((b) => b.input.checked).map((b) => b.id);
        if (ids.length) return { ids };
        if (account) return { account };
        throw new Error("select webhooks, or filter by an account to act on all of its");
      }
    };
  }
  async function webhooksPage(page) {
    const status = statusLine();
    const queued = hookList(false, status);
    const retired = hookList(true, status);
    const account = field("Account", { name: "account", size: "12" });
    const form = h("form", { class: "inline" }, account.label, h("button", { type: "submit" }, "Show"));
    async function reload() {
      await queued.start(account.input.value.trim());
      await retired.start(account.input.value.trim());
    }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void reload();
    });
    const retry = button(
      "Retry now",
      (b) => act(status, b, async () => {
        const n = await client.call("WebhookRetry", queued.selection());
        await reload();
        return `${n} webhook(s) due now.`;
      })
    );
    const drop = button(
      "Drop",
      (b) => act(status, b, async () => {
        const n = await client.call("WebhookDrop", queued.selection());
        await reload();
        return `${n} webhook(s) dropped.`;
      })
    );
    replace(page, section("Webhooks", form, h("h3", {}, "Waiting to be called"), queued.element, retry, drop, status, h("h3", {}, "Retired"), retired.element));
    await reload();
  }

  // web/ts/admin/main.ts
  var PAGES = [
    ["", "Overview", overviewPage],
    ["domains", "Domains", domainsPage],
    ["accounts", "Accounts", accountsPage],
    ["aliases", "Aliases", aliasesPage],
    ["queue", "Queue", queuePage],
    ["holdrules", "Hold rules", holdRulesPage],
    ["retired", "Retired", retiredPage],
    ["webhooks", "Webhooks", webhooksPage],
    ["server", "Server", serverPage]
  ];
  var DETAIL = { domain: domainPage, account: accountPage };
  async function route() {
    const page = document.getElementById("page");
    const nav = document.getElementById("nav");
    if (!page || !nav) {
      return;
    }
    const [name = "", ...rest] = location.hash.replace(/^#/, "").split("/");
    const argument = decodeURIComponent(rest.join("/"));
    replace(nav, ...PAGES.map(([key, title]) => h("a", { href: `#${key}`, class: key === name ? "current" : "" }, title)));
    const show = DETAIL[name] ?? PAGES.find(([key]) => key === name)?.[2] ?? overviewPage;
    replace(page, h("p", {}, "Loading…"));
    try {
      await show(page, argument);
    } catch (e) {
      replace(page, h("p", { class: "error" }, e instanceof ApiError ? e.message : String(e)));
    }
  }
  async function start() {
    document.getElementById("logout")?.addEventListener("click", async () => {
      await client.logout();
      location.hash = "";
      location.reload();
    });
    window.addEventListener("hashchange", () => void route());
    const who = await client.call("Whoami");
    replace(document.getElementById("who") ?? document.body, `Logged in as ${who}`);
    await route();
  }
  void start();
})();
