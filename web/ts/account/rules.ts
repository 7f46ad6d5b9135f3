// Delivery rulesets: list in order (first match wins), add, edit, remove, move up/down.

import { client } from "./client";
import { h, replace } from "../lib/dom";
import { section } from "./section";
import type { RulesetSpec } from "./types";

function describe(r: RulesetSpec): string {
	const when: string[] = [];
	if (r.smtp_mail_from) when.push(`MAIL FROM ~ ${r.smtp_mail_from}`);
	if (r.msg_from) when.push(`From ~ ${r.msg_from}`);
	if (r.verified_domain) when.push(`verified domain ${r.verified_domain}`);
	for (const [name, value] of r.headers ?? []) when.push(`header ${name} ~ ${value}`);
	const then: string[] = [];
	if (r.mailbox) then.push(`into ${r.mailbox}`);
	if (r.is_list) then.push("mailing list");
	if (r.accept_regardless) then.push("skip junk filter");
	return `${when.join(" and ")} → ${then.join(", ")}`;
}

export function rulesSection(): HTMLElement {
	const s = section(
		"rules",
		"Delivery rules",
		h("p", { class: "hint" }, "Incoming mail goes by the first ruleset that matches (regular expressions); otherwise into INBOX."),
	);
	const list = h("div", { id: "rules-list" });
	let editing = 0; // 1-based index being edited, 0: adding

	const fields = {
		comment: h("input", { type: "text", name: "comment", size: "40" }),
		smtp_mail_from: h("input", { type: "text", name: "smtp_mail_from", size: "40" }),
		msg_from: h("input", { type: "text", name: "msg_from", size: "40" }),
		verified_domain: h("input", { type: "text", name: "verified_domain", size: "30" }),
		headers: h("textarea", { name: "headers", rows: "2", cols: "40", placeholder: "one per line: name-regexp: value-regexp" }),
		mailbox: h("input", { type: "text", name: "mailbox", size: "30" }),
		is_list: h("input", { type: "checkbox", name: "is_list" }),
		accept_regardless: h("input", { type: "checkbox", name: "accept_regardless" }),
	};
	const title = h("h3", {}, "Add a ruleset");
	const submit = h("button", { type: "submit" }, "Add");
	const cancel = h("button", { type: "button" }, "Cancel");
	const form = h(
		"form",
		{ id: "rule-form" },
		title,
		h("label", {}, "Comment ", fields.comment),
		h("fieldset", {}, h("legend", {}, "When (all given must match)"),
			h("label", {}, "SMTP MAIL FROM ", fields.smtp_mail_from),
			h("label", {}, "From: address ", fields.msg_from),
			h("label", {}, "SPF/DKIM-verified domain ", fields.verified_domain),
			h("label", {}, "Header fields ", fields.headers),
		),
		h("fieldset", {}, h("legend", {}, "Then"),
			h("label", {}, "Deliver to mailbox ", fields.mailbox),
			h("label", { class: "check" }, fields.is_list, " Treat as a mailing list"),
			h("label", { class: "check" }, fields.accept_regardless, " Accept regardless of the junk filter"),
		),
		submit,
		cancel,
	);
	const reset = (): void => {
		editing = 0;
		form.reset();
		title.textContent = "Add a ruleset";
		submit.textContent = "Add";
		cancel.hidden = true;
	};
	cancel.addEventListener("click", reset);
	const spec = (): RulesetSpec => {
		const headers: [string, string][] = [];
		for (const line of fields.headers.value.split("\n")) {
			const t = line.trim();
			if (!t) continue;
			const i = t.indexOf(":");
			headers.push(i < 0 ? [t, ""] : [t.slice(0, i).trim(), t.slice(i + 1).trim()]);
		}
		return {
			comment: fields.comment.value,
			smtp_mail_from: fields.smtp_mail_from.value,
			msg_from: fields.msg_from.value,
			verified_domain: fields.verified_domain.value,
			headers,
			mailbox: fields.mailbox.value,
			is_list: fields.is_list.checked,
			accept_regardless: fields.accept_regardless.checked,
		};
	};
	const edit = (index: number, r: RulesetSpec): void => {
		editing = index;
		fields.comment.value = r.comment ?? "";
		fields.smtp_mail_from.value = r.smtp_mail_from ?? "";
		fields.msg_from.value = r.msg_from ?? "";
		fields.verified_domain.value = r.verified_domain ?? "";
		fields.headers.value = (r.headers ?? []).map(([n, v]) => `${n}: ${v}`).join("\n");
		fields.mailbox.value = r.mailbox ?? "";
		fields.is_list.checked = Boolean(r.is_list);
		fields.accept_regardless.checked = Boolean(r.accept_regardless);
		title.textContent = `Edit ruleset ${index}`;
		submit.textContent = "Save";
		cancel.hidden = false;
		fields.comment.focus();
	};

	const load = async (): Promise<void> => {
		const rules = await client.call("Rulesets");
		if (rules.length === 0) {
			replace(list, h("p", {}, "No rulesets: all mail goes to INBOX (or Junk, by the junk filter)."));
			return;
		}
		const button = (label: string, action: () => Promise<unknown>, done: string, disabled = false): HTMLButtonElement => {
			const b = h("button", { type: "button", disabled }, label);
			b.addEventListener("click", () => {
				void s.run(async () => {
					await action();
					await load();
				}, done);
			});
			return b;
		};
		replace(
			list,
			h(
				"ol",
				{},
				...rules.map((r, i) => {
					const index = i + 1;
					const editButton = h("button", { type: "button" }, "Edit");
					editButton.addEventListener("click", () => edit(index, r));
					return h(
						"li",
						{ class: "rule" },
						h("span", { class: "comment" }, r.comment || "(no comment)"),
						" ",
						h("span", { class: "spec" }, describe(r)),
						" ",
						button("↑", () => client.call("RulesetMove", index, index - 1), "Moved.", index === 1),
						button("↓", () => client.call("RulesetMove", index, index + 1), "Moved.", index === rules.length),
						editButton,
						button("Remove", () => client.call("RulesetRemove", index), "Removed."),
					);
				}),
			),
		);
	};

	form.addEventListener("submit", (e) => {
		e.preventDefault();
		void s.run(async () => {
			if (editing) await client.call("RulesetSave", editing, spec());
			else await client.call("RulesetAdd", spec());
			reset();
			await load();
		});
	});
	reset();
	replace(s.body, list, form);
	void load().catch((e: unknown) => s.status(e instanceof Error ? e.message : String(e), true));
	return s.el;
}
