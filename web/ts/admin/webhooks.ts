// The webhook queue and retired webhooks: keyset pages per account, retry and drop.
import { h, replace } from "../lib/dom"
import { act, button, client, field, type Schemas, section, statusLine, table, when } from "./ui"

function hookList(retired: boolean, status: HTMLElement) {
	const body = h("div", {})
	const pager = h("div", { class: "pager" })
	const anchors: number[] = [0]
	let account = ""
	let boxes: { id: number; input: HTMLInputElement }[] = []
	async function show(index: number): Promise<void> {
		const query: Schemas["ListHooks"] = { after: anchors[index] ?? 0, limit: 50 }
		if (account) query.account = account
		const page = retired ? await client.call("WebhookRetired", query) : await client.call("WebhookQueue", query)
		boxes = []
		replace(
			body,
			page.hooks.length
				? table(
						[...(retired ? [] : [""]), "Id", "Account", "Kind", "Event", "Queue id", "Recipient", "Attempts", retired ? "Outcome" : "Next attempt", "Last result"],
						page.hooks.map((hook) => {
							const box = h("input", { type: "checkbox" })
							boxes.push({ id: hook.id, input: box })
							return [
								...(retired ? [] : [box]),
								String(hook.id),
								hook.account,
								hook.kind,
								hook.event,
								String(hook.queue_id),
								hook.recipient,
								String(hook.attempts),
								retired ? hook.outcome : when(hook.next_attempt),
								hook.last_result,
							]
						}),
					)
				: h("p", { class: "hint" }, retired ? "No retired webhooks." : "No webhooks waiting."),
		)
		const buttons = []
		if (index > 0) buttons.push(button("Previous page", () => void show(index - 1)))
		if (page.next !== null && page.next !== undefined) {
			anchors[index + 1] = page.next
			buttons.push(button("Next page", () => void show(index + 1)))
		}
		replace(pager, ...buttons)
	}
	return {
		element: h("div", {}, body, pager),
		start: (forAccount: string) => {
			account = forAccount
			anchors.length = 1
			return act(status, null, () => show(0))
		},
		selection: (): Schemas["HookSelection"] => {
			const ids = boxes.filter((b) => b.input.checked).map((b) => b.id)
			if (ids.length) return { ids }
			if (account) return { account }
			throw new Error("select webhooks, or filter by an account to act on all of its")
		},
	}
}

export async function webhooksPage(page: HTMLElement): Promise<void> {
	const status = statusLine()
	const queued = hookList(false, status)
	const retired = hookList(true, status)
	const account = field("Account", { name: "account", size: "12" })
	const form = h("form", { class: "inline" }, account.label, h("button", { type: "submit" }, "Show"))
	async function reload(): Promise<void> {
		await queued.start(account.input.value.trim())
		await retired.start(account.input.value.trim())
	}
	form.addEventListener("submit", (event) => {
		event.preventDefault()
		void reload()
	})
	const retry = button("Retry now", (b) =>
		act(status, b, async () => {
			const n = await client.call("WebhookRetry", queued.selection())
			await reload()
			return `${n} webhook(s) due now.`
		}),
	)
	const drop = button("Drop", (b) =>
		act(status, b, async () => {
			const n = await client.call("WebhookDrop", queued.selection())
			await reload()
			return `${n} webhook(s) dropped.`
		}),
	)
	replace(page, section("Webhooks", form, h("h3", {}, "Waiting to be called"), queued.element, retry, drop, status, h("h3", {}, "Retired"), retired.element))
	await reload()
}
