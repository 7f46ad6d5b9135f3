// The webmail API's types, as mailsrv/ops/webmail*.py and mailsrv/web/webmail/api.py define them.

export interface SummaryAddress { name: string; addr: string }
export interface AddressView { name: string; address: string }
export interface Mailbox { address: string; name: string }

export interface MailboxView {
  id: number; name: string; special_use: string; messages: number; unseen: number; size: number; subscribed: boolean
}
export interface Mailboxes { mailboxes: MailboxView[]; seq: number }

export interface MessageItem {
  id: number; mailbox_id: number; uid: number; flags: string[]; size: number; received: number; date: number
  subject: string; from: SummaryAddress[]; to: SummaryAddress[]; preview: string; has_attachment: boolean
  thread_id: number; thread_count: number; thread_unread: number
}
export type SortKey = "date" | "arrival" | "from" | "subject" | "size"
export interface ListRequest {
  mailbox_id: number; sort: SortKey; descending: boolean; count: number; anchor: string | null; threaded: boolean
}
export interface MessageList { messages: MessageItem[]; next: string | null; total: number }
export interface SearchRequest { query: string; mailbox_id: number; offset: number; count: number }
export interface SearchResult { messages: MessageItem[]; total: number; next_offset: number | null; mailbox_ids: number[] }

export interface TextBlock { quote: number; text: string; links: [number, number, string][] }
export interface AttachmentView {
  path: string; filename: string; content_type: string; size: number; inline: boolean; content_id: string
}
export interface DkimResult { result: string; domain: string }
export interface AuthVerdict {
  spf: string; spf_domain: string; dkim: DkimResult[]; dmarc: string; dmarc_domain: string
  verified_domains: string[]; from_verified: boolean
}
export interface MessageView {
  id: number; mailbox_id: number; uid: number; flags: string[]; size: number; received: number; date: number
  subject: string; from: AddressView[]; sender: AddressView[]; reply_to: AddressView[]; to: AddressView[]
  cc: AddressView[]; bcc: AddressView[]; message_id: string; in_reply_to: string; references: string[]
  list_id: string; text: TextBlock[]; text_truncated: boolean; has_html: boolean; html_blocked: number
  remote_allowed: boolean; attachments: AttachmentView[]; auth: AuthVerdict
}

export interface RulesetSpec {
  smtp_mail_from?: string; msg_from?: string; verified_domain?: string; headers?: [string, string][]
  mailbox?: string; is_list?: boolean; accept_regardless?: boolean; comment?: string
}
export interface RulePrompt {
  kind: "create" | "remove"; message_id: number; mailbox: string; from_address: string
  list_id: string; verified_domain: string; ruleset: RulesetSpec
}
export type RuleAnswerKind = "yes" | "no-sender" | "no-mailbox" | "later"
export interface MoveResult { moved: number; prompt: RulePrompt | null }

export interface Settings {
  show: "html" | "text"; remote: "ask" | "never" | "always"; signature: string; quoting: "bottom" | "top"
  threading: boolean; page_size: number
}

export interface AttachmentRef {
  upload: string; message_id: number; path: string; filename: string; content_type: string; size: number
}
export interface ComposeForm {
  from: string; to: Mailbox[]; cc: Mailbox[]; bcc: Mailbox[]; subject: string; text: string; html: string
  attachments: AttachmentRef[]; reply_to_id: number; forward_ids: number[]; forwarded_id: number
  in_reply_to: string; references: string[]; draft_id: number; requiretls: boolean
}
export interface Sent { message_id: string; sent_copy: number; queued: boolean }
export interface Upload { token: string; filename: string; content_type: string; size: number }
export interface Correspondent { address: string; name: string; last: number; count: number }
export type ReplyMode = "reply" | "all" | "forward" | "forward-attached"

export interface MailboxCounts {
  mailbox_id: number; name: string; messages: number; unseen: number; size: number; highest_modseq: number
}
export interface ChangeItem {
  seq: number; kind: "delivered" | "appended" | "copied" | "moved" | "flags" | "expunged" | "mailboxes"
  mailbox_id: number; uids: number[]; to_mailbox_id: number; to_uids: number[]; names: string[]
  counts: MailboxCounts[]; messages: MessageItem[]; truncated: boolean
}
