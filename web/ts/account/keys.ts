// TLS client-certificate keys: list, add a certificate (PEM), remove, generate with a PKCS#12 download.

import { client } from "./client";
import { h, replace } from "../lib/dom";
import { base64Bytes, download } from "./format";
import { section } from "./section";
import type { GeneratedKey, KeyInfo, Overview } from "./types";

export function keysSection(overview: Overview): HTMLElement {
	const s = section(
		"keys",
		"TLS client certificates",
		h(
			"p",
			{ class: "hint" },
			"A mail client that presents one of these certificates logs in without a password (IMAP and submission).",
		),
	);
	const list = h("div", { id: "keys-list" });
	const addressSelect = (name: string): HTMLSelectElement =>
		h(
			"select",
			{ name },
			h("option", { value: "" }, "primary address"),
			...overview.addresses.map((a) => h("option", { value: a }, a)),
		);

	const load = async (): Promise<void> => {
		const keys = await client.call("TLSPublicKeys");
		if (keys.length === 0) {
			replace(list, h("p", {}, "No keys registered."));
			return;
		}
		replace(
			list,
			h(
				"table",
				{},
				h(
					"thead",
					{},
					h("tr", {}, ...["Name", "Type", "Fingerprint (SHA-256 of the public key)", "Login address", "IMAP", ""].map((t) => h("th", {}, t))),
				),
				h(
					"tbody",
					{},
					...keys.map((k) => {
						const remove = h("button", { type: "button", class: "remove" }, "Remove");
						remove.addEventListener("click", () => {
							if (!confirm(`Remove key ${k.name}? Its certificate no longer logs in.`)) return;
							void s.run(async () => {
								await client.call("TLSPublicKeyRemove", k.fingerprint);
								await load();
							}, "Key removed.");
						});
						return h(
							"tr",
							{ "data-fingerprint": k.fingerprint },
							h("td", {}, k.name),
							h("td", {}, k.key_type),
							h("td", {}, h("code", {}, k.fingerprint)),
							h("td", {}, k.login_address || overview.addresses[0] || ""),
							h("td", {}, k.no_imap_preauth ? "log in with EXTERNAL" : "pre-authenticated"),
							h("td", {}, remove),
						);
					}),
				),
			),
		);
	};

	// Add the public key of an existing certificate.
	const pem = h("textarea", { name: "cert_pem", rows: "4", cols: "64", placeholder: "-----BEGIN CERTIFICATE-----" });
	const file = h("input", { type: "file", accept: ".pem,.crt,.cer" });
	file.addEventListener("change", () => {
		const f = file.files?.[0];
		if (f) void f.text().then((t) => (pem.value = t));
	});
	const addName = h("input", { type: "text", name: "name", value: "device", maxlength: "64" });
	const addLogin = addressSelect("login_address");
	const addNoPreauth = h("input", { type: "checkbox", name: "no_imap_preauth" });
	const addForm = h(
		"form",
		{ id: "key-add" },
		h("h3", {}, "Add a certificate"),
		h("label", {}, "Certificate (PEM) ", pem),
		h("label", {}, "or a file ", file),
		h("label", {}, "Name ", addName),
		h("label", {}, "Log in as ", addLogin),
		h("label", { class: "check" }, addNoPreauth, " IMAP: greet normally, the client logs in with AUTHENTICATE EXTERNAL"),
		h("button", { type: "submit" }, "Add"),
	);
	addForm.addEventListener("submit", (e) => {
		e.preventDefault();
		void s.run(async () => {
			await client.call("TLSPublicKeyAdd", {
				cert_pem: pem.value,
				name: addName.value,
				login_address: addLogin.value,
				no_imap_preauth: addNoPreauth.checked,
			});
			addForm.reset();
			await load();
		}, "Key added.");
	});

	// Generate a new key; the private key goes to this browser only.
	const genName = h("input", { type: "text", name: "name", value: "device", maxlength: "64", pattern: "[A-Za-z0-9._\\-]+" });
	const genLogin = addressSelect("login_address");
	const genNoPreauth = h("input", { type: "checkbox", name: "no_imap_preauth" });
	const genPassword = h("input", { type: "password", name: "pkcs12_password", autocomplete: "new-password" });
	const commands = h("div", { id: "key-commands" });
	const genForm = h(
		"form",
		{ id: "key-generate" },
		h("h3", {}, "Generate a new key"),
		h("p", { class: "hint" }, "An ed25519 key and certificate, downloaded once as PKCS#12 (.p12) for your mail client; the server keeps only the public key."),
		h("label", {}, "Name ", genName),
		h("label", {}, "Log in as ", genLogin),
		h("label", { class: "check" }, genNoPreauth, " IMAP: log in with AUTHENTICATE EXTERNAL"),
		h("label", {}, "Password for the .p12 file (optional) ", genPassword),
		h("button", { type: "submit" }, "Generate and download"),
		commands,
	);
	genForm.addEventListener("submit", (e) => {
		e.preventDefault();
		void s.run(async () => {
			const made = await client.call("TLSPublicKeyGenerate", {
				name: genName.value,
				login_address: genLogin.value,
				no_imap_preauth: genNoPreauth.checked,
				pkcs12_password: genPassword.value,
			});
			download(base64Bytes(made.pkcs12), `${made.key.name}.p12`, "application/x-pkcs12");
			replace(
				commands,
				h("p", {}, "The same by hand with openssl:"),
				h("pre", {}, made.openssl_commands.join("\n")),
			);
			genPassword.value = "";
			await load();
		}, "Key generated and registered; the .p12 file is downloaded.");
	});

	replace(s.body, list, addForm, genForm);
	void load().catch((e: unknown) => s.status(e instanceof Error ? e.message : String(e), true));
	return s.el;
}
