// The admin interface: a page per hash route (#domains, #domain/<name>, #accounts, #account/<name>,
// #aliases, #queue, #holdrules, #retired, #webhooks, #server); every call through the typed client,
// which asks for the admin login when the session is missing or expired.
import { ApiError } from "../lib/api"
import { h, replace } from "../lib/dom"
import { accountPage, accountsPage } from "./accounts"
import { aliasesPage } from "./aliases"
import { domainPage, domainsPage } from "./domains"
import { holdRulesPage, queuePage, retiredPage } from "./queue"
import { overviewPage, serverPage } from "./server"
import { client } from "./ui"
import { webhooksPage } from "./webhooks"

type Page = (page: HTMLElement, argument: string) => Promise<void>

const PAGES: [string, string, Page][] = [
	["", "Overview", overviewPage],
	["domains", "Domains", domainsPage],
	["accounts", "Accounts", accountsPage],
	["aliases", "Aliases", aliasesPage],
	["queue", "Queue", queuePage],
	["holdrules", "Hold rules", holdRulesPage],
	["retired", "Retired", retiredPage],
	["webhooks", "Webhooks", webhooksPage],
	["server", "Server", serverPage],
]
const DETAIL: Record<string, Page> = { domain: domainPage, account: accountPage }

async function route(): Promise<void> {
	const page = document.getElementById("page")
	const nav = document.getElementById("nav")
	if (!page || !nav) {
		return
	}
	const [name = "", ...rest] = location.hash.replace(/^#/, "").split("/")
	const argument = decodeURIComponent(rest.join("/"))
	replace(nav, ...PAGES.map(([key, title]) => h("a", { href: `#${key}`, class: key === name ? "current" : "" }, title)))
	const show = DETAIL[name] ?? PAGES.find(([key]) => key === name)?.[2] ?? overviewPage
	replace(page, h("p", {}, "Loading…"))
	try {
		await show(page, argument)
	} catch (e) {
		replace(page, h("p", { class: "error" }, e instanceof ApiError ? e.message : String(e)))
	}
}

async function start(): Promise<void> {
	document.getElementById("logout")?.addEventListener("click", async () => {
		await client.logout()
		location.hash = ""
		location.reload()
	})
	window.addEventListener("hashchange", () => void route())
	const who = await client.call("Whoami")
	replace(document.getElementById("who") ?? document.body, `Logged in as ${who}`)
	await route()
}

void start()
