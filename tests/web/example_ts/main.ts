// The framework's test page (tests/web/test_browser.py): calls the example API, which asks for a login first.
import { Client } from "../../../web/ts/lib/api"
import { h, replace } from "../../../web/ts/lib/dom"
import { loginForm } from "../../../web/ts/lib/login"
import type { paths } from "./api.gen"

const client = new Client<paths>("api/", "mailsrv-csrf-example", loginForm)

async function show(): Promise<void> {
	const main = h("main", { id: "main" }, "Loading…")
	document.body.appendChild(main)
	const who: string = await client.call("Whoami")
	const items = await client.call("Echo", { item: { name: "x", count: 2 } }, 2)
	const logout = h("button", { id: "logout" }, "Log out")
	logout.addEventListener("click", async () => {
		await client.logout()
		location.reload()
	})
	replace(main, h("p", { id: "who" }, `Logged in as ${who}`), h("p", { id: "items" }, `${items.length} items`), logout)
}

show()
