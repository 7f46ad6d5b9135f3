// Import (upload with a progress bar: upload progress, then the server's progress lines) and
// export (a plain form post answered with a download).

import { h, replace } from "../lib/dom";
import { formatSize } from "./format";
import { section } from "./section";
import { client } from "./client";
import type { ImportProgress, ImportResult, MailboxName } from "./types";

type Line = { progress?: ImportProgress; result?: ImportResult; error?: { code: string; message: string } };

// Sends the file; calls `onLine` for each line of the answer as it arrives.
function upload(file: File, mailbox: string, onUpload: (sent: number, total: number) => void, onLine: (l: Line) => void): Promise<number> {
	return new Promise((resolve, reject) => {
		const xhr = new XMLHttpRequest();
		let seen = 0;
		const take = (): void => {
			const text = xhr.responseText;
			let end = text.indexOf("\n", seen);
			while (end >= 0) {
				const raw = text.slice(seen, end);
				seen = end + 1;
				if (raw.trim()) onLine(JSON.parse(raw) as Line);
				end = text.indexOf("\n", seen);
			}
		};
		xhr.open("POST", `import?mailbox=${encodeURIComponent(mailbox)}`);
		xhr.setRequestHeader("x-mailsrv-csrf", client.csrf);
		xhr.setRequestHeader("content-type", "application/octet-stream");
		xhr.upload.onprogress = (e) => onUpload(e.loaded, e.total);
		xhr.onprogress = take;
		xhr.onload = () => {
			take();
			resolve(xhr.status);
		};
		xhr.onerror = () => reject(new Error("the upload failed (connection lost)"));
		xhr.send(file);
	});
}

export function importSection(): HTMLElement {
	const s = section(
		"import",
		"Import mail",
		h("p", { class: "hint" }, "An mbox file, or a zip or tgz of mbox files and Maildir folders (as the export makes). Folders become mailboxes; flags are kept."),
	);
	const file = h("input", { type: "file", name: "file", required: true });
	const mailbox = h("input", { type: "text", name: "mailbox", value: "INBOX", size: "20" });
	const bar = h("progress", { id: "import-progress", max: "1", value: "0" });
	const text = h("span", { id: "import-text" });
	const outcome = h("div", { id: "import-result" });
	const button = h("button", { type: "submit" }, "Import");
	const form = h(
		"form",
		{ id: "import-form" },
		h("label", {}, "File ", file),
		h("label", {}, "Mailbox for a plain mbox file ", mailbox),
		button,
		h("div", { class: "progress" }, bar, " ", text),
		outcome,
	);
	form.addEventListener("submit", (e) => {
		e.preventDefault();
		const f = file.files?.[0];
		if (!f) return;
		button.disabled = true;
		replace(outcome);
		s.status("");
		const attempt = async (): Promise<void> => {
			let failure: Line["error"] | undefined;
			const status = await upload(
				f,
				mailbox.value,
				(sent, total) => {
					bar.max = total || 1;
					bar.value = sent;
					text.textContent = `uploading ${formatSize(sent)} of ${formatSize(total)}`;
				},
				(line) => {
					if (line.progress) {
						const p = line.progress;
						bar.max = p.total || 1;
						bar.value = p.read;
						text.textContent = `importing: ${p.messages} messages${p.mailbox ? ` (${p.mailbox})` : ""}, ${formatSize(p.read)} of ${formatSize(p.total)} read`;
					} else if (line.result) {
						const r = line.result;
						bar.value = bar.max;
						text.textContent = `done: ${r.messages} messages imported, ${r.skipped} skipped`;
						replace(
							outcome,
							r.mailboxes.length ? h("p", {}, `Into: ${r.mailboxes.join(", ")}`) : null,
							r.problems.length ? h("ul", { class: "problems" }, ...r.problems.map((p) => h("li", {}, p))) : null,
						);
					} else if (line.error) {
						failure = line.error;
					}
				},
			);
			if (failure && (failure.code === "user:noAuth" || failure.code === "user:badAuth")) {
				await client.call("Account"); // refused too: the login form, then the call again
				return attempt();
			}
			if (failure) throw new Error(failure.message);
			if (status === 413) throw new Error("The file is larger than the server accepts for an import.");
			if (status !== 200) throw new Error(`The server answered HTTP ${status}.`);
		};
		void s.run(attempt, "Import finished.").finally(() => (button.disabled = false));
	});
	replace(s.body, form);
	return s.el;
}

export function exportSection(): HTMLElement {
	const s = section("export", "Export mail", h("p", { class: "hint" }, "All mailboxes or one, as a zip or tgz of mbox files or Maildir folders."));
	const select = h("select", { name: "mailbox" }, h("option", { value: "" }, "All mailboxes"));
	const csrf = h("input", { type: "hidden", name: "csrf", value: "" });
	const form = h(
		"form",
		{ id: "export-form", method: "post", action: "export" },
		csrf,
		h("label", {}, "Mailbox ", select),
		h("label", {}, "Format ", h("select", { name: "format" }, h("option", { value: "mbox" }, "mbox"), h("option", { value: "maildir" }, "Maildir"))),
		h("label", {}, "Archive ", h("select", { name: "archive" }, h("option", { value: "zip" }, "zip"), h("option", { value: "tgz" }, "tgz"))),
		h("button", { type: "submit" }, "Export"),
	);
	// The form posts the session's CSRF token as a field (a download cannot carry a header). A
	// call first makes sure the session is live (else the login form, not an error page).
	form.addEventListener("submit", (e) => {
		e.preventDefault();
		void s.run(async () => {
			await client.call("Mailboxes");
			csrf.value = client.csrf;
			form.submit();
		}, "The download starts in a moment.");
	});
	void client.call("Mailboxes")
		.then((boxes) => {
			for (const b of boxes) select.appendChild(h("option", { value: b.name }, `${b.name} (${b.messages} messages, ${formatSize(b.size)})`));
		})
		.catch((e: unknown) => s.status(e instanceof Error ? e.message : String(e), true));
	replace(s.body, form);
	return s.el;
}
