// The account page: every setting an account may change itself, one section each.

import { client } from "./client";
import { h, replace } from "../lib/dom";
import { formatSize } from "./format";
import { section } from "./section";
import { exportSection, importSection } from "./transfer";
import { keysSection } from "./keys";
import { rulesSection } from "./rules";
import { junkSection } from "./junk";
import { fromidSection, suppressionsSection } from "./sending";
import { webhooksSection } from "./webhooks";
import { tokensSection } from "./tokens";
import type { ClientSettings, Overview } from "./types";
import { base64Bytes, download, formatDuration, parseDuration } from "./format";

function overviewSection(overview: Overview): HTMLElement {
	const s = section("overview", "Account");
	const fullName = h("input", { type: "text", name: "full_name", value: overview.full_name, maxlength: "200" });
	const form = h(
		"form",
		{ id: "fullname-form", class: "inline" },
		h("label", {}, "Full name ", fullName),
		h("button", { type: "submit" }, "Save"),
	);
	form.addEventListener("submit", (e) => {
		e.preventDefault();
		void s.run(async () => {
			fullName.value = await client.call("AccountSaveFullName", fullName.value);
		});
	});
	const quota = overview.quota;
	const usage = h(
		"div",
		{ class: "quota" },
		h("span", { id: "quota-text" }, `${formatSize(overview.usage)} used`, quota ? ` of ${formatSize(quota)}` : ", no limit"),
		quota ? h("progress", { id: "quota-bar", max: String(quota), value: String(Math.min(overview.usage, quota)) }) : null,
	);
	replace(
		s.body,
		h("p", {}, "Account ", h("strong", { id: "account-name" }, overview.account), ` in domain ${overview.domain}`),
		form,
		h("h3", {}, "Addresses"),
		h("p", { class: "hint" }, "Mail to each of these reaches this account; the first is the primary address."),
		h("ul", { id: "addresses" }, ...overview.addresses.map((a) => h("li", {}, a))),
		h("h3", {}, "Aliases and lists you are a member of"),
		overview.aliases.length === 0
			? h("p", { id: "aliases" }, "None.")
			: h(
					"ul",
					{ id: "aliases" },
					...overview.aliases.map((a) =>
						h(
							"li",
							{},
							h("strong", {}, a.address),
							a.allow_msg_from ? " (you may send as this address)" : "",
							a.list_members ? h("span", { class: "members" }, ` members: ${a.members.join(", ")}`) : "",
						),
					),
				),
		h("h3", {}, "Storage"),
		usage,
	);
	return s.el;
}

function passwordSection(address: string): HTMLElement {
	const s = section("password", "Password", h("p", { class: "hint" }, "Changing it logs out your other sessions."));
	const current = h("input", { type: "password", name: "current", autocomplete: "current-password", required: true });
	const fresh = h("input", { type: "password", name: "new", autocomplete: "new-password", required: true, minlength: "8" });
	const repeat = h("input", { type: "password", name: "repeat", autocomplete: "new-password", required: true });
	const form = h(
		"form",
		{ id: "password-form" },
		// For password managers: which account the new password belongs to.
		h("input", { type: "text", name: "username", autocomplete: "username", value: address, hidden: true }),
		h("label", {}, "Current password ", current),
		h("label", {}, "New password ", fresh),
		h("label", {}, "New password again ", repeat),
		h("button", { type: "submit" }, "Change password"),
	);
	form.addEventListener("submit", (e) => {
		e.preventDefault();
		if (fresh.value !== repeat.value) {
			s.status("The two new passwords differ.", true);
			return;
		}
		void s.run(async () => {
			await client.call("SetPassword", current.value, fresh.value);
			form.reset();
		}, "Password changed; your other sessions are logged out.");
	});
	replace(s.body, form);
	return s.el;
}

function clientSection(settings: ClientSettings): HTMLElement {
	const s = section(
		"clients",
		"Mail client setup",
		h("p", { class: "hint" }, "Thunderbird and Outlook find these settings by themselves from your address."),
	);
	const security = (v: string): string => (v === "implicit" ? "TLS" : "STARTTLS");
	const rows = [...settings.imap, ...settings.submission].map((e) =>
		h(
			"tr",
			{},
			h("td", {}, e.protocol === "imap" ? "IMAP (incoming)" : "Submission (outgoing)"),
			h("td", {}, e.host),
			h("td", {}, String(e.port)),
			h("td", {}, security(e.security)),
		),
	);
	const button = h("button", { type: "button", id: "apple-profile" }, "Download Apple profile (.mobileconfig)");
	button.addEventListener("click", () => {
		void s.run(async () => {
			const data = await client.call("AppleProfile");
			download(base64Bytes(data), `${settings.address}.mobileconfig`, "application/x-apple-aspen-config");
		}, "Profile downloaded: open it on the Mac or iPhone to add the account.");
	});
	replace(
		s.body,
		h("p", {}, "User name: ", h("code", {}, settings.username), ". Password: your account password."),
		h(
			"table",
			{ id: "endpoints" },
			h("thead", {}, h("tr", {}, h("th", {}, "Service"), h("th", {}, "Host"), h("th", {}, "Port"), h("th", {}, "Security"))),
			h("tbody", {}, ...rows),
		),
		button,
	);
	return s.el;
}

function retiredSection(overview: Overview): HTMLElement {
	const s = section(
		"retired",
		"Keep finished outgoing messages",
		h("p", { class: "hint" }, "How long the queue keeps messages you sent, with their delivery attempts, after they are done (e.g. 7d, 12h; 0: not kept)."),
	);
	const input = h("input", { type: "text", name: "retired_keep", value: formatDuration(overview.retired_keep), size: "8" });
	const form = h("form", { id: "retired-form", class: "inline" }, h("label", {}, "Messages ", input), h("button", { type: "submit" }, "Save"));
	form.addEventListener("submit", (e) => {
		e.preventDefault();
		const seconds = parseDuration(input.value);
		if (seconds === null) {
			s.status("Write a duration such as 7d, 12h or 30m, or 0.", true);
			return;
		}
		void s.run(async () => {
			const kept = await client.call("KeepRetiredPeriodSave", seconds);
			input.value = formatDuration(kept);
			input.setAttribute("value", input.value);
		});
	});
	replace(s.body, form);
	return s.el;
}

async function render(): Promise<void> {
	const root = document.getElementById("page");
	if (!root) return;
	const [overview, settings] = await Promise.all([client.call("Account"), client.call("ClientSettings")]);
	const who = document.getElementById("who");
	if (who) who.textContent = overview.addresses[0] ?? overview.account;
	replace(
		root,
		overviewSection(overview),
		passwordSection(overview.addresses[0] ?? overview.account),
		clientSection(settings),
		keysSection(overview),
		rulesSection(),
		junkSection(),
		retiredSection(overview),
		fromidSection(overview),
		suppressionsSection(),
		webhooksSection(),
		tokensSection(overview.addresses[0] ?? overview.account),
		importSection(),
		exportSection(),
	);
}

function init(): void {
	const out = document.getElementById("logout");
	out?.addEventListener("click", () => {
		void client.logout().then(() => {
			replace(document.getElementById("page") ?? document.body);
			void render();
		});
	});
	void render().catch((e: unknown) => {
		const root = document.getElementById("page");
		if (root) replace(root, h("p", { class: "error" }, e instanceof Error ? e.message : String(e)));
	});
}

init();
