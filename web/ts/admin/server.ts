// The server: counts, listeners and certificates, recent errors, the configuration as loaded.
import { h, replace } from "../lib/dom"
import { client, link, section, table, when } from "./ui"

export async function overviewPage(page: HTMLElement): Promise<void> {
	const counts = await client.call("ServerCounts")
	replace(
		page,
		section(
			"Overview",
			table(
				["", ""],
				[
					[link("#domains", "Domains"), String(counts.domains)],
					[link("#accounts", "Accounts"), String(counts.accounts)],
					[link("#aliases", "Aliases"), String(counts.aliases)],
					[link("#queue", "Messages queued"), String(counts.queued)],
					["… of which held", String(counts.held)],
					[link("#retired", "Retired messages"), String(counts.retired)],
				],
				{ id: "counts", class: "facts" },
			),
		),
	)
}

export async function serverPage(page: HTMLElement): Promise<void> {
	const [listeners, errors, config] = await Promise.all([
		client.call("ServerListeners"),
		client.call("ServerErrors", 100),
		client.call("ServerConfig"),
	])
	const now = Date.now() / 1000
	replace(
		page,
		section(
			"Server",
			h("p", {}, `Host name ${listeners.hostname}`),
			h("h3", {}, "Listeners"),
			table(
				["Name", "Protocol", "Address", "Port", "TLS"],
				listeners.listeners.map((l) => [l.name, l.protocol, l.address, String(l.port), l.tls]),
				{ id: "listeners" },
			),
			h("h3", {}, "TLS certificates"),
			table(
				["File", "Names", "Issuer", "Valid until", ""],
				listeners.certificates.map((c) => [
					h("code", {}, c.file),
					(c.names ?? []).join(", "),
					(c.issuer ?? "") + (c.self_signed ? " (self-signed)" : ""),
					when(c.not_after),
					c.error
						? h("span", { class: "badge error" }, c.error)
						: (c.not_after ?? 0) < now
							? h("span", { class: "badge error" }, "expired")
							: (c.not_after ?? 0) - now < 14 * 86400
								? h("span", { class: "badge warning" }, "expires soon")
								: h("span", { class: "badge ok" }, "valid"),
				]),
				{ id: "certificates" },
			),
			h("h3", {}, "Recent warnings and errors"),
			errors.length
				? table(
						["Time", "Level", "Where", "Message"],
						errors.map((e) => [e.time, e.level, e.namespace, h("pre", {}, e.text)]),
						{ id: "errors" },
					)
				: h("p", { class: "hint" }, "None since the server started."),
			h("h3", {}, "Configuration as loaded (secrets hidden)"),
			h("p", {}, h("code", {}, config.file)),
			h("pre", { id: "config" }, JSON.stringify(config.static, null, 2)),
		),
	)
}
