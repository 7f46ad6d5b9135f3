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

  // tests/web/example_ts/main.ts
  var client = new Client("api/", "mailsrv-csrf-example", loginForm);
  async function show() {
    const main = h("main", { id: "main" }, "Loading…");
    document.body.appendChild(main);
    const who = await client.call("Whoami");
    const items = await client.call("Echo", { item: { name: "x", count: 2 } }, 2);
    const logout = h("button", { id: "logout" }, "Log out");
    logout.addEventListener("click", async () => {
      await client.logout();
      location.reload();
    });
    replace(main, h("p", { id: "who" }, `Logged in as ${who}`), h("p", { id: "items" }, `${items.length} items`), logout);
  }
  show();
})();
