// The account page's connection to its JSON API: calls with the CSRF header, the login form on
// user:noAuth / user:badAuth (then the failed call is retried), and the CSRF token for the
// plain form posts (export) and the upload (import).

import { h } from "./dom";

export class APIError extends Error {
	constructor(
		public code: string,
		message: string,
	) {
		super(message);
	}
}

const CSRF_KEY = "mailsrv-account-csrf";

export function csrfToken(): string {
	return localStorage.getItem(CSRF_KEY) ?? "";
}

let loginWaiters: (() => void)[] = [];

async function post(method: string, params: unknown[]): Promise<unknown> {
	const response = await fetch(`api/${method}`, {
		method: "POST",
		headers: { "content-type": "application/json", "x-mailsrv-csrf": csrfToken() },
		body: JSON.stringify({ params }),
		credentials: "same-origin",
	});
	let body: { result?: unknown; error?: { code: string; message: string } };
	try {
		body = (await response.json()) as typeof body;
	} catch {
		throw new APIError("server:error", `HTTP ${response.status} without a JSON answer`);
	}
	if (body.error) throw new APIError(body.error.code, body.error.message);
	return body.result;
}

function isAuthError(e: unknown): boolean {
	return e instanceof APIError && (e.code === "user:noAuth" || e.code === "user:badAuth");
}

// call("Account") -> the method's result; shows the login form and retries on an auth error.
export async function call<T>(method: string, ...params: unknown[]): Promise<T> {
	for (;;) {
		try {
			return (await post(method, params)) as T;
		} catch (e) {
			if (!isAuthError(e)) throw e;
			await loggedIn();
		}
	}
}

// Resolves once the user has logged in through the login form (one form for all waiting calls).
export function loggedIn(): Promise<void> {
	return new Promise((resolve) => {
		loginWaiters.push(resolve);
		if (loginWaiters.length === 1) showLogin();
	});
}

function showLogin(message = ""): void {
	const status = h("p", { class: "error", role: "alert" }, message);
	const username = h("input", { type: "text", name: "username", autocomplete: "username", required: true });
	const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
	const button = h("button", { type: "submit" }, "Log in");
	const form = h(
		"form",
		{ id: "login", class: "login" },
		h("h1", null, "Account login"),
		h("label", null, "Email address", username),
		h("label", null, "Password", password),
		button,
		status,
	);
	const overlay = h("div", { class: "overlay" }, form);
	form.addEventListener("submit", (e) => {
		e.preventDefault();
		button.disabled = true;
		void (async () => {
			try {
				const token = (await post("LoginPrep", [])) as string;
				const csrf = (await post("Login", [token, username.value, password.value])) as string;
				localStorage.setItem(CSRF_KEY, csrf);
				overlay.remove();
				const waiters = loginWaiters;
				loginWaiters = [];
				for (const w of waiters) w();
			} catch (err) {
				status.textContent = err instanceof Error ? err.message : String(err);
				button.disabled = false;
				password.value = "";
				password.focus();
			}
		})();
	});
	document.body.appendChild(overlay);
	username.focus();
}

export async function logout(): Promise<void> {
	try {
		await post("Logout", []);
	} finally {
		localStorage.removeItem(CSRF_KEY);
	}
}
