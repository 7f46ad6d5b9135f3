// The webmail's connection to its JSON API: calls with the CSRF header; on user:noAuth or
// user:badAuth the login form, then the failed calls are retried. (To be replaced by the
// shared client of web/ts/lib when it lands.)
import { h } from "./dom"

export class APIError extends Error {
  constructor(public code: string, message: string) { super(message) }
}

const CSRF_KEY = "mailsrv-webmail-csrf"

export function csrfToken(): string {
  return localStorage.getItem(CSRF_KEY) ?? ""
}

async function post(method: string, params: unknown[]): Promise<unknown> {
  let response: Response
  try {
    response = await fetch(`api/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-mailsrv-csrf": csrfToken() },
      body: JSON.stringify({ params }),
      credentials: "same-origin",
    })
  } catch {
    throw new APIError("client:network", "The server cannot be reached")
  }
  let body: { result?: unknown, error?: { code: string, message: string } }
  try {
    body = await response.json() as typeof body
  } catch {
    throw new APIError("server:error", `HTTP ${response.status}`)
  }
  if (body.error) throw new APIError(body.error.code, body.error.message)
  return body.result
}

let loggingIn: Promise<void> | null = null

function loginForm(message: string): Promise<void> {
  return new Promise(resolve => {
    const error = h("p", { className: "error", id: "login-error" }, message)
    const username = h("input", { name: "username", id: "login-username", autocomplete: "username", required: true })
    const password = h("input", { name: "password", id: "login-password", type: "password", autocomplete: "current-password", required: true })
    const form = h("form", { id: "login", className: "dialog login", "aria-label": "Log in" },
      h("h2", null, "Mail: log in"), error,
      h("label", null, "Email address or account", username),
      h("label", null, "Password", password),
      h("div", { className: "buttons" }, h("button", { type: "submit", id: "login-submit" }, "Log in")))
    form.addEventListener("submit", e => {
      e.preventDefault()
      error.textContent = ""
      void (async () => {
        try {
          const token = await post("LoginPrep", []) as string
          const csrf = await post("Login", [token, username.value, password.value]) as string
          localStorage.setItem(CSRF_KEY, csrf)
          form.remove()
          resolve()
        } catch (err) {
          error.textContent = err instanceof Error ? err.message : String(err)
          password.select()
        }
      })()
    })
    document.body.appendChild(form)
    username.focus()
  })
}

export async function call<R>(method: string, ...params: unknown[]): Promise<R> {
  for (;;) {
    try {
      return await post(method, params) as R
    } catch (e) {
      if (!(e instanceof APIError) || (e.code !== "user:noAuth" && e.code !== "user:badAuth")) throw e
      const shown = e.code === "user:badAuth" && csrfToken() ? "Your session ended, please log in again." : ""
      loggingIn ??= loginForm(shown).finally(() => { loggingIn = null })
      await loggingIn
    }
  }
}

export async function logout(): Promise<void> {
  try { await post("Logout", []) } finally {
    localStorage.removeItem(CSRF_KEY)
    location.reload()
  }
}
