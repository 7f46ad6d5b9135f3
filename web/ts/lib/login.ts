// The login form every interface shows when its API says user:noAuth or user:badAuth.
import { ApiError, type LoginPrompt } from "./api"
import { h, replace } from "./dom"

export const loginForm: LoginPrompt = (login, reason) =>
	new Promise((resolve) => {
		const username = h("input", { name: "username", autocomplete: "username", required: true })
		const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })
		const status = h("p", { class: "login-status", role: "status" }, reason === "not logged in" ? "" : reason)
		const submit = h("button", { type: "submit" }, "Log in")
		const form = h(
			"form",
			{ class: "login" },
			h("h1", {}, "Log in"),
			h("label", {}, "Email address or account", username),
			h("label", {}, "Password", password),
			submit,
			status,
		)
		form.addEventListener("submit", async (event) => {
			event.preventDefault()
			submit.disabled = true
			replace(status, "Logging in…")
			try {
				await login(username.value, password.value)
				overlay.remove()
				resolve()
			} catch (e) {
				replace(status, e instanceof ApiError ? e.message : String(e))
				password.value = ""
				password.focus()
			} finally {
				submit.disabled = false
			}
		})
		const overlay = h("div", { class: "login-overlay" }, form)
		document.body.appendChild(overlay)
		username.focus()
	})
