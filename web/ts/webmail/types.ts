// The webmail API's types: generated from the server's definitions (api.gen.ts, `npm run gen`),
// plus the event stream's payload, which is not an API method's result.
import type { components } from "./api.gen"

type S = components["schemas"]
export type SummaryAddress = S["SummaryAddress"]
export type AddressView = S["AddressView"]
export type Mailbox = S["Mailbox"]
export type MailboxView = S["MailboxView"]
export type Mailboxes = S["Mailboxes"]
export type MessageItem = S["MessageItem"]
export type ListRequest = S["ListRequest"]
export type MessageList = S["MessageList"]
export type SearchRequest = S["SearchRequest"]
export type SearchResult = S["SearchResult"]
export type TextBlock = S["TextBlock"]
export type AttachmentView = S["AttachmentView"]
export type AuthVerdict = S["AuthVerdict"]
export type MessageView = S["MessageView"]
export type RulesetSpec = S["RulesetSpec"]
export type RulePrompt = S["RulePrompt"]
export type MoveResult = S["MoveResult"]
export type Settings = S["Settings"]
export type AttachmentRef = S["AttachmentRef"]
export type ComposeForm = S["ComposeForm"]
export type Sent = S["Sent"]
export type Correspondent = S["Correspondent"]
export type ScheduledItem = S["ScheduledItem"]
export type SortKey = NonNullable<ListRequest["sort"]>
export type ReplyMode = "reply" | "all" | "forward" | "forward-attached"
export type RuleAnswerKind = "yes" | "no-sender" | "no-mailbox" | "later"
export interface Upload { token: string; filename: string; content_type: string; size: number }

// One entry of the `events` stream (mailsrv/ops/webmail.py ChangeItem).
export interface MailboxCounts {
  mailbox_id: number; name: string; messages: number; unseen: number; size: number; highest_modseq: number
}
export interface ChangeItem {
  seq: number; kind: "delivered" | "appended" | "copied" | "moved" | "flags" | "expunged" | "mailboxes"
  mailbox_id: number; uids: number[]; to_mailbox_id: number; to_uids: number[]; names: string[]
  counts: MailboxCounts[]; messages: MessageItem[]; truncated: boolean
}
