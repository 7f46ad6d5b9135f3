// The webmail API methods, named once; parameters and results are checked against the
// server's definitions (api.gen.ts).
import type * as T from "./types"
import { client } from "./client"

export const api = {
  Mailboxes: () => client.call("Mailboxes"),
  MailboxCreate: (name: string) => client.call("MailboxCreate", name),
  MailboxRename: (oldName: string, newName: string) => client.call("MailboxRename", oldName, newName),
  MailboxDelete: (name: string) => client.call("MailboxDelete", name),
  MailboxEmpty: (id: number) => client.call("MailboxEmpty", id),
  MessageList: (req: T.ListRequest) => client.call("MessageList", req),
  Thread: (threadId: number) => client.call("Thread", threadId),
  Search: (req: T.SearchRequest) => client.call("Search", req),
  Message: (id: number) => client.call("Message", id),
  FlagsChange: (ids: number[], action: "add" | "remove", flags: string[]) => client.call("FlagsChange", ids, action, flags),
  Move: (ids: number[], dest: string) => client.call("Move", ids, dest),
  Copy: (ids: number[], dest: string) => client.call("Copy", ids, dest),
  Delete: (ids: number[]) => client.call("Delete", ids),
  Archive: (ids: number[]) => client.call("Archive", ids),
  Junk: (ids: number[], junk: boolean) => client.call("Junk", ids, junk),
  RuleAnswer: (prompt: T.RulePrompt, answer: T.RuleAnswerKind) => client.call("RuleAnswer", prompt, answer),
  RemoteAllow: (address: string, allow: boolean) => client.call("RemoteAllow", address, allow),
  Settings: () => client.call("Settings"),
  SettingsSave: (s: T.Settings) => client.call("SettingsSave", s),
  FromChoices: () => client.call("FromChoices"),
  ComposeTemplate: (id: number, mode: T.ReplyMode) => client.call("ComposeTemplate", id, mode),
  DraftSave: (form: T.ComposeForm) => client.call("DraftSave", form),
  DraftOpen: (id: number) => client.call("DraftOpen", id),
  Send: (form: T.ComposeForm) => client.call("Send", form),
  Scheduled: () => client.call("Scheduled"),
  ScheduledReschedule: (id: number, sendAt: number) => client.call("ScheduledReschedule", id, sendAt),
  ScheduledCancel: (id: number) => client.call("ScheduledCancel", id),
  Complete: (prefix: string) => client.call("Complete", prefix),
  EventToken: () => client.call("EventToken"),
}
