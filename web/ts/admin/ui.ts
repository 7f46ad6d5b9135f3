// Small building blocks of the admin pages: the API client, status lines, tables, times.
import { ApiError, Client } from "../lib/api"
import { type Child, h, replace } from "../lib/dom"
import { loginForm } from "../lib/login"
import type { components, paths } from "./api.gen"

export type Schemas = components["schemas"]

export const client = new Client<paths>("api/", "mailsrv-admin-csrf", loginForm)

// A line under a form or a table saying what happened; errors in red.
export function statusLine(): HTMLParagraphElement {
	return h("p", { class: "status", role: "status" })
}

export function say(status: HTMLElement, text: string, error = false): void {
	status.classList.toggle("error", error)
	replace(status, text)
}

// Runs an action for a button or a form: disables `control` meanwhile, reports errors in `status`.
export async function act(status: HTMLElement, control: HTMLButtonElement | null, action: () => Promise<string | void>): Promise<void> {
	if (control) {
		control.disabled = true
	}
	say(status, "…")
	try {
		const done = await action()
		say(status, done ?? "Done.")
	} catch (e) {
		say(status, e instanceof ApiError ? e.message : String(e), true)
	} finally {
		if (control) {
			control.disabled = false
		}
	}
}

export function button(text: string, onclick: (b: HTMLButtonElement) => void, attributes: Record<string, string> = {}): HTMLButtonElement {
	const b: HTMLButtonElement = h("button", { type: "button", ...attributes }, text)
	b.addEventListener("click", () => onclick(b))
	return b
}

export function table(headers: string[], rows: Child[][], attributes: Record<string, string> = {}): HTMLTableElement {
	return h(
		"table",
		attributes,
		h("thead", {}, h("tr", {}, ...headers.map((t) => h("th", {}, t)))),
		h("tbody", {}, ...rows.map((cells) => h("tr", {}, ...cells.map((c) => h("td", {}, c))))),
	)
}

export function section(title: string, ...children: Child[]): HTMLElement {
	return h("section", {}, h("h2", {}, title), ...children)
}

export function when(seconds: number | null | undefined): string {
	if (!seconds) {
		return "-"
	}
	return new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC")
}

export function size(octets: number | undefined): string {
	octets = octets ?? 0
	if (octets < 1024) {
		return `${octets} B`
	}
	const units = ["KiB", "MiB", "GiB", "TiB"]
	let value = octets / 1024
	let unit = 0
	while (value >= 1024 && unit < units.length - 1) {
		value /= 1024
		unit++
	}
	return `${value.toFixed(1)} ${units[unit]}`
}

// A labelled text input; `value` returns its trimmed text.
export function field(label: string, attributes: Record<string, string> = {}): { label: HTMLLabelElement; input: HTMLInputElement } {
	const input = h("input", { type: "text", ...attributes })
	return { label: h("label", {}, label + " ", input), input }
}

export function checkbox(label: string, checked: boolean): { label: HTMLLabelElement; input: HTMLInputElement } {
	const input = h("input", { type: "checkbox" })
	input.checked = checked
	return { label: h("label", { class: "check" }, input, label), input }
}

export function link(href: string, text: string): HTMLAnchorElement {
	return h("a", { href }, text)
}

// Seconds from a <input type="datetime-local"> value (local time), or null when empty.
export function localTime(input: HTMLInputElement): number | null {
	return input.value ? new Date(input.value).getTime() / 1000 : null
}

export function durationText(seconds: number): string {
	if (!seconds) {
		return "not kept"
	}
	if (seconds % 86400 === 0) {
		return `${seconds / 86400} day(s)`
	}
	if (seconds % 3600 === 0) {
		return `${seconds / 3600} hour(s)`
	}
	return `${seconds} s`
}
