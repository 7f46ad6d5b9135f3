// npm run build: web/ts/<iface>/main.ts → mailsrv/web/static/<iface>/app.js (one bundle per interface,
// committed so a pip install needs no Node), and the test fixture's bundle.
import { existsSync, readdirSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import * as esbuild from "esbuild"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const bundles = []
for (const iface of readdirSync(join(root, "web", "ts"))) {
	const entry = join(root, "web", "ts", iface, "main.ts")
	if (iface !== "lib" && existsSync(entry)) {
		bundles.push([entry, join(root, "mailsrv", "web", "static", iface, "app.js")])
	}
}
bundles.push([join(root, "tests", "web", "example_ts", "main.ts"), join(root, "tests", "web", "example_static", "app.js")])
for (const [entry, outfile] of bundles) {
	await esbuild.build({
		entryPoints: [entry],
		outfile,
		bundle: true,
		format: "iife",
		target: "es2022",
		charset: "utf8",
		legalComments: "none",
		logLevel: "warning",
	})
	console.log(outfile.slice(root.length + 1))
}
