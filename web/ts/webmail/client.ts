// The webmail's API client: web/ts/lib's Client (CSRF header, the shared login form on
// user:noAuth/user:badAuth, retry), typed by the generated `paths`.
import { Client } from "../lib/api"
import { loginForm } from "../lib/login"
import type { paths } from "./api.gen"

export const client = new Client<paths>("api/", "mailsrv-webmail-csrf", loginForm)

export function csrfToken(): string {
  return client.csrf
}

export async function logout(): Promise<void> {
  await client.logout()
  location.reload()
}
