// Shapes of the account API's answers: the generated schema types (api.gen.ts), and the
// import's progress lines, which come from the upload, not the JSON API.

import type { Schemas } from "./client"

export type Overview = Schemas["Overview"]
export type KeyInfo = Schemas["KeyInfo"]
export type GeneratedKey = Schemas["GeneratedKey"]
export type RulesetSpec = Schemas["RulesetSpec"]
export type JunkSettings = Schemas["JunkSettings"]
export type ClientSettings = Schemas["ClientSettings"]
export type MailboxName = Schemas["MailboxName"]
export type Suppression = Schemas["Suppression"]

export interface ImportProgress {
	read: number
	total: number
	messages: number
	skipped: number
	mailbox: string
}

export interface ImportResult {
	messages: number
	skipped: number
	mailboxes: string[]
	problems: string[]
}
