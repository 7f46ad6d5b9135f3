// The client of an interface's JSON API (mailsrv/web/jsonapi.py): POST api/<Method> with
// {"params": [...]}, the CSRF token of the session as the x-mailsrv-csrf header. On user:noAuth or
// user:badAuth it asks for a login (one form for all calls waiting) and then retries the calls.
// Typed by the interface's `paths` from api.gen.ts (openapi-typescript), so a method's parameters
// and result are checked against the server's definitions.

export type MethodName<P> = keyof P extends infer K ? (K extends `/${infer N}` ? N : never) : never
export type Params<P, M extends MethodName<P>> = P[`/${M}` & keyof P] extends {
	post: { requestBody: { content: { "application/json": { params: infer A } } } }
}
	? unknown[] extends A
		? [] // no parameters: the document says an empty array
		: A extends unknown[]
			? A
			: never
	: never
export type Result<P, M extends MethodName<P>> = P[`/${M}` & keyof P] extends {
	post: { responses: { 200: { content: { "application/json": { result: infer R } } } } }
}
	? R
	: never

export class ApiError extends Error {
	constructor(
		readonly code: string,
		message: string,
		readonly field?: string,
	) {
		super(message)
	}
}

// Asks the user for credentials; resolves once `login` succeeded (it may be called several times).
export type LoginPrompt = (login: (username: string, password: string) => Promise<void>, reason: string) => Promise<void>

const AUTH_CODES = new Set(["user:noAuth", "user:badAuth"])

export class Client<P extends object> {
	private pendingLogin: Promise<void> | null = null

	// base: the API's URL ("api/" relative to the page); storageKey: where the CSRF token is kept.
	constructor(
		private readonly base: string,
		private readonly storageKey: string,
		private readonly prompt: LoginPrompt,
	) {}

	get csrf(): string {
		return localStorage.getItem(this.storageKey) ?? ""
	}

	async call<M extends MethodName<P>>(method: M, ...params: Params<P, M>): Promise<Result<P, M>> {
		for (;;) {
			try {
				return (await this.raw(method, params)) as Result<P, M>
			} catch (e) {
				if (!(e instanceof ApiError) || !AUTH_CODES.has(e.code) || method === "Login") {
					throw e
				}
				await this.loginOnce(e.message)
			}
		}
	}

	async logout(): Promise<void> {
		try {
			await this.raw("Logout", [])
		} finally {
			localStorage.removeItem(this.storageKey)
		}
	}

	private loginOnce(reason: string): Promise<void> {
		if (this.pendingLogin === null) {
			this.pendingLogin = this.prompt(async (username, password) => {
				const token = (await this.raw("LoginPrep", [])) as string
				const csrf = (await this.raw("Login", [token, username, password])) as string
				localStorage.setItem(this.storageKey, csrf)
			}, reason).finally(() => {
				this.pendingLogin = null
			})
		}
		return this.pendingLogin
	}

	private async raw(method: string, params: unknown[]): Promise<unknown> {
		const response = await fetch(this.base + method, {
			method: "POST",
			headers: { "content-type": "application/json", "x-mailsrv-csrf": this.csrf },
			body: JSON.stringify({ params }),
			credentials: "same-origin",
		})
		let answer: { result?: unknown; error?: { code: string; message: string; field?: string } }
		try {
			answer = await response.json()
		} catch {
			throw new ApiError("server:error", `HTTP ${response.status} ${response.statusText}`)
		}
		if (answer.error) {
			throw new ApiError(answer.error.code, answer.error.message, answer.error.field)
		}
		return answer.result
	}
}
