// One section of the page: a heading, a body and a status line for its actions.

import { type Child, h } from "../lib/dom";

// A section with a heading, a status line for its actions and a body filled by `load`.
export interface Section {
	el: HTMLElement;
	status: (text: string, error?: boolean) => void;
	run: (what: () => Promise<unknown>, done?: string) => Promise<void>;
}

export function section(id: string, title: string, ...intro: Child[]): Section & { body: HTMLElement } {
	const statusEl = h("p", { class: "status", role: "status" });
	const body = h("div", { class: "body" });
	const el = h("section", { id }, h("h2", {}, title), ...intro, body, statusEl);
	const status = (text: string, error = false): void => {
		statusEl.textContent = text;
		statusEl.className = error ? "status error" : "status";
	};
	const run = async (what: () => Promise<unknown>, done = "Saved."): Promise<void> => {
		status("…");
		try {
			await what();
			status(done);
		} catch (e) {
			status(e instanceof Error ? e.message : String(e), true);
		}
	};
	return { el, body, status, run };
}
