// Junk-filter settings: whatever the server's JunkSettings holds, as a form.

import { client } from "./client";
import { h, replace } from "../lib/dom";
import { section } from "./section";
import type { JunkSettings } from "./types";

const lines = (text: string): string[] =>
	text
		.split("\n")
		.map((l) => l.trim())
		.filter((l) => l);

export function junkSection(): HTMLElement {
	const s = section(
		"junk",
		"Junk filter",
		h("p", { class: "hint" }, "A Bayesian filter trained by where you move messages: into Junk, or out of it."),
	);
	const load = async (): Promise<void> => {
		const [j, stats] = await Promise.all([client.call("JunkSettings"), client.call("JunkStats")]);
		const f = {
			enabled: h("input", { type: "checkbox", name: "enabled", checked: j.enabled }),
			threshold: h("input", { type: "number", name: "threshold", min: "0.5", max: "0.9999", step: "0.0001", value: String(j.threshold) }),
			action: h(
				"select",
				{ name: "action" },
				h("option", { value: "junk" }, "Deliver to the Junk mailbox"),
				h("option", { value: "reject" }, "Refuse at SMTP, keep a copy for a while"),
			),
			rejects_mailbox: h("input", { type: "text", name: "rejects_mailbox", value: j.rejects_mailbox }),
			rejects_keep_days: h("input", { type: "number", name: "rejects_keep_days", min: "0", max: "365", value: String(j.rejects_keep_days) }),
			junk_mailboxes: h("textarea", { name: "junk_mailboxes", rows: "2", cols: "30" }),
			notjunk_mailboxes: h("textarea", { name: "notjunk_mailboxes", rows: "3", cols: "30" }),
			ignored_words: h("textarea", { name: "ignored_words", rows: "3", cols: "30" }),
			train_untouched: h("input", { type: "checkbox", name: "train_untouched", checked: j.train_untouched }),
			top_words: h("input", { type: "number", name: "top_words", min: "5", max: "1000", value: String(j.top_words) }),
			rare_word_cutoff: h("input", { type: "number", name: "rare_word_cutoff", min: "1", max: "100", value: String(j.rare_word_cutoff) }),
			ngram_sizes: h("input", { type: "text", name: "ngram_sizes", value: (j.ngram_sizes ?? []).join(", "), size: "8" }),
		};
		f.action.value = j.action ?? "junk";
		f.junk_mailboxes.value = (j.junk_mailboxes ?? []).join("\n");
		f.notjunk_mailboxes.value = (j.notjunk_mailboxes ?? []).join("\n");
		f.ignored_words.value = (j.ignored_words ?? []).join("\n");
		const form = h(
			"form",
			{ id: "junk-form" },
			h("label", { class: "check" }, f.enabled, " Filter incoming mail"),
			h("label", {}, "Junk at a score of ", f.threshold),
			h("label", {}, "Junk mail: ", f.action),
			h("label", {}, "Refused mail kept in ", f.rejects_mailbox, " for days ", f.rejects_keep_days),
			h("label", {}, "Moving into these trains as junk (one per line, * at the end for a prefix) ", f.junk_mailboxes),
			h("label", {}, "Moving into these trains as not junk ", f.notjunk_mailboxes),
			h("label", {}, "Words to ignore (one per line) ", f.ignored_words),
			h("label", { class: "check" }, f.train_untouched, " Also train on messages never moved or flagged"),
			h("details", {}, h("summary", {}, "Advanced"),
				h("label", {}, "Words that decide ", f.top_words),
				h("label", {}, "Ignore words seen in fewer messages than ", f.rare_word_cutoff),
				h("label", {}, "Word n-gram sizes (1 to 3) ", f.ngram_sizes),
			),
			h("button", { type: "submit" }, "Save"),
		);
		form.addEventListener("submit", (e) => {
			e.preventDefault();
			const settings: JunkSettings = {
				enabled: f.enabled.checked,
				threshold: Number(f.threshold.value),
				action: f.action.value === "reject" ? "reject" : "junk",
				rejects_mailbox: f.rejects_mailbox.value,
				rejects_keep_days: Number(f.rejects_keep_days.value),
				junk_mailboxes: lines(f.junk_mailboxes.value),
				notjunk_mailboxes: lines(f.notjunk_mailboxes.value),
				ignored_words: lines(f.ignored_words.value),
				train_untouched: f.train_untouched.checked,
				top_words: Number(f.top_words.value),
				rare_word_cutoff: Number(f.rare_word_cutoff.value),
				ngram_sizes: f.ngram_sizes.value
					.split(/[ ,]+/)
					.filter((x) => x)
					.map(Number),
			};
			void s.run(() => client.call("JunkSettingsSave", settings));
		});
		const trained = h(
			"p",
			{ id: "junk-stats" },
			`Trained on ${stats.ham_messages} messages as not junk and ${stats.spam_messages} as junk; ${stats.words} words known.`,
		);
		replace(s.body, trained, form);
	};
	void load().catch((e: unknown) => s.status(e instanceof Error ? e.message : String(e), true));
	return s.el;
}
