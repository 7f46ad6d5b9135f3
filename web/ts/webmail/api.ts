// The webmail API calls, typed. `call` is the shared client of web/ts/lib (CSRF header, login
// on user:noAuth/user:badAuth, retry); this module only names the methods.
import type * as T from "./types"
import { call } from "./client"

export const api = {
  Mailboxes: () => call<T.Mailboxes>("Mailboxes"),
  MailboxCreate: (name: string) => call<null>("MailboxCreate", name),
  MailboxRename: (oldName: string, newName: string) => call<null>("MailboxRename", oldName, newName),
  MailboxDelete: (name: string) => call<null>("MailboxDelete", name),
  MailboxEmpty: (id: number) => call<number>("MailboxEmpty", id),
  MessageList: (req: T.ListRequest) => call<T.MessageList>("MessageList", req),
  Thread: (threadId: number) => call<T.MessageItem[]>("Thread", threadId),
  Search: (req: T.SearchRequest) => call<T.SearchResult>("Search", req),
  Message: (id: number) => call<T.MessageView>("Message", id),
  FlagsChange: (ids: number[], action: "add" | "remove", flags: string[]) => call<number>("FlagsChange", ids, action, flags),
  Move: (ids: number[], dest: string) => call<T.MoveResult>("Move", ids, dest),
  Copy: (ids: number[], dest: string) => call<number>("Copy", ids, dest),
  Delete: (ids: number[]) => call<number>("Delete", ids),
  Archive: (ids: number[]) => call<number>("Archive", ids),
  Junk: (ids: number[], junk: boolean) => call<number>("Junk", ids, junk),
  RuleAnswer: (prompt: T.RulePrompt, answer: T.RuleAnswerKind) => call<null>("RuleAnswer", prompt, answer),
  RemoteAllow: (address: string, allow: boolean) => call<null>("RemoteAllow", address, allow),
  Settings: () => call<T.Settings>("Settings"),
  SettingsSave: (s: T.Settings) => call<T.Settings>("SettingsSave", s),
  FromChoices: () => call<T.AddressView[]>("FromChoices"),
  ComposeTemplate: (id: number, mode: T.ReplyMode) => call<T.ComposeForm>("ComposeTemplate", id, mode),
  DraftSave: (form: T.ComposeForm) => call<number>("DraftSave", form),
  DraftOpen: (id: number) => call<T.ComposeForm>("DraftOpen", id),
  Send: (form: T.ComposeForm) => call<T.Sent>("Send", form),
  Complete: (prefix: string) => call<T.Correspondent[]>("Complete", prefix),
  EventToken: () => call<string>("EventToken"),
}
