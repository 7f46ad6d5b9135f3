// Aliases (lists): create with members and settings, members add/remove, settings, remove.
import { h, replace } from "../lib/dom"
import { act, button, checkbox, client, field, type Schemas, section, statusLine } from "./ui"

function settingsBoxes(alias: Schemas["AliasInfo"] | null): {
	boxes: HTMLElement[]
	value: () => Schemas["AliasSettings"]
} {
	const postPublic = checkbox("Anyone may send to it (PostPublic)", alias?.post_public ?? false)
	const listMembers = checkbox("Members may see the member list (ListMembers)", alias?.list_members ?? false)
	const allowMsgFrom = checkbox("Members may send as the alias (AllowMsgFrom)", alias?.allow_msg_from ?? false)
	return {
		boxes: [postPublic.label, listMembers.label, allowMsgFrom.label],
		value: () => ({
			postPublic: postPublic.input.checked,
			listMembers: listMembers.input.checked,
			allowMsgFrom: allowMsgFrom.input.checked,
		}),
	}
}

function aliasBlock(alias: Schemas["AliasInfo"], refresh: () => Promise<void>): HTMLElement {
	const status = statusLine()
	const member = field("Member", { name: "member", placeholder: "an account's address" })
	const settings = settingsBoxes(alias)
	return h(
		"div",
		{ class: "alias", "data-alias": alias.alias },
		h("h3", {}, alias.alias),
		h(
			"ul",
			{ class: "members" },
			...alias.members.map((m) =>
				h(
					"li",
					{},
					m + " ",
					button("Remove", (b) =>
						act(status, b, async () => {
							await client.call("AliasMemberRemove", alias.alias, m)
							await refresh()
						}),
					),
				),
			),
		),
		h(
			"div",
			{ class: "inline" },
			member.label,
			button("Add member", (b) =>
				act(status, b, async () => {
					await client.call("AliasMemberAdd", alias.alias, member.input.value.trim())
					await refresh()
				}),
			),
		),
		...settings.boxes,
		button("Save settings", (b) =>
			act(status, b, async () => {
				await client.call("AliasSettingsSave", alias.alias, settings.value())
				return "Saved."
			}),
		),
		button("Remove alias", (b) =>
			act(status, b, async () => {
				await client.call("AliasRemove", alias.alias)
				await refresh()
			}),
		),
		status,
	)
}

export async function aliasesPage(page: HTMLElement): Promise<void> {
	const list = h("div", { id: "aliases" })
	const address = field("Alias address", { name: "alias", required: "" })
	const members = field("Members, comma separated", { name: "members", size: "40" })
	const settings = settingsBoxes(null)
	const add = h("button", { type: "submit" }, "Add alias")
	const status = statusLine()
	const form = h("form", { id: "alias-add" }, address.label, members.label, ...settings.boxes, add, status)
	async function refresh(): Promise<void> {
		const aliases = await client.call("Aliases")
		replace(list, ...(aliases.length ? aliases.map((a) => aliasBlock(a, refresh)) : [h("p", { class: "hint" }, "No aliases.")]))
	}
	form.addEventListener("submit", (event) => {
		event.preventDefault()
		void act(status, add, async () => {
			const memberList = members.input.value
				.split(",")
				.map((m) => m.trim())
				.filter((m) => m)
			const info = await client.call("AliasAdd", address.input.value.trim(), memberList, settings.value())
			address.input.value = members.input.value = ""
			await refresh()
			return `Alias ${info.alias} added.`
		})
	})
	replace(page, section("Aliases and lists", list, h("h3", {}, "Add an alias"), form))
	await refresh()
}
