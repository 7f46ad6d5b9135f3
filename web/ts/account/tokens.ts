// Webapi tokens: named passwords for applications that call the webapi; each is shown once.

import { client } from "./client";
import { h, replace } from "../lib/dom";
import { section } from "./section";

function when(seconds: number | null | undefined, none: string): string {
	return seconds ? new Date(seconds * 1000).toLocaleString() : none;
}

export function tokensSection(address: string): HTMLElement {
	const s = section(
		"apitokens",
		"Webapi tokens",
		h(
			"p",
			{ class: "hint" },
			"An application that sends mail through the webapi can use a token as its HTTP Basic password, with one of your addresses as the user name. A token works only there (not for IMAP, SMTP or this page); removing it stops it at once. Changing your password keeps your tokens.",
		),
	);
	const list = h("div", { id: "apitokens-list" });
	const shown = h("div", { id: "apitoken-new" });
	const load = async (): Promise<void> => {
		const tokens = await client.call("ApiTokens");
		if (tokens.length === 0) {
			replace(list, h("p", {}, "No tokens."));
			return;
		}
		replace(
			list,
			h(
				"table",
				{},
				h("thead", {}, h("tr", {}, ...["Name", "Created", "Last used", "Expires", ""].map((t) => h("th", {}, t)))),
				h(
					"tbody",
					{},
					...tokens.map((t) => {
						const remove = h("button", { type: "button" }, "Remove");
						remove.addEventListener("click", () => {
							if (!window.confirm(`Remove the token "${t.name}"? Applications using it stop working.`)) return;
							void s.run(async () => {
								await client.call("ApiTokenRemove", t.name);
								replace(shown);
								await load();
							}, "Removed.");
						});
						return h(
							"tr",
							{},
							h("td", { class: "token-name" }, t.name),
							h("td", {}, when(t.created, "-")),
							h("td", {}, when(t.last_used, "never")),
							h("td", {}, t.expired ? `expired ${when(t.expires, "")}` : when(t.expires, "never")),
							h("td", {}, remove),
						);
					}),
				),
			),
		);
	};
	const name = h("input", { type: "text", name: "name", required: true, maxlength: "64", size: "24" });
	const days = h("input", { type: "number", name: "days", min: "0", max: "3650", value: "0", size: "5" });
	const form = h(
		"form",
		{ id: "apitoken-add", class: "inline" },
		h("label", {}, "Name ", name),
		h("label", {}, "Expires after days (0: never) ", days),
		h("button", { type: "submit" }, "Create token"),
	);
	form.addEventListener("submit", (e) => {
		e.preventDefault();
		void s.run(async () => {
			const made = await client.call("ApiTokenAdd", name.value, parseInt(days.value || "0", 10));
			replace(
				shown,
				h("p", {}, `Token "${made.info.name}", shown only now; copy it:`),
				h("pre", { id: "apitoken-secret" }, made.token),
				h("p", { class: "hint" }, `Use it as: curl --user '${address}:${made.token}' …/webapi/v0/Send`),
			);
			form.reset();
			await load();
		}, "Token created.");
	});
	replace(s.body, list, form, shown);
	void load().catch((e: unknown) => s.status(e instanceof Error ? e.message : String(e), true));
	return s.el;
}
