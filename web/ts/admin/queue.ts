// The outgoing queue (filters, keyset pages, actions on a selection or on everything matching the
// filter, attempt history), hold rules, and the retired messages.
import { h, replace } from "../lib/dom"
import { act, button, checkbox, client, field, localTime, type Schemas, section, size, statusLine, table, when } from "./ui"

type Query = Schemas["ListMessages"]
type Selection = Schemas["Selection"]

interface Filters {
	form: HTMLFormElement
	query: () => Query
}

// The configured transports, fetched once per page load for the filter and the action.
let transportNames: Promise<string[]> | null = null
function transports(): Promise<string[]> {
	transportNames ??= client.call("Transports").then((list) => list.map((t) => t.name))
	return transportNames
}

function transportSelect(name: string, first: [string, string]): HTMLSelectElement {
	const select = h("select", { name }, h("option", { value: first[0] }, first[1]))
	void transports().then((names) => select.append(...names.map((n) => h("option", { value: n }, n))))
	return select
}

function filters(onChange: () => void, withNext: boolean): Filters {
	const transport = transportSelect("transport", ["", "any transport"])
	const account = field("Account", { name: "account", size: "10" })
	const sender = field("Sender", { name: "sender", placeholder: "address or @domain", size: "16" })
	const domain = field("Recipient domain", { name: "domain", size: "16" })
	const held = h("select", { name: "held" }, h("option", { value: "" }, "held or not"), h("option", { value: "yes" }, "held"), h("option", { value: "no" }, "not held"))
	const after = h("input", { type: "datetime-local", name: "next_after" })
	const before = h("input", { type: "datetime-local", name: "next_before" })
	const sort = h(
		"select",
		{ name: "sort" },
		h("option", { value: "id" }, "queued (id)"),
		h("option", { value: "created" }, "queued time"),
		...(withNext ? [h("option", { value: "next_attempt" }, "next attempt")] : []),
	)
	const descending = checkbox("newest first", false)
	const limit = h("select", { name: "limit" }, ...["20", "50", "100", "500"].map((n) => h("option", { value: n, selected: n === "50" }, n)))
	const form = h(
		"form",
		{ class: "filters" },
		account.label,
		sender.label,
		domain.label,
		h("label", {}, held),
		h("label", {}, "Transport ", transport),
		...(withNext ? [h("label", {}, "Next attempt after ", after), h("label", {}, "before ", before)] : []),
		h("label", {}, "Sort ", sort),
		descending.label,
		h("label", {}, "Per page ", limit),
		h("button", { type: "submit" }, "Apply"),
	)
	form.addEventListener("submit", (event) => {
		event.preventDefault()
		onChange()
	})
	return {
		form,
		query: (): Query => {
			const q: Query = { sort: sort.value as Query["sort"], descending: descending.input.checked, limit: Number(limit.value) }
			if (account.input.value.trim()) q.account = account.input.value.trim()
			if (sender.input.value.trim()) q.sender = sender.input.value.trim()
			const d = domain.input.value.trim().replace(/^@/, "")
			if (d) q.recipient = "@" + d
			if (held.value) q.held = held.value === "yes"
			if (transport.value) q.transport = transport.value
			const a = localTime(after)
			const b = localTime(before)
			if (withNext && a !== null) q.next_after = a
			if (withNext && b !== null) q.next_before = b
			return q
		},
	}
}

function selectionOf(q: Query): Selection {
	const { sort: _s, descending: _d, after: _a, limit: _l, ...selection } = q
	return selection
}

async function historyPanel(panel: HTMLElement, id: number): Promise<void> {
	const history = await client.call("QueueHistory", id)
	const m = history.message
	replace(
		panel,
		h("h3", {}, `Message ${m.id}`),
		h("p", {}, `From ${m.from || "<>"} (account ${m.account || "-"}), ${size(m.size)}, queued ${when(m.created)}${m.retired_until ? `, retired until ${when(m.retired_until)}` : ""}`),
		table(
			["Recipient", "Status", "Attempts", "Next attempt", "Transport", "Last error"],
			(m.recipients ?? []).map((r) => [
				r.address,
				r.status,
				String(r.attempts),
				r.status === "queued" ? when(r.next_attempt) : "-",
				(r.transport || "-") + (r.transport_fixed ? " (set by an administrator)" : ""),
				r.last_error,
			]),
		),
		history.attempts.length
			? table(
					["Time", "Recipient", "Transport", "Host", "Code", "Reply"],
					history.attempts.map((a) => [when(a.time), a.recipient, a.transport || "-", a.host || "-", String(a.code), a.reply]),
					{ class: "history" },
				)
			: h("p", { class: "hint" }, "No delivery attempt yet."),
	)
}

// A paged message list: `load(query)` gets one page; rows have checkboxes when `selectable`.
function messageList(load: (q: Query) => Promise<Schemas["QueuePage"]>, selectable: boolean, history: HTMLElement) {
	const body = h("div", {})
	const pager = h("div", { class: "pager" })
	const anchors: (Schemas["QueueAnchor"] | null)[] = [null]
	let boxes: { id: number; input: HTMLInputElement }[] = []
	let current: Query = {}
	async function show(query: Query, index: number): Promise<void> {
		current = query
		const result = await load({ ...query, after: anchors[index] ?? null })
		boxes = []
		const all = h("input", { type: "checkbox", title: "select the whole page" })
		all.addEventListener("change", () => boxes.forEach((b) => (b.input.checked = all.checked)))
		replace(
			body,
			table(
				[...(selectable ? [""] : []), "Id", "From", "Account", "Recipients", "Size", "Queued", selectable ? "Next attempt" : "Kept until", ""],
				result.messages.map((m) => {
					const box = h("input", { type: "checkbox", "data-id": String(m.id) })
					boxes.push({ id: m.id, input: box })
					return [
						...(selectable ? [box] : []),
						String(m.id),
						m.from || "<>",
						m.account || "-",
						(m.recipients ?? []).map((r) => `${r.address} (${r.status}${r.transport ? `, via ${r.transport}` : ""})`).join(", "),
						size(m.size),
						when(m.created),
						selectable ? when(m.next_attempt) + (m.held ? " HELD" : "") + (m.requiretls ? " TLS" : "") : when(m.retired_until),
						button("History", () => void historyPanel(history, m.id)),
					]
				}),
				{ class: "messages" },
			),
			selectable ? h("label", { class: "check" }, all, "Select the whole page") : null,
			h("p", { class: "hint" }, `Page ${index + 1}: ${result.messages.length} message(s)${result.next ? "; more follow" : ""}.`),
		)
		const buttons = []
		if (index > 0) buttons.push(button("Previous page", () => void show(current, index - 1)))
		if (result.next) {
			anchors[index + 1] = result.next
			buttons.push(button("Next page", () => void show(current, index + 1)))
		}
		replace(pager, ...buttons)
	}
	return {
		element: h("div", {}, body, pager),
		start: (q: Query) => {
			anchors.length = 1
			return show(q, 0)
		},
		selected: () => boxes.filter((b) => b.input.checked).map((b) => b.id),
	}
}

export async function queuePage(page: HTMLElement): Promise<void> {
	const status = statusLine()
	const history = h("div", { id: "history" })
	const list = messageList((q) => client.call("QueueList", q), true, history)
	const f = filters(() => void act(status, null, () => list.start(f.query())), true)
	const scope = h(
		"select",
		{ name: "scope" },
		h("option", { value: "selected" }, "the selected messages"),
		h("option", { value: "filter" }, "every message matching the filter"),
	)
	function target(): Selection {
		if (scope.value === "filter") {
			return selectionOf(f.query())
		}
		const ids = list.selected()
		if (ids.length === 0) {
			throw new Error("select messages first, or choose every message matching the filter")
		}
		return { ids }
	}
	async function done(text: string): Promise<string> {
		await list.start(f.query())
		return text
	}
	const reason = field("Reason", { name: "reason", size: "20" })
	const newTransport = transportSelect("to", ["routes", "as the routes choose"])
	const nextTime = h("input", { type: "datetime-local", name: "next" })
	const actions = h(
		"div",
		{ class: "actions" },
		h("label", {}, "Apply to ", scope),
		button("Hold", (b) => act(status, b, async () => done(`${await client.call("QueueHold", target())} message(s) held.`))),
		button("Release", (b) => act(status, b, async () => done(`${await client.call("QueueRelease", target())} message(s) released.`))),
		button("Retry now", (b) => act(status, b, async () => done(`${await client.call("QueueRetry", target())} recipient(s) due now.`))),
		h("span", {}, nextTime),
		button("Set next attempt", (b) =>
			act(status, b, async () => {
				const at = localTime(nextTime)
				if (at === null) throw new Error("choose a time first")
				return done(`${await client.call("QueueNextAttempt", { ...target(), when: at })} recipient(s) rescheduled.`)
			}),
		),
		button("Require TLS", (b) => act(status, b, async () => done(`${await client.call("QueueRequireTLS", { ...target(), required: true })} message(s) changed.`))),
		button("TLS optional", (b) => act(status, b, async () => done(`${await client.call("QueueRequireTLS", { ...target(), required: false })} message(s) changed.`))),
		h("span", {}, newTransport),
		button("Change transport", (b) =>
			act(status, b, async () => done(`${await client.call("QueueSetTransport", { ...target(), to: newTransport.value })} recipient(s) changed.`)),
		),
		reason.label,
		button("Drop with DSN", (b) =>
			act(status, b, async () => done(`${await client.call("QueueDrop", { ...target(), dsn: true, reason: reason.input.value, all: scope.value === "filter" })} message(s) failed; DSNs go out.`)),
		),
		button(
			"Drop silently",
			(b) => act(status, b, async () => done(`${await client.call("QueueDrop", { ...target(), all: scope.value === "filter" })} message(s) dropped.`)),
			{ class: "danger" },
		),
	)
	replace(page, section("Queue", f.form, list.element, actions, status, history))
	await list.start(f.query())
}

export async function retiredPage(page: HTMLElement): Promise<void> {
	const status = statusLine()
	const history = h("div", { id: "history" })
	const list = messageList((q) => client.call("RetiredList", q), false, history)
	const f = filters(() => void act(status, null, () => list.start(f.query())), false)
	const purge = button("Forget those past their keep period", (b) =>
		act(status, b, async () => {
			const n = await client.call("RetiredPurge", {})
			await list.start(f.query())
			return `${n} retired message(s) forgotten.`
		}),
	)
	replace(page, section("Retired messages", h("p", { class: "hint" }, "Finished messages, kept with their attempts for their account's keep period."), f.form, list.element, purge, status, history))
	await list.start(f.query())
}

export async function holdRulesPage(page: HTMLElement): Promise<void> {
	const list = h("div", { id: "holdrules" })
	const status = statusLine()
	const inputs = {
		account: field("Account", { name: "account", size: "10" }),
		sender_domain: field("Sender domain", { name: "sender_domain", size: "14" }),
		sender: field("Sender", { name: "sender", size: "14" }),
		recipient_domain: field("Recipient domain", { name: "recipient_domain", size: "14" }),
		recipient: field("Recipient", { name: "recipient", size: "14" }),
	}
	async function refresh(): Promise<void> {
		const rules = await client.call("HoldRules")
		replace(
			list,
			rules.length
				? table(
						["Id", "Account", "Sender domain", "Sender", "Recipient domain", "Recipient", ""],
						rules.map((r) => [
							String(r.id),
							r.account || "any",
							r.sender_domain || "any",
							r.sender || "any",
							r.recipient_domain || "any",
							r.recipient || "any",
							button("Remove", (b) =>
								act(status, b, async () => {
									await client.call("HoldRuleRemove", r.id ?? 0)
									await refresh()
								}),
							),
						]),
					)
				: h("p", { class: "hint" }, "No hold rules: new messages are delivered at once."),
		)
	}
	const add = h("button", { type: "submit" }, "Add rule")
	const form = h("form", { class: "inline" }, ...Object.values(inputs).map((i) => i.label), add)
	form.addEventListener("submit", (event) => {
		event.preventDefault()
		void act(status, add, async () => {
			const rule: Schemas["NewHoldRule"] = {}
			for (const [key, value] of Object.entries(inputs)) {
				;(rule as Record<string, string>)[key] = value.input.value.trim()
			}
			await client.call("HoldRuleAdd", rule)
			await refresh()
			return "Rule added: matching messages queued from now on are held."
		})
	})
	replace(page, section("Hold rules", h("p", { class: "hint" }, "A message queued that matches every non-empty field of a rule is held until released. An empty rule holds every message."), list, form, status))
	await refresh()
}
