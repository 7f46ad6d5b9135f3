// Outgoing mail: fromid login addresses and the suppression list.

import { client } from "./client";
import { h, replace } from "../lib/dom";
import { section } from "./section";
import type { Overview, Suppression } from "./types";

export function fromidSection(overview: Overview): HTMLElement {
	const s = section(
		"fromid",
		"Unique sender address per message (fromid)",
		h(
			"p",
			{ class: "hint" },
			"Mail you send after logging in with one of these addresses gets a unique SMTP MAIL FROM per recipient, so a bounce or webhook event names the message it is about.",
		),
	);
	const chosen = new Set(overview.fromid_login_addresses);
	const boxes = overview.addresses.map((a) => h("input", { type: "checkbox", name: "fromid", value: a, checked: chosen.has(a) }));
	const form = h(
		"form",
		{ id: "fromid-form" },
		...boxes.map((b) => h("label", { class: "check" }, b, ` ${b.value}`)),
		h("button", { type: "submit" }, "Save"),
	);
	form.addEventListener("submit", (e) => {
		e.preventDefault();
		void s.run(async () => {
			const saved = new Set(await client.call("FromIDLoginAddressesSave", boxes.filter((b) => b.checked).map((b) => b.value)));
			for (const b of boxes) b.checked = saved.has(b.value);
		});
	});
	replace(s.body, form);
	return s.el;
}

export function suppressionsSection(): HTMLElement {
	const s = section(
		"suppressions",
		"Suppression list",
		h("p", { class: "hint" }, "Mail you send to these addresses fails at once without a delivery attempt. The server adds addresses that bounced permanently."),
	);
	const list = h("div", { id: "suppressions-list" });
	const load = async (): Promise<void> => {
		const entries = await client.call("Suppressions");
		if (entries.length === 0) {
			replace(list, h("p", {}, "The list is empty."));
			return;
		}
		replace(
			list,
			h(
				"table",
				{},
				h("thead", {}, h("tr", {}, ...["Address", "Added", "Why", ""].map((t) => h("th", {}, t)))),
				h(
					"tbody",
					{},
					...entries.map((e) => {
						const remove = h("button", { type: "button" }, "Remove");
						remove.addEventListener("click", () => {
							void s.run(async () => {
								await client.call("SuppressionRemove", e.base_address);
								await load();
							}, "Removed.");
						});
						return h(
							"tr",
							{},
							h("td", {}, e.original_address || e.base_address),
							h("td", {}, new Date(e.created * 1000).toLocaleString()),
							h("td", {}, (e.manual ? "added by you" : "bounced") + (e.reason ? `: ${e.reason}` : "")),
							h("td", {}, remove),
						);
					}),
				),
			),
		);
	};
	const address = h("input", { type: "email", name: "address", required: true, size: "30" });
	const reason = h("input", { type: "text", name: "reason", size: "30" });
	const form = h(
		"form",
		{ id: "suppression-add", class: "inline" },
		h("label", {}, "Address ", address),
		h("label", {}, "Reason ", reason),
		h("button", { type: "submit" }, "Add"),
	);
	form.addEventListener("submit", (e) => {
		e.preventDefault();
		void s.run(async () => {
			await client.call("SuppressionAdd", address.value, reason.value);
			form.reset();
			await load();
		}, "Added.");
	});
	replace(s.body, list, form);
	void load().catch((e: unknown) => s.status(e instanceof Error ? e.message : String(e), true));
	return s.el;
}
