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
	const reportsArea = h("div", { id: "domain-reports" }, h("p", {}, "Loading reports…"))
	const current = await client.call("Domain", domain)
	const settings = domainSettings(domain, current, status, () => void runCheck())
	replace(page, section(`Domain ${domain}`, h("p", {}, link("#domains", "All domains")), h("h3", {}, "Settings"), settings, h("h3", {}, "DNS check"), recheck, checkArea, h("h3", {}, "DKIM records"), dkim, h("h3", {}, "Reports received"), reportsArea, h("h3", {}, "Remove"), h("p", { class: "hint" }, "Refused while accounts, addresses or aliases use the domain."), remove, status))
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
	const [records, received] = await Promise.all([client.call("DomainDKIMRecords", domain), client.call("DomainReports", domain, 30), runCheck()])
	replace(dkim, dkimTable(records))
	replace(reportsArea, ...reportsView(received))
}

const MTA_STS_MODES: [string, string][] = [
	["", "server default"],
	["none", "none (withdraw a policy)"],
	["testing", "testing (reports only)"],
	["enforce", "enforce"],
	["off", "off (no policy served)"],
]

function policyText(info: Schemas["DomainInfo"]): string {
	const p = info.mta_sts
	if (!p || p.mode === "off") {
		return "No MTA-STS policy is served for this domain."
	}
	return `Served: mode ${p.mode}, max_age ${p.max_age} s, mx ${p.mx}. Publish _mta-sts.${info.domain}. TXT "v=STSv1; id=${p.id}" (the id changes with the policy).`
}

// The domain's settings: catchall separator, reporting addresses, MTA-STS mode and max_age; saved in one call.
function domainSettings(domain: string, current: Schemas["DomainInfo"], status: HTMLElement, saved: () => void): HTMLElement {
	const separator = field("Catchall separator (empty: none)", { name: "separator", size: "3", value: current.separator })
	const dmarc = field("DMARC reports to", { name: "dmarc_reports", size: "30", value: current.dmarc_reports ?? "", placeholder: `admin+dmarc@${domain}` })
	const tlsrpt = field("TLS reports to", { name: "tlsrpt_reports", size: "30", value: current.tlsrpt_reports ?? "", placeholder: `admin+tls@${domain}` })
	const mode = h("select", { name: "mta_sts_mode" }, ...MTA_STS_MODES.map(([value, text]) => h("option", { value }, text)))
	mode.value = current.mta_sts_mode ?? ""
	const maxAge = field("max_age in seconds (empty: server default)", { name: "mta_sts_max_age", size: "9", inputmode: "numeric", value: current.mta_sts_max_age ? String(current.mta_sts_max_age) : "" })
	const policy = h("p", { class: "hint", id: "mta-sts-policy" }, policyText(current))
	const save = h("button", { type: "submit" }, "Save settings")
	const form = h(
		"form",
		{ id: "domain-settings" },
		h("div", { class: "inline" }, separator.label),
		h("div", { class: "inline" }, dmarc.label, tlsrpt.label),
		h("p", { class: "hint" }, "Reports to an address of an account here are filed in its \"DMARC reports\" / \"TLS reports\" mailbox; use an address of its own, not the account's primary one. An address elsewhere needs that domain's consent for DMARC (RFC 7489 §7.1; the DNS check looks)."),
		h("div", { class: "inline" }, h("label", {}, "MTA-STS mode ", mode), maxAge.label),
		policy,
		save,
	)
	form.addEventListener("submit", (event) => {
		event.preventDefault()
		void act(status, save, async () => {
			const age = maxAge.input.value.trim()
			if (age !== "" && !/^\d+$/.test(age)) {
				throw new Error("max_age: a number of seconds, or empty for the server's default")
			}
			const info = await client.call("DomainSettingsSave", {
				domain,
				separator: separator.input.value,
				dmarc_reports: dmarc.input.value.trim(),
				tlsrpt_reports: tlsrpt.input.value.trim(),
				mta_sts_mode: mode.value,
				mta_sts_max_age: age === "" ? 0 : Number(age),
			})
			replace(policy, policyText(info))
			saved()
			return "Settings saved."
		})
	})
	return form
}

function day(seconds: number): string {
	return seconds ? new Date(seconds * 1000).toISOString().slice(0, 10) : "?"
}

// The DMARC and TLS reports received about the domain: totals, then one row per report (DMARC: the failing sources).
function reportsView(r: Schemas["DomainReports"]): HTMLElement[] {
	const dmarc = r.dmarc.map((x) => {
		const failing = (x.report.sources ?? []).filter((s) => s.dkim !== "pass" && s.spf !== "pass")
		return [
			`${day(x.report.begin)} – ${day(x.report.end)}`,
			x.report.org,
			String(x.report.passed),
			h("span", { class: x.report.failed ? "badge error" : "" }, String(x.report.failed)),
			h("div", {}, ...failing.map((s) => h("code", {}, `${s.ip} ×${s.count} (${s.disposition})`))),
		]
	})
	const tls = r.tlsrpt.flatMap((x) =>
		x.report.policies.map((p) => [
			`${day(x.report.begin)} – ${day(x.report.end)}`,
			x.report.org,
			p.policy_type,
			String(p.successful),
			h("span", { class: p.failed ? "badge error" : "" }, String(p.failed)),
			Object.entries(p.failures ?? {})
				.map(([kind, n]) => `${kind} ×${n}`)
				.join(", "),
		]),
	)
	return [
		h("p", { class: "hint" }, "From the DMARC and TLS reporting addresses above: each report is also in its account's mailbox."),
		h("p", { id: "dmarc-totals" }, `DMARC: ${r.dmarc_passed} messages passed, ${r.dmarc_failed} failed (${r.dmarc.length} reports).`),
		dmarc.length ? table(["Period", "Reporter", "Passed", "Failed", "Failing sources"], dmarc, { id: "dmarc-reports" }) : h("p", {}, "No DMARC reports yet."),
		h("p", { id: "tls-totals" }, `TLS: ${r.tls_successful} sessions succeeded, ${r.tls_failed} failed (${r.tlsrpt.length} reports).`),
		tls.length ? table(["Period", "Reporter", "Policy", "Succeeded", "Failed", "Failures"], tls, { id: "tls-reports" }) : h("p", {}, "No TLS reports yet."),
	]
}
