// Domains: the list, adding one (its DKIM records shown), its DNS check, removing it.
import { h, replace } from "../lib/dom"
import { act, button, client, field, link, type Schemas, section, statusLine, table } from "./ui"

function dkimTable(records: Schemas["DKIMRecord"][]): HTMLElement {
	return table(
		["Name", "TXT value"],
		records.map((r) => [h("code", {}, r.name + "."), h("code", { class: "wrap" }, r.value)]),
	)
}

export async function domainsPage(page: HTMLElement): Promise<void> {
	const list = h("div", {})
	const status = statusLine()
	const added = h("div", {})
	const name = field("Domain", { name: "domain", required: "" })
	const separator = field("Catchall separator", { name: "separator", value: "+", size: "3" })
	const add = h("button", { type: "submit" }, "Add domain")
	const form = h("form", { class: "inline", id: "domain-add" }, name.label, separator.label, add)
	form.addEventListener("submit", (event) => {
		event.preventDefault()
		void act(status, add, async () => {
			const result = await client.call("DomainAdd", name.input.value.trim(), separator.input.value)
			replace(added, h("h3", {}, `Publish the DKIM records of ${result.domain}:`), dkimTable(result.dkim ?? []))
			name.input.value = ""
			await refresh()
			return `Domain ${result.domain} added.`
		})
	})
	async function refresh(): Promise<void> {
		const domains = await client.call("Domains")
		replace(
			list,
			table(
				["Domain", "Catchall separator", ""],
				domains.map((d) => [
					link(`#domain/${encodeURIComponent(d.domain)}`, d.unicode === d.domain ? d.domain : `${d.unicode} (${d.domain})`),
					d.separator || "none",
					link(`#domain/${encodeURIComponent(d.domain)}`, "DNS check"),
				]),
				{ id: "domains" },
			),
		)
	}
	replace(page, section("Domains", list, h("h3", {}, "Add a domain"), form, status, added))
	await refresh()
}

const STATUS_TEXT: Record<string, string> = { ok: "OK", warning: "Warning", error: "Error" }

export async function domainPage(page: HTMLElement, domain: string): Promise<void> {
	const status = statusLine()
	const checkArea = h("div", { id: "dns-check" }, h("p", {}, "Checking DNS…"))
	const dkim = h("div", {})
	const remove = button("Remove domain", (b) =>
		act(status, b, async () => {
			await client.call("DomainRemove", domain)
			location.hash = "#domains"
			return "Removed."
		}),
	)
	const recheck = button("Check again", (b) => act(status, b, runCheck))
	const current = (await client.call("Domains")).find((d) => d.domain === domain)
	const separator = field("Catchall separator (empty: none)", { name: "separator", size: "3", value: current?.separator ?? "" })
	const saveSeparator = button("Save", (b) =>
		act(status, b, async () => {
			const info = await client.call("DomainSetSeparator", domain, separator.input.value)
			return info.separator ? `user${info.separator}anything@${domain} now reaches user@${domain}.` : "No catchall separator."
		}),
	)
	replace(page, section(`Domain ${domain}`, h("p", {}, link("#domains", "All domains")), h("div", { class: "inline", id: "domain-settings" }, separator.label, saveSeparator), h("h3", {}, "DNS check"), recheck, checkArea, h("h3", {}, "DKIM records"), dkim, h("h3", {}, "Remove"), h("p", { class: "hint" }, "Refused while accounts, addresses or aliases use the domain."), remove, status))
	async function runCheck(): Promise<string> {
		replace(checkArea, h("p", {}, "Checking DNS…"))
		const check = await client.call("DomainCheck", domain)
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
					h("div", {}, ...(item.fix ?? []).map((f) => h("code", { class: "wrap" }, f))),
				]),
				{ class: "check" },
			),
		)
		return "DNS checked."
	}
	const [records] = await Promise.all([client.call("DomainDKIMRecords", domain), runCheck()])
	replace(dkim, dkimTable(records))
}
