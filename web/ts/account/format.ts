// Formatting and file helpers of the account page.

export function formatSize(n: number): string {
	if (n < 1024) return `${n} B`;
	const units = ["KiB", "MiB", "GiB", "TiB"];
	let v = n / 1024;
	let i = 0;
	while (v >= 1024 && i < units.length - 1) {
		v /= 1024;
		i++;
	}
	return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

// "7d", "12h", "1d12h", "30m", "0" <-> seconds (the CLI's duration form).
export function formatDuration(seconds: number): string {
	if (!seconds) return "0";
	const units: [string, number][] = [
		["d", 86400],
		["h", 3600],
		["m", 60],
		["s", 1],
	];
	let out = "";
	for (const [unit, size] of units) {
		if (seconds >= size) {
			out += `${Math.floor(seconds / size)}${unit}`;
			seconds %= size;
		}
	}
	return out;
}

export function parseDuration(text: string): number | null {
	const t = text.trim().toLowerCase();
	if (/^\d+$/.test(t)) return parseInt(t, 10);
	if (!/^(\d+[wdhms])+$/.test(t)) return null;
	const sizes: Record<string, number> = { w: 604800, d: 86400, h: 3600, m: 60, s: 1 };
	let total = 0;
	for (const m of t.matchAll(/(\d+)([wdhms])/g)) total += parseInt(m[1] ?? "0", 10) * (sizes[m[2] ?? "s"] ?? 1);
	return total;
}

// Offers bytes as a file download.
export function download(data: BlobPart, filename: string, type: string): void {
	const url = URL.createObjectURL(new Blob([data], { type }));
	const a = document.createElement("a");
	a.href = url;
	a.download = filename;
	document.body.appendChild(a);
	a.click();
	a.remove();
	setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function base64Bytes(text: string): Uint8Array<ArrayBuffer> {
	const raw = atob(text);
	const out = new Uint8Array(new ArrayBuffer(raw.length));
	for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
	return out;
}
