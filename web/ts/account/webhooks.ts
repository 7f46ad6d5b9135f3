// Webhooks: outgoing (delivery events of mail you send) and incoming (mail you receive),
// their Authorization header, the signing secret, and how long finished webhooks are kept.

import { client } from "./client";
import { h, replace } from "../lib/dom";
import { formatDuration, parseDuration } from "./format";
import { section } from "./section";

export function webhooksSection(): HTMLElement {
	const s = section(
		"webhooks",
		"Webhooks",
		h("p", { class: "hint" }, "HTTP POSTs in mox's webhook format to your application, signed per Standard Webhooks once a secret is made."),
	);
	const load = async (): Promise<void> => {
		const w = await client.call("Webhooks");
		const st = w.settings;
		const outgoingEvents = st.outgoing_events ?? [];
		const outUrl = h("input", { type: "url", name: "outgoing_url", value: st.outgoing_url, size: "50" });
		const outAuth = h("input", { type: "text", name: "outgoing_authorization", value: st.outgoing_authorization, size: "50" });
		const chosen = new Set(outgoingEvents);
		const events = w.events.map((e) => h("input", { type: "checkbox", name: "event", value: e, checked: chosen.has(e) }));
		const outForm = h(
			"form",
			{ id: "webhook-outgoing" },
			h("h3", {}, "Outgoing mail"),
			h("label", {}, "URL (empty: off) ", outUrl),
			h("label", {}, "Authorization header ", outAuth),
			h("fieldset", {}, h("legend", {}, "Events (none checked: all)"), ...events.map((e) => h("label", { class: "check" }, e, ` ${e.value}`))),
			h("button", { type: "submit" }, "Save"),
		);
		outForm.addEventListener("submit", (e) => {
			e.preventDefault();
			void s.run(() =>
				client.call("OutgoingWebhookSave", outUrl.value, outAuth.value, events.filter((x) => x.checked).map((x) => x.value)),
			);
		});
		const inUrl = h("input", { type: "url", name: "incoming_url", value: st.incoming_url, size: "50" });
		const inAuth = h("input", { type: "text", name: "incoming_authorization", value: st.incoming_authorization, size: "50" });
		const inForm = h(
			"form",
			{ id: "webhook-incoming" },
			h("h3", {}, "Incoming mail"),
			h("label", {}, "URL (empty: off) ", inUrl),
			h("label", {}, "Authorization header ", inAuth),
			h("button", { type: "submit" }, "Save"),
		);
		inForm.addEventListener("submit", (e) => {
			e.preventDefault();
			void s.run(() => client.call("IncomingWebhookSave", inUrl.value, inAuth.value));
		});
		const secretOut = h("div", { id: "webhook-secret" });
		const rotate = h("button", { type: "button", id: "webhook-rotate" }, st.has_secret ? "Replace the signing secret" : "Make a signing secret");
		rotate.addEventListener("click", () => {
			if (st.has_secret && !confirm("Replace the secret? Your application must then use the new one.")) return;
			void s.run(async () => {
				const made = await client.call("WebhookSecretRotate");
				replace(secretOut, h("p", {}, "Shown only now; verify the webhook-signature header with it:"), h("pre", {}, made.secret));
			}, "New secret made.");
		});
		const keep = h("input", { type: "text", name: "webhook_keep", value: formatDuration(st.retired_keep ?? 0), size: "8" });
		const keepForm = h("form", { id: "webhook-keep", class: "inline" }, h("label", {}, "Keep finished webhooks for ", keep), h("button", { type: "submit" }, "Save"));
		keepForm.addEventListener("submit", (e) => {
			e.preventDefault();
			const seconds = parseDuration(keep.value);
			if (seconds === null) {
				s.status("Write a duration such as 7d, 12h or 30m, or 0.", true);
				return;
			}
			void s.run(() => client.call("KeepRetiredWebhookPeriodSave", seconds));
		});
		replace(s.body, outForm, inForm, h("h3", {}, "Signing secret"), rotate, secretOut, keepForm);
	};
	void load().catch((e: unknown) => s.status(e instanceof Error ? e.message : String(e), true));
	return s.el;
}
