// The account API's client (web/ts/lib/api.ts): typed by the server's OpenAPI document
// (api.gen.ts), the CSRF header on every call, the login form on user:noAuth/badAuth.

import { Client } from "../lib/api"
import { loginForm } from "../lib/login"
import type { components, paths } from "./api.gen"

export const client = new Client<paths>("api/", "mailsrv-account-csrf", loginForm)

export type Schemas = components["schemas"]
