// Accounts: a paged list with search, adding one (its generated password shown once), and one
// account's page: disable/enable, password, quota, addresses, fromid addresses, keep periods,
// TLS public keys, removal with its consequences said first.
import { h, replace } from "../lib/dom"
import { act, button, checkbox, client, durationText, field, link, type Schemas, section, size, statusLine, table } from "./ui"

const PAGE_SIZE = 50

export async function accountsPage(page: HTMLElement): Promise<void> {
	const search = field("Search", { name: "search", placeholder: "name or address" })
	const list = h("div", {})
	const pager = h("div", { class: "pager" })
	const status = statusLine()
	const anchors: string[] = [""] // the `after` of each page shown so far
	async function show(index: number): Promise<void> {
		const result = await client.call("Accounts", search.input.value.trim(), anchors[index] ?? "", PAGE_SIZE)
		replace(
			list,
			table(
				["Account", "Addresses", "Quota", ""],
				result.accounts.map((a) => [
					link(`#account/${encodeURIComponent(a.account)}`, a.account),
					a.addresses.join(", "),
					a.quota === null || a.quota === undefined ? "no limit" : size(a.quota),
					a.disabled ? h("span", { class: "badge warning" }, "disabled") : "",
				]),
				{ id: "accounts" },
			),
		)
		const buttons = []
		if (index > 0) {
			buttons.push(button("Previous page", () => void show(index - 1)))
		}
		if (result.next) {
			anchors[index + 1] = result.next
			buttons.push(button("Next page", () => void show(index + 1)))
		}
		replace(pager, ...buttons)
	}
	const searchForm = h("form", { class: "inline" }, search.label, h("button", { type: "submit" }, "Search"))
	searchForm.addEventListener("submit", (event) => {
		event.preventDefault()
		anchors.length = 1
		void act(status, null, () => show(0))
	})
	const name = field("Account name", { name: "account", required: "" })
	const address = field("Address", { name: "address", required: "", placeholder: "user@domain" })
	const fullName = field("Full name", { name: "fullname" })
	const add = h("button", { type: "submit" }, "Add account")
	const created = h("div", { id: "account-created" })
	const addForm = h("form", { class: "inline", id: "account-add" }, name.label, address.label, fullName.label, add)
	const addStatus = statusLine()
	addForm.addEventListener("submit", (event) => {
		event.preventDefault()
		void act(addStatus, add, async () => {
			const result = await client.call("AccountAdd", name.input.value.trim(), address.input.value.trim(), fullName.input.value.trim())
			replace(
				created,
				h("p", {}, `Account ${result.account} (${result.address}) created. Its password, shown only now: `),
				h("p", {}, h("code", { class: "password" }, result.password)),
			)
			name.input.value = address.input.value = fullName.input.value = ""
			await show(0)
			return "Added."
		})
	})
	replace(page, section("Accounts", searchForm, list, pager, status, h("h3", {}, "Add an account"), addForm, addStatus, created))
	await show(0)
}

function keyRows(keys: Schemas["KeyInfo"][], refresh: () => Promise<void>, status: HTMLElement): HTMLElement {
	if (keys.length === 0) {
		return h("p", { class: "hint" }, "No client-certificate keys.")
	}
	return table(
		["Name", "Type", "Fingerprint", "Login address", ""],
		keys.map((k) => [
			k.name,
			k.key_type,
			h("code", {}, k.fingerprint),
			k.login_address,
			button("Remove", (b) =>
				act(status, b, async () => {
					await client.call("TLSPublicKeyRemove", k.fingerprint)
					await refresh()
					return "Key removed."
				}),
			),
		]),
	)
}

export async function accountPage(page: HTMLElement, account: string): Promise<void> {
	const status = statusLine()
	async function render(): Promise<void> {
		const info = await client.call("Account", account)
		const listed = (await client.call("Accounts", account, "", 1)).accounts.find((a) => a.account === account)
		const disabled = listed?.disabled ?? false
		const keys = await client.call("AccountTLSPublicKeys", account)

		const toggle = button(disabled ? "Enable" : "Disable", (b) =>
			act(status, b, async () => {
				await client.call("AccountSetDisabled", account, !disabled)
				await render()
				return disabled ? "Enabled." : "Disabled: it cannot log in; its mail is still delivered."
			}),
		)
		const password = field("New password", { type: "password", autocomplete: "new-password", name: "password" })
		const setPassword = button("Set password", (b) =>
			act(status, b, async () => {
				await client.call("AccountSetPassword", account, password.input.value)
				password.input.value = ""
				return "Password set; the account's web sessions ended."
			}),
		)
		const quota = field("Quota in MiB (0: no limit, empty: the default)", { type: "number", min: "0", name: "quota" })
		const setQuota = button("Save quota", (b) =>
			act(status, b, async () => {
				const text = quota.input.value.trim()
				const limit = await client.call("AccountSetQuota", account, text === "" ? null : Math.round(Number(text) * 1024 * 1024))
				await render()
				return `Quota now ${limit === null || limit === undefined ? "no limit" : size(limit)}.`
			}),
		)
		const newAddress = field("Address", { name: "address" })
		const addAddress = button("Add address", (b) =>
			act(status, b, async () => {
				await client.call("AccountAddressAdd", account, newAddress.input.value.trim())
				await render()
				return "Address added."
			}),
		)
		const fromid = info.addresses.map((a) => ({ address: a, box: checkbox(a, info.fromid_login_addresses.includes(a)) }))
		const saveFromid = button("Save fromid addresses", (b) =>
			act(status, b, async () => {
				await client.call("AccountFromIDAddressesSave", account, fromid.filter((f) => f.box.input.checked).map((f) => f.address))
				return "Saved."
			}),
		)
		const keep = field("Keep finished outgoing messages, days", { type: "number", min: "0", name: "keep" })
		keep.input.value = String(info.retired_keep / 86400)
		const saveKeep = button("Save", (b) =>
			act(status, b, async () => {
				const seconds = await client.call("AccountKeepRetiredSave", account, Math.round(Number(keep.input.value) * 86400))
				return `Retired messages kept: ${durationText(seconds)}.`
			}),
		)
		const keepHooks = field("Keep finished webhooks, days", { type: "number", min: "0", name: "keephooks" })
		const saveKeepHooks = button("Save", (b) =>
			act(status, b, async () => {
				const seconds = await client.call("AccountWebhookKeepRetiredSave", account, Math.round(Number(keepHooks.input.value) * 86400))
				return `Retired webhooks kept: ${durationText(seconds)}.`
			}),
		)
		const consequences = h("div", { id: "remove-consequences" })
		const remove = button("Remove account…", (b) =>
			act(status, b, async () => {
				const said = await client.call("AccountRemoveConsequences", account)
				replace(
					consequences,
					h(
						"ul",
						{},
						h("li", {}, `Mail to ${said.addresses.join(", ")} is refused ("no such user").`),
						said.aliases.length ? h("li", {}, `It stops receiving the mail of ${said.aliases.join(", ")}.`) : null,
						h("li", {}, `Its stored mail (${size(said.messages_size)}) stays on disk until deleted by hand.`),
						h("li", {}, `Its password and ${said.tls_public_keys} client key(s) are removed; its sessions end.`),
						h("li", {}, `${said.queued}${said.queued_more ? "+" : ""} outgoing message(s) still queued are delivered.`),
					),
					button(`Remove ${account} now`, (b2) =>
						act(status, b2, async () => {
							await client.call("AccountRemove", account)
							location.hash = "#accounts"
							return "Removed."
						}),
						{ class: "danger" },
					),
				)
				return "Read what removing does, then confirm."
			}),
		)
		replace(
			page,
			section(
				`Account ${info.account}`,
				h("p", {}, link("#accounts", "All accounts")),
				table(
					["", ""],
					[
						["Full name", info.full_name || "-"],
						["Addresses", info.addresses.join(", ")],
						["Aliases", info.aliases.map((a) => a.address).join(", ") || "-"],
						["Stored", `${size(info.usage)} of ${info.quota === null || info.quota === undefined ? "no limit" : size(info.quota)}`],
						["State", disabled ? "disabled" : "enabled"],
					],
					{ class: "facts" },
				),
				toggle,
				h("h3", {}, "Password"),
				h("div", { class: "inline" }, password.label, setPassword),
				h("h3", {}, "Quota"),
				h("div", { class: "inline" }, quota.label, setQuota),
				h("h3", {}, "Addresses"),
				table(
					["Address", ""],
					info.addresses.map((a) => [
						a,
						info.addresses.length > 1
							? button("Remove", (b) =>
									act(status, b, async () => {
										await client.call("AccountAddressRemove", account, a)
										await render()
										return "Address removed."
									}),
								)
							: "",
					]),
				),
				h("div", { class: "inline" }, newAddress.label, addAddress),
				h("h3", {}, "Fromid login addresses"),
				h("p", { class: "hint" }, "Submissions with these login addresses get a unique MAIL FROM per recipient."),
				...fromid.map((f) => f.box.label),
				saveFromid,
				h("h3", {}, "Keep periods"),
				h("div", { class: "inline" }, keep.label, saveKeep),
				h("div", { class: "inline" }, keepHooks.label, saveKeepHooks),
				h("h3", {}, "TLS client-certificate keys"),
				keyRows(keys, render, status),
				h("h3", {}, "Remove"),
				remove,
				consequences,
				status,
			),
		)
	}
	await render()
}
