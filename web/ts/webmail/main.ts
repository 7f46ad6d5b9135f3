// The webmail page: mailbox list, message list, message view, search, live updates, the
// "make a rule?" prompt, keyboard shortcuts. Compose is in compose.ts.
import type * as T from "./types"
import { api } from "./api"
import { h, clear } from "./dom"
import { csrfToken, logout } from "./client"
import { openCompose } from "./compose"
import { showScheduled } from "./scheduled"

// Symbols every system font has (no emoji font needed).
const SPECIAL_ICONS: Record<string, string> = {
  "": "▸", "\\Sent": "➤", "\\Archive": "▤", "\\Trash": "✖", "\\Drafts": "✎", "\\Junk": "⚠",
}
const LABEL_COLOURS = ["#d33", "#d80", "#3a3", "#28c", "#85c", "#888"]

interface MailboxSource { kind: "mailbox"; id: number }
interface SearchSource { kind: "search"; query: string; mailboxId: number }
type Source = MailboxSource | SearchSource

const state = {
  mailboxes: [] as T.MailboxView[],
  source: { kind: "mailbox", id: 0 } as Source,
  rows: [] as T.MessageItem[],
  next: null as string | null,
  nextOffset: null as number | null,
  total: 0,
  selected: new Set<number>(),
  focus: -1,
  openId: 0,
  open: null as T.MessageView | null,
  settings: null as Required<T.Settings> | null,
  sort: "date" as T.SortKey,
  descending: true,
  seq: 0,
  events: null as EventSource | null,
  expanded: new Set<number>(), // thread ids shown expanded
}

// The Scheduled view is shown where a message is (send later, scheduled.ts).
let showingScheduled = false

const el = {
  nav: h("nav", { id: "mailboxes", "aria-label": "Mailboxes" }),
  listTitle: h("h2", { id: "list-title" }),
  list: h("ul", { id: "messages", role: "listbox", "aria-multiselectable": "true" }),
  more: h("button", { id: "more", type: "button", hidden: true }, "More"),
  view: h("section", { id: "view", "aria-live": "polite" }),
  status: h("div", { id: "status", role: "status" }),
  query: h("input", { id: "q", type: "search", placeholder: "Search (from: to: subject: has:attachment is:unread …)", autocomplete: "off" }),
  moveSelect: h("select", { id: "move-to", title: "Move to (m)" }),
  sortSelect: h("select", { id: "sort", title: "Sort" }),
  threaded: h("input", { id: "threaded", type: "checkbox" }),
  selectAll: h("input", { id: "select-all", type: "checkbox", title: "Select all" }),
}

// A URL of ours for GET (the iframe, images, downloads): the session cookie plus the CSRF
// token as a query field, since these requests cannot carry the header.
export function contentURL(path: string, query = ""): string {
  return `${path}?csrf=${encodeURIComponent(csrfToken())}${query ? "&" + query : ""}`
}

function status(text: string, error = false): void {
  el.status.textContent = text
  el.status.className = error ? "error" : ""
  if (text && !error) setTimeout(() => { if (el.status.textContent === text) el.status.textContent = "" }, 4000)
}

async function guarded<R>(f: () => Promise<R>): Promise<R | undefined> {
  try {
    return await f()
  } catch (e) {
    status(e instanceof Error ? e.message : String(e), true)
    return undefined
  }
}

function fmtDate(seconds: number, long = false): string {
  const d = new Date(seconds * 1000)
  const now = new Date()
  if (!long && d.toDateString() === now.toDateString()) return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
  if (!long && d.getFullYear() === now.getFullYear()) return d.toLocaleDateString([], { month: "short", day: "numeric" })
  return long ? d.toLocaleString() : d.toLocaleDateString()
}

export function fmtSize(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`
  return `${(n / 1024 / 1024).toFixed(1)} MB`
}

function who(addrs: T.SummaryAddress[]): string {
  return addrs.map(a => a.name || a.addr).join(", ") || "(nobody)"
}

function mailboxById(id: number): T.MailboxView | undefined {
  return state.mailboxes.find(m => m.id === id)
}

function special(use: string): T.MailboxView | undefined {
  return state.mailboxes.find(m => m.special_use === use)
}

// --- mailboxes -------------------------------------------------------------------------------

async function loadMailboxes(): Promise<void> {
  const result = await api.Mailboxes()
  state.mailboxes = result.mailboxes
  if (!state.seq) state.seq = result.seq
  renderMailboxes()
}

function renderMailboxes(): void {
  clear(el.nav)
  const ul = h("ul")
  for (const mb of state.mailboxes) {
    const active = state.source.kind === "mailbox" && state.source.id === mb.id
    const depth = mb.name.split("/").length - 1
    const li = h("li", {
      className: "mailbox" + (active ? " active" : "") + (mb.unseen ? " has-unseen" : ""),
      "data-name": mb.name,
      "data-id": String(mb.id),
      style: { paddingLeft: `${0.5 + depth}em` },
      onclick: () => { void selectMailbox(mb.id) },
      ondragover: (e: DragEvent) => { e.preventDefault(); li.classList.add("drop") },
      ondragleave: () => li.classList.remove("drop"),
      ondrop: (e: DragEvent) => {
        e.preventDefault()
        li.classList.remove("drop")
        const ids = (e.dataTransfer?.getData("text/x-mailsrv-ids") ?? "").split(",").filter(Boolean).map(Number)
        if (ids.length) void moveTo(ids, mb.name)
      },
    },
      h("span", { className: "icon", "aria-hidden": "true" }, mb.name === "INBOX" ? "✉" : SPECIAL_ICONS[mb.special_use] ?? "▸"),
      h("span", { className: "name" }, mb.name.split("/").pop() ?? mb.name),
      mb.unseen ? h("span", { className: "count", title: `${mb.unseen} unread` }, String(mb.unseen)) : null,
    )
    ul.appendChild(li)
  }
  ul.appendChild(h("li", { className: "mailbox scheduled-link" + (showingScheduled ? " active" : ""), id: "scheduled-link", onclick: () => void openScheduled() },
    h("span", { className: "icon", "aria-hidden": "true" }, "◷"),
    h("span", { className: "name" }, "Scheduled")))
  const tools = h("div", { className: "mailbox-tools" },
    h("button", { type: "button", id: "mailbox-create", title: "New mailbox", onclick: () => void mailboxCreate() }, "+ New"),
    h("button", { type: "button", title: "Rename the selected mailbox", onclick: () => void mailboxRename() }, "Rename"),
    h("button", { type: "button", title: "Delete the selected mailbox", onclick: () => void mailboxDelete() }, "Delete"),
    h("button", { type: "button", id: "mailbox-empty", title: "Delete every message of the selected mailbox", onclick: () => void mailboxEmpty() }, "Empty"),
  )
  el.nav.append(ul, tools)
  clear(el.moveSelect)
  el.moveSelect.append(h("option", { value: "" }, "Move to…"))
  for (const mb of state.mailboxes) el.moveSelect.append(h("option", { value: mb.name }, mb.name))
  const inbox = state.mailboxes.find(m => m.name === "INBOX")
  document.title = inbox && inbox.unseen ? `(${inbox.unseen}) Mail` : "Mail"
}

function currentMailbox(): T.MailboxView | undefined {
  return state.source.kind === "mailbox" ? mailboxById(state.source.id) : undefined
}

async function mailboxCreate(): Promise<void> {
  const name = prompt("Name of the new mailbox (use / for a sub-mailbox):")
  if (!name) return
  await guarded(async () => { await api.MailboxCreate(name); await loadMailboxes() })
}

async function mailboxRename(): Promise<void> {
  const mb = currentMailbox()
  if (!mb || mb.name === "INBOX") return status("Select a mailbox other than the Inbox first", true)
  const name = prompt(`New name for ${mb.name}:`, mb.name)
  if (!name || name === mb.name) return
  await guarded(async () => { await api.MailboxRename(mb.name, name); await loadMailboxes() })
}

async function mailboxDelete(): Promise<void> {
  const mb = currentMailbox()
  if (!mb || mb.name === "INBOX") return status("Select a mailbox other than the Inbox first", true)
  if (!confirm(`Delete ${mb.name} and its ${mb.messages} messages?`)) return
  await guarded(async () => {
    await api.MailboxDelete(mb.name)
    await loadMailboxes()
    await selectMailbox(state.mailboxes[0]?.id ?? 0)
  })
}

async function mailboxEmpty(): Promise<void> {
  const mb = currentMailbox()
  if (!mb) return
  if (!confirm(`Delete all ${mb.messages} messages of ${mb.name} for good?`)) return
  await guarded(async () => { await api.MailboxEmpty(mb.id); await reloadList() })
}

// --- the message list ------------------------------------------------------------------------

async function selectMailbox(id: number): Promise<void> {
  state.source = { kind: "mailbox", id }
  el.query.value = ""
  renderMailboxes()
  document.body.classList.remove("show-nav")
  showPane("list")
  await reloadList()
}

async function reloadList(): Promise<void> {
  state.rows = []
  state.next = null
  state.nextOffset = null
  state.selected.clear()
  state.focus = -1
  await loadMore()
}

function pageSize(): number { return state.settings?.page_size ?? 50 }

async function loadMore(): Promise<void> {
  const src = state.source
  await guarded(async () => {
    if (src.kind === "mailbox") {
      const page = await api.MessageList({
        mailbox_id: src.id, sort: state.sort, descending: state.descending, count: pageSize(),
        anchor: state.next, threaded: el.threaded.checked,
      })
      state.rows.push(...page.messages)
      state.next = page.next
      state.total = page.total

    } else {
      const result = await api.Search({ query: src.query, mailbox_id: src.mailboxId, offset: state.nextOffset ?? 0, count: pageSize() })
      state.rows.push(...result.messages)
      state.nextOffset = result.next_offset
      state.total = result.total
    }
    renderList()
  })
}

function hasMore(): boolean {
  return state.source.kind === "mailbox" ? state.next !== null : state.nextOffset !== null
}

function renderList(): void {
  const src = state.source
  el.listTitle.textContent = src.kind === "mailbox"
    ? `${mailboxById(src.id)?.name ?? ""} · ${state.total} message${state.total === 1 ? "" : "s"}`
    : `Search: ${src.query} · ${state.total} found`
  clear(el.list)
  state.rows.forEach((m, i) => el.list.appendChild(row(m, i)))
  if (!state.rows.length) el.list.appendChild(h("li", { className: "empty" }, "No messages"))
  el.more.hidden = !hasMore()
  el.selectAll.checked = state.rows.length > 0 && state.selected.size === state.rows.length
}

function labelsOf(flags: string[]): string[] {
  return flags.filter(f => !f.startsWith("\\") && !f.startsWith("$"))
}

function labelColour(label: string): string {
  let hash = 0
  for (const ch of label) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0
  return LABEL_COLOURS[hash % LABEL_COLOURS.length] ?? "#888"
}

function row(m: T.MessageItem, index: number): HTMLLIElement {
  const unread = !m.flags.includes("\\Seen")
  const flagged = m.flags.includes("\\Flagged")
  const checkbox = h("input", {
    type: "checkbox", className: "pick", checked: state.selected.has(m.id), "aria-label": "Select",
    onclick: (e: MouseEvent) => { e.stopPropagation(); toggleSelect(m.id, (e.target as HTMLInputElement).checked) },
  })
  const li = h("li", {
    className: "msg" + (unread || m.thread_unread ? " unread" : "") + (flagged ? " flagged" : "")
      + (state.selected.has(m.id) ? " selected" : "") + (index === state.focus ? " focused" : "")
      + (m.id === state.openId ? " open" : ""),
    "data-id": String(m.id),
    role: "option",
    draggable: "true",
    "aria-selected": state.selected.has(m.id) ? "true" : "false",
    onclick: (e: MouseEvent) => onRowClick(e, m, index),
    ondragstart: (e: DragEvent) => {
      const ids = state.selected.has(m.id) ? [...state.selected] : [m.id]
      e.dataTransfer?.setData("text/x-mailsrv-ids", ids.join(","))
    },
  },
    checkbox,
    h("button", {
      type: "button", className: "star", title: flagged ? "Unflag (s)" : "Flag (s)", "aria-pressed": flagged ? "true" : "false",
      onclick: (e: MouseEvent) => { e.stopPropagation(); void setFlags([m.id], flagged ? "remove" : "add", ["\\Flagged"]) },
    }, flagged ? "★" : "☆"),
    h("span", { className: "from" }, who(m.from)),
    (m.thread_count ?? 1) > 1 ? h("button", {
      type: "button", className: "thread-count", title: "Show the conversation",
      onclick: (e: MouseEvent) => { e.stopPropagation(); void toggleThread(m) },
    }, String(m.thread_count)) : null,
    h("span", { className: "subject" }, m.subject || "(no subject)",
      ...labelsOf(m.flags).map(l => h("span", { className: "label", style: { background: labelColour(l) } }, l)),
      h("span", { className: "preview" }, " — " + m.preview)),
    m.has_attachment ? h("span", { className: "clip", title: "Has attachments", "aria-label": "Has attachments" }, "⊕") : null,
    h("span", { className: "date", title: fmtDate(m.date, true) }, fmtDate(m.date)),
    h("span", { className: "size" }, fmtSize(m.size)),
  )
  return li
}

async function toggleThread(m: T.MessageItem): Promise<void> {
  const index = state.rows.findIndex(r => r.id === m.id)
  if (state.expanded.has(m.thread_id)) {
    state.expanded.delete(m.thread_id)
    state.rows = state.rows.filter(r => r.thread_id !== m.thread_id || r.id === m.id)
  } else {
    const all = await guarded(() => api.Thread(m.thread_id))
    if (!all) return
    state.expanded.add(m.thread_id)
    const others = all.filter(r => r.id !== m.id).map(r => ({ ...r, thread_count: 1 }))
    state.rows.splice(index + 1, 0, ...others)
  }
  renderList()
}

function toggleSelect(id: number, on: boolean): void {
  if (on) state.selected.add(id)
  else state.selected.delete(id)
  renderList()
}

function onRowClick(e: MouseEvent, m: T.MessageItem, index: number): void {
  if (e.shiftKey && state.focus >= 0) {
    const [a, b] = [Math.min(state.focus, index), Math.max(state.focus, index)]
    for (let i = a; i <= b; i++) { const r = state.rows[i]; if (r) state.selected.add(r.id) }
    renderList()
    return
  }
  if (e.ctrlKey || e.metaKey) {
    toggleSelect(m.id, !state.selected.has(m.id))
    return
  }
  state.focus = index
  void openMessage(m.id)
}

function targets(): number[] {
  if (state.selected.size) return [...state.selected]
  if (state.openId) return [state.openId]
  const focused = state.rows[state.focus]
  return focused ? [focused.id] : []
}

function removeRows(ids: number[]): void {
  const gone = new Set(ids)
  const openGone = gone.has(state.openId)
  const index = state.rows.findIndex(r => gone.has(r.id))
  const before = state.rows.length
  state.rows = state.rows.filter(r => !gone.has(r.id))
  state.total = Math.max(0, state.total - (before - state.rows.length))
  for (const id of ids) state.selected.delete(id)
  if (openGone) {
    const next = state.rows[Math.min(Math.max(index, 0), state.rows.length - 1)]
    state.openId = 0
    state.open = null
    clear(el.view)
    if (next) { state.focus = state.rows.indexOf(next); void openMessage(next.id) }
  }
  renderList()
}

// --- actions ---------------------------------------------------------------------------------

async function setFlags(ids: number[], action: "add" | "remove", flags: string[]): Promise<void> {
  if (!ids.length) return
  await guarded(async () => {
    await api.FlagsChange(ids, action, flags)
    for (const r of state.rows) {
      if (!ids.includes(r.id)) continue
      r.flags = action === "add" ? [...new Set([...r.flags, ...flags])] : r.flags.filter(f => !flags.includes(f))
      if (flags.includes("\\Seen")) r.thread_unread = action === "add" ? 0 : 1
    }
    if (state.open && ids.includes(state.open.id)) {
      state.open.flags = action === "add" ? [...new Set([...state.open.flags, ...flags])] : state.open.flags.filter(f => !flags.includes(f))
      renderViewFlags()
    }
    renderList()
  })
}

async function moveTo(ids: number[], dest: string): Promise<void> {
  if (!ids.length) return
  const result = await guarded(() => api.Move(ids, dest))
  if (!result) return
  status(`Moved ${result.moved} to ${dest}`)
  if (state.source.kind === "mailbox") removeRows(ids)
  if (result.prompt) showRulePrompt(result.prompt)
}

async function bulk(kind: "delete" | "archive" | "junk" | "notjunk"): Promise<void> {
  const ids = targets()
  if (!ids.length) return
  const done = await guarded(() =>
    kind === "delete" ? api.Delete(ids) : kind === "archive" ? api.Archive(ids) : api.Junk(ids, kind === "junk"))
  if (done === undefined) return
  status({ delete: "Deleted", archive: "Archived", junk: "Marked as junk", notjunk: "Marked as not junk" }[kind] + ` (${done})`)
  if (state.source.kind === "mailbox") removeRows(ids)
}

// --- the "make a rule?" prompt --------------------------------------------------------------

function showRulePrompt(p: T.RulePrompt): void {
  const what = p.list_id ? `messages from the mailing list ${p.list_id} (verified by ${p.verified_domain})` : `messages from ${p.from_address}`
  const question = p.kind === "create"
    ? `Deliver future ${what} to ${p.mailbox} automatically?`
    : `Stop delivering ${what} to ${p.mailbox}?`
  const box = h("div", { id: "rule-prompt", className: "dialog", role: "dialog", "aria-label": "Make a rule?" })
  const answer = (a: T.RuleAnswerKind): void => {
    box.remove()
    void guarded(async () => {
      await api.RuleAnswer(p, a)
      if (a === "yes") status(p.kind === "create" ? "Rule created (edit rules on the account page)" : "Rule removed")
    })
  }
  box.append(
    h("p", null, question),
    h("div", { className: "buttons" },
      h("button", { type: "button", id: "rule-yes", onclick: () => answer("yes") }, "Yes"),
      h("button", { type: "button", id: "rule-no-sender", onclick: () => answer("no-sender") }, p.list_id ? "No, not for this list" : "No, not for this sender"),
      h("button", { type: "button", id: "rule-no-mailbox", onclick: () => answer("no-mailbox") }, `No, not for ${p.mailbox}`),
      h("button", { type: "button", id: "rule-later", onclick: () => answer("later") }, "Not now"),
    ),
  )
  document.getElementById("rule-prompt")?.remove()
  document.body.appendChild(box)
}

// --- the message view ------------------------------------------------------------------------

function showPane(pane: "list" | "view"): void {
  document.body.classList.toggle("show-view", pane === "view")
}

async function openMessage(id: number): Promise<void> {
  const view = await guarded(() => api.Message(id))
  if (!view) return
  state.openId = id
  state.open = view
  renderView(view)
  showPane("view")
  renderList()
  const isDraft = view.flags.includes("\\Draft")
  if (!view.flags.includes("\\Seen") && !isDraft) await setFlags([id], "add", ["\\Seen"])
}

function addressList(label: string, addrs: T.AddressView[]): HTMLElement | null {
  if (!addrs.length) return null
  return h("div", { className: "addr-line" }, h("span", { className: "addr-label" }, label + ": "),
    addrs.map((a, i) => [i ? ", " : "", h("span", { className: "addr", title: a.address }, a.name ? `${a.name} <${a.address}>` : a.address)]))
}

function verdictBadge(v: T.MessageView): HTMLElement {
  const auth = v.auth
  if (!auth.spf && !auth.dmarc && !(auth.dkim ?? []).length) {
    return h("span", { className: "auth none", title: "No authentication results (sent from this server, or not checked)" }, "not checked")
  }
  const dkim = (auth.dkim ?? []).map(d => `DKIM ${d.result} (${d.domain})`).join(", ") || "DKIM none"
  const detail = `SPF ${auth.spf || "none"}${auth.spf_domain ? ` (${auth.spf_domain})` : ""}, ${dkim}, DMARC ${auth.dmarc || "none"}`
  return h("span", { className: "auth " + (auth.from_verified ? "verified" : "unverified"), title: detail },
    auth.from_verified ? "✔ From verified" : "✖ From not verified", h("span", { className: "auth-detail" }, " · " + detail))
}

function renderViewFlags(): void {
  const v = state.open
  const holder = document.getElementById("view-flags")
  if (!v || !holder) return
  clear(holder)
  for (const label of labelsOf(v.flags)) {
    holder.append(h("span", { className: "label", style: { background: labelColour(label) } }, label,
      h("button", { type: "button", title: "Remove label", onclick: () => void setFlags([v.id], "remove", [label]) }, "×")))
  }
  holder.append(h("button", {
    type: "button", className: "add-label", title: "Add a label (l)",
    onclick: () => addLabel(),
  }, "+ label"))
}

function addLabel(): void {
  const v = state.open
  const ids = targets()
  const label = prompt("Label (keyword) to add:")
  if (label && (v || ids.length)) void setFlags(ids, "add", [label.replace(/\s+/g, "_")])
}

function textBody(blocks: T.TextBlock[]): HTMLElement {
  const pre = h("div", { className: "text-body" })
  for (const b of blocks) {
    const block = h(b.quote ? "blockquote" : "div", { className: `quote-${Math.min(b.quote, 3)}` })
    let pos = 0
    for (const [start, end, href] of b.links ?? []) {
      block.append(b.text.slice(pos, start), h("a", { href, target: "_blank", rel: "noopener noreferrer" }, b.text.slice(start, end)))
      pos = end
    }
    block.append(b.text.slice(pos))
    pre.append(block)
  }
  return pre
}

function htmlFrame(v: T.MessageView, remote: boolean): HTMLIFrameElement {
  const frame = h("iframe", {
    id: "html-frame",
    title: "Message",
    sandbox: "allow-same-origin allow-popups allow-popups-to-escape-sandbox",
    referrerpolicy: "no-referrer",
    src: contentURL(`msg/${v.id}/html`, remote ? "remote=1" : ""),
  })
  frame.addEventListener("load", () => {
    const doc = frame.contentDocument
    if (doc?.documentElement) frame.style.height = `${doc.documentElement.scrollHeight + 20}px`
  })
  return frame
}

function renderView(v: T.MessageView): void {
  if (showingScheduled) {
    showingScheduled = false
    renderMailboxes()
  }
  clear(el.view)
  const sender = v.from[0]
  const settings = state.settings
  let showHtml = v.has_html && (settings?.show ?? "html") === "html"
  let remote = v.remote_allowed
  const body = h("div", { className: "body" })
  const drawBody = (): void => {
    clear(body)
    if (showHtml) {
      if (v.html_blocked && !remote) {
        const bar = h("div", { className: "remote-bar", id: "remote-bar" },
          `${v.html_blocked} remote resource(s) blocked. `,
          h("button", { type: "button", id: "load-remote", onclick: () => { remote = true; drawBody() } }, "Load this time"),
          sender ? h("button", {
            type: "button", id: "allow-sender",
            onclick: () => void guarded(async () => { await api.RemoteAllow(sender.address, true); remote = true; drawBody() }),
          }, `Always for ${sender.address}`) : null)
        if (settings?.remote !== "never") body.append(bar)
      }
      body.append(htmlFrame(v, remote))
    } else {
      body.append(textBody(v.text))
      if (v.text_truncated) body.append(h("p", { className: "note" }, "The text was cut; open the raw message for all of it."))
    }
  }
  drawBody()
  const isDraft = v.flags.includes("\\Draft")
  const toolbar = h("div", { className: "view-tools" },
    h("button", { type: "button", className: "back", onclick: () => showPane("list") }, "← Back"),
    isDraft ? h("button", { type: "button", id: "edit-draft", onclick: () => void editDraft(v.id) }, "Edit draft") : null,
    h("button", { type: "button", id: "reply", title: "Reply (r)", onclick: () => void reply("reply") }, "Reply"),
    h("button", { type: "button", id: "reply-all", title: "Reply all (a)", onclick: () => void reply("all") }, "Reply all"),
    h("button", { type: "button", id: "forward", title: "Forward (f)", onclick: () => void reply("forward") }, "Forward"),
    h("button", { type: "button", title: "Forward as attachment", onclick: () => void reply("forward-attached") }, "Forward as attachment"),
    h("button", { type: "button", title: "Archive (e)", onclick: () => void bulk("archive") }, "Archive"),
    h("button", { type: "button", title: "Delete (#)", onclick: () => void bulk("delete") }, "Delete"),
    h("button", { type: "button", title: "Junk (!)", onclick: () => void bulk(mailboxById(v.mailbox_id)?.special_use === "\\Junk" ? "notjunk" : "junk") },
      mailboxById(v.mailbox_id)?.special_use === "\\Junk" ? "Not junk" : "Junk"),
    h("button", { type: "button", title: "Mark unread (u)", onclick: () => void setFlags([v.id], "remove", ["\\Seen"]) }, "Unread"),
    v.has_html ? h("button", { type: "button", id: "toggle-html", onclick: () => { showHtml = !showHtml; drawBody() } }, "HTML / text") : null,
    h("a", { href: contentURL(`msg/${v.id}/raw`), target: "_blank", rel: "noopener", id: "raw" }, "Raw"),
  )
  const attachments = v.attachments.length ? h("ul", { className: "attachments" }, v.attachments.map(a => {
    const url = `msg/${v.id}/part/${a.path}`
    const inlineURL = contentURL(url)
    const preview = /^image\/(png|jpeg|gif|webp)$/.test(a.content_type)
      ? h("img", { src: inlineURL, alt: a.filename, className: "thumb", loading: "lazy" }) : null
    return h("li", null, preview,
      h("a", { href: contentURL(url, "download=1"), download: a.filename || "attachment" }, a.filename || "(unnamed)"),
      ` ${a.content_type}, ${fmtSize(a.size)}`,
      /^(application\/pdf|image\/|text\/plain)/.test(a.content_type) ? [" ", h("a", { href: inlineURL, target: "_blank", rel: "noopener" }, "open")] : null)
  })) : null
  const parts: (HTMLElement | null)[] = [
    toolbar,
    h("h1", { className: "subject" }, v.subject || "(no subject)"),
    h("div", { className: "headers" },
      addressList("From", v.from), v.sender.length && v.sender[0]?.address !== sender?.address ? addressList("Sender", v.sender) : null,
      addressList("Reply-To", v.reply_to), addressList("To", v.to), addressList("Cc", v.cc), addressList("Bcc", v.bcc),
      h("div", { className: "addr-line" }, h("span", { className: "addr-label" }, "Date: "), fmtDate(v.date, true)),
      v.list_id ? h("div", { className: "addr-line" }, h("span", { className: "addr-label" }, "List: "), v.list_id) : null,
      h("div", { className: "addr-line" }, verdictBadge(v)),
      h("div", { id: "view-flags", className: "flags" }),
    ),
    attachments,
    body,
  ]
  for (const part of parts) if (part) el.view.append(part)
  renderViewFlags()
}

async function reply(mode: T.ReplyMode): Promise<void> {
  const id = state.openId || targets()[0]
  if (!id) return
  const form = await guarded(() => api.ComposeTemplate(id, mode))
  if (form) openCompose(form)
}

async function openScheduled(): Promise<void> {
  showingScheduled = true
  state.openId = 0
  state.open = null
  renderMailboxes()
  document.body.classList.remove("show-nav")
  showPane("view")
  await showScheduled(el.view, { notify: status, editDraft })
}

async function editDraft(id: number): Promise<void> {
  const form = await guarded(() => api.DraftOpen(id))
  if (form) openCompose(form)
}

// --- search ----------------------------------------------------------------------------------

async function search(query: string): Promise<void> {
  query = query.trim()
  if (!query) {
    if (state.source.kind === "search") await selectMailbox(state.source.mailboxId || state.mailboxes[0]?.id || 0)
    return
  }
  const here = state.source.kind === "mailbox" ? 0 : state.source.mailboxId
  state.source = { kind: "search", query, mailboxId: here }
  renderMailboxes()
  showPane("list")
  await reloadList()
}

function advancedSearch(): void {
  const existing = document.getElementById("advanced-search")
  if (existing) { existing.remove(); return }
  const field = (name: string, label: string, type = "text"): HTMLElement =>
    h("label", null, label, h("input", { name, type }))
  const form = h("form", { id: "advanced-search", className: "dialog" },
    field("from", "From"), field("to", "To"), field("subject", "Subject"), field("words", "Words"),
    field("after", "After", "date"), field("before", "Before", "date"), field("larger", "Larger than (e.g. 1M)"),
    h("label", null, h("input", { name: "attachment", type: "checkbox" }), "Has attachment"),
    h("label", null, h("input", { name: "unread", type: "checkbox" }), "Unread"),
    h("label", null, h("input", { name: "flagged", type: "checkbox" }), "Flagged"),
    h("label", null, "In", h("select", { name: "in" }, h("option", { value: "" }, "all mailboxes"),
      state.mailboxes.map(m => h("option", { value: m.name }, m.name)))),
    h("div", { className: "buttons" }, h("button", { type: "submit" }, "Search"),
      h("button", { type: "button", onclick: () => form.remove() }, "Close")),
  )
  form.addEventListener("submit", e => {
    e.preventDefault()
    const data = new FormData(form)
    const q = (s: string): string => (/\s/.test(s) ? `"${s}"` : s)
    const parts: string[] = []
    for (const key of ["from", "to", "subject", "after", "before", "larger"]) {
      const value = String(data.get(key) ?? "").trim()
      if (value) parts.push(`${key}:${q(value)}`)
    }
    if (data.get("attachment")) parts.push("has:attachment")
    if (data.get("unread")) parts.push("is:unread")
    if (data.get("flagged")) parts.push("is:flagged")
    const inbox = String(data.get("in") ?? "")
    parts.push(inbox ? `in:${q(inbox)}` : "in:all")
    const words = String(data.get("words") ?? "").trim()
    if (words) parts.push(words)
    el.query.value = parts.join(" ")
    form.remove()
    void search(el.query.value)
  })
  document.body.appendChild(form)
}

// --- live updates ----------------------------------------------------------------------------

function applyCounts(counts: T.MailboxCounts[]): void {
  for (const c of counts) {
    const mb = mailboxById(c.mailbox_id)
    if (mb) { mb.messages = c.messages; mb.unseen = c.unseen; mb.size = c.size }
  }
}

function rowKey(mailboxId: number, uid: number): string { return `${mailboxId}:${uid}` }

function applyChange(c: T.ChangeItem): void {
  applyCounts(c.counts)
  if (c.kind === "mailboxes") { void loadMailboxes(); return }
  const src = state.source
  if (src.kind !== "mailbox") { renderMailboxes(); return }
  const gone = new Set<string>()
  if (c.kind === "expunged" || c.kind === "moved") for (const uid of c.uids) gone.add(rowKey(c.mailbox_id, uid))
  if (gone.size) removeRows(state.rows.filter(r => gone.has(rowKey(r.mailbox_id, r.uid))).map(r => r.id))
  if (c.truncated) { void reloadList(); renderMailboxes(); return }
  for (const m of c.messages) {
    const existing = state.rows.findIndex(r => r.id === m.id)
    if (existing >= 0) {
      const old = state.rows[existing]
      state.rows[existing] = { ...m, thread_count: old?.thread_count ?? 1, thread_unread: m.flags.includes("\\Seen") ? 0 : 1 }
    } else if (m.mailbox_id === src.id && (c.kind !== "flags")) {
      let count = 1
      let unread = m.flags.includes("\\Seen") ? 0 : 1
      if (el.threaded.checked) {
        // The conversation's row moves to the new message, counting it.
        const sameThread = state.rows.findIndex(r => r.thread_id === m.thread_id)
        const old = state.rows[sameThread]
        if (old) {
          count += old.thread_count ?? 1
          unread += old.thread_unread ?? 0
          state.rows.splice(sameThread, 1)
        }
      }
      insertSorted({ ...m, thread_count: count, thread_unread: unread })
      state.total += 1
    }
  }
  renderMailboxes()
  renderList()
}

function insertSorted(m: T.MessageItem): void {
  const key = (r: T.MessageItem): number | string =>
    state.sort === "arrival" ? r.received : state.sort === "size" ? r.size : state.sort === "from" ? who(r.from).toLowerCase()
      : state.sort === "subject" ? r.subject.toLowerCase() : r.date
  const k = key(m)
  let i = state.rows.findIndex(r => (state.descending ? key(r) < k : key(r) > k))
  if (i < 0) {
    if (hasMore()) return // belongs to a page not loaded yet
    i = state.rows.length
  }
  state.rows.splice(i, 0, m)
  if (state.focus >= i) state.focus += 1
}

let reconnectDelay = 1000

async function connectEvents(): Promise<void> {
  state.events?.close()
  const token = await guarded(() => api.EventToken())
  if (!token) { setTimeout(() => void connectEvents(), 10000); return }
  const source = new EventSource(`events?token=${encodeURIComponent(token)}&since=${state.seq}`)
  state.events = source
  source.addEventListener("open", () => { reconnectDelay = 1000; document.body.classList.remove("offline") })
  source.addEventListener("change", (e: MessageEvent<string>) => {
    const change = JSON.parse(e.data) as T.ChangeItem
    if (change.seq <= state.seq) return
    state.seq = change.seq
    applyChange(change)
  })
  source.addEventListener("reload", (e: MessageEvent<string>) => {
    state.seq = (JSON.parse(e.data) as { next_seq: number }).next_seq
    void loadMailboxes().then(() => reloadList())
  })
  source.addEventListener("error", () => {
    // The token is single-use: reconnect with a new one, from the last seq seen.
    source.close()
    document.body.classList.add("offline")
    setTimeout(() => void connectEvents(), reconnectDelay)
    reconnectDelay = Math.min(reconnectDelay * 2, 30000)
  })
}

// --- settings --------------------------------------------------------------------------------

function openSettings(): void {
  const s = state.settings
  if (!s) return
  document.getElementById("settings")?.remove()
  const select = (name: string, value: string, options: [string, string][]): HTMLElement =>
    h("select", { name }, options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)))
  const form = h("form", { id: "settings", className: "dialog" },
    h("h2", null, "Settings"),
    h("label", null, "Show messages as ", select("show", s.show, [["html", "HTML when there is HTML"], ["text", "text"]])),
    h("label", null, "Remote images and resources ", select("remote", s.remote, [["ask", "blocked, with a button to load"], ["never", "blocked"], ["always", "always loaded"]])),
    h("label", null, "Reply ", select("quoting", s.quoting, [["bottom", "below the quoted text"], ["top", "above the quoted text"]])),
    h("label", null, h("input", { name: "threading", type: "checkbox", checked: s.threading }), " Group by conversation"),
    h("label", null, "Messages per page ", h("input", { name: "page_size", type: "number", min: "10", max: "500", value: String(s.page_size) })),
    h("label", null, "Signature", h("textarea", { name: "signature", rows: 4, value: s.signature })),
    h("div", { className: "buttons" }, h("button", { type: "submit" }, "Save"), h("button", { type: "button", onclick: () => form.remove() }, "Cancel")),
  )
  form.addEventListener("submit", e => {
    e.preventDefault()
    const d = new FormData(form)
    const next: T.Settings = {
      show: d.get("show") === "text" ? "text" : "html",
      remote: (String(d.get("remote")) as T.Settings["remote"]),
      quoting: d.get("quoting") === "top" ? "top" : "bottom",
      threading: d.get("threading") !== null,
      page_size: Number(d.get("page_size")),
      signature: String(d.get("signature") ?? ""),
    }
    void guarded(async () => {
      state.settings = fullSettings(await api.SettingsSave(next))
      el.threaded.checked = state.settings.threading
      form.remove()
      status("Settings saved")
      await reloadList()
    })
  })
  document.body.appendChild(form)
}

export function currentSettings(): Required<T.Settings> | null { return state.settings }

function fullSettings(s: T.Settings): Required<T.Settings> {
  return {
    show: s.show ?? "html", remote: s.remote ?? "ask", signature: s.signature ?? "", quoting: s.quoting ?? "bottom",
    threading: s.threading ?? true, page_size: s.page_size ?? 50,
  }
}
export function notify(text: string, error = false): void { status(text, error) }
export function refreshIfShowing(mailboxName: string): void {
  if (mailboxName === "Scheduled") {
    if (showingScheduled && !state.openId) void openScheduled()
    return
  }
  const mb = currentMailbox()
  if (mb && mb.name === mailboxName) void reloadList()
}

// --- keyboard --------------------------------------------------------------------------------

const SHORTCUTS: [string, string][] = [
  ["j / ↓", "next message"], ["k / ↑", "previous message"], ["o / Enter", "open"], ["x", "select"],
  ["r", "reply"], ["a", "reply all"], ["f", "forward"], ["c", "compose"], ["e", "archive"],
  ["# / Delete", "delete"], ["!", "junk"], ["m", "move to…"], ["u", "mark unread"], ["Shift+I", "mark read"],
  ["s", "flag / unflag"], ["l", "add a label"], ["/", "search"], ["Esc", "close"], ["?", "this list"],
]

function showHelp(): void {
  const existing = document.getElementById("shortcuts")
  if (existing) { existing.remove(); return }
  document.body.appendChild(h("div", { id: "shortcuts", className: "dialog", role: "dialog", "aria-label": "Keyboard shortcuts" },
    h("h2", null, "Keyboard shortcuts"),
    h("table", null, SHORTCUTS.map(([k, what]) => h("tr", null, h("th", null, k), h("td", null, what)))),
    h("button", { type: "button", onclick: () => document.getElementById("shortcuts")?.remove() }, "Close")))
}

function moveFocus(delta: number): void {
  if (!state.rows.length) return
  state.focus = Math.max(0, Math.min(state.rows.length - 1, state.focus + delta))
  const m = state.rows[state.focus]
  if (m) void openMessage(m.id)
  el.list.querySelector(".focused")?.scrollIntoView({ block: "nearest" })
}

function onKey(e: KeyboardEvent): void {
  const t = e.target as HTMLElement
  if (t.closest("input, textarea, select, [contenteditable]") || e.ctrlKey || e.metaKey || e.altKey) {
    if (e.key === "Escape" && t === el.query) el.query.blur()
    return
  }
  const open = state.open
  const actions: Record<string, () => void> = {
    j: () => moveFocus(1), ArrowDown: () => moveFocus(1), k: () => moveFocus(-1), ArrowUp: () => moveFocus(-1),
    o: () => { const m = state.rows[state.focus]; if (m) void openMessage(m.id) },
    Enter: () => { const m = state.rows[state.focus]; if (m) void openMessage(m.id) },
    x: () => { const m = state.rows[state.focus]; if (m) toggleSelect(m.id, !state.selected.has(m.id)) },
    r: () => void reply("reply"), a: () => void reply("all"), f: () => void reply("forward"),
    c: () => openCompose(null), e: () => void bulk("archive"), "#": () => void bulk("delete"), Delete: () => void bulk("delete"),
    "!": () => void bulk("junk"), m: () => el.moveSelect.focus(),
    u: () => void setFlags(targets(), "remove", ["\\Seen"]), I: () => void setFlags(targets(), "add", ["\\Seen"]),
    s: () => {
      const ids = targets()
      const first = state.rows.find(r => r.id === ids[0]) ?? open
      void setFlags(ids, first?.flags.includes("\\Flagged") ? "remove" : "add", ["\\Flagged"])
    },
    l: () => addLabel(),
    "/": () => el.query.focus(), "?": () => showHelp(),
    Escape: () => { for (const id of ["shortcuts", "settings", "advanced-search", "rule-prompt"]) document.getElementById(id)?.remove(); showPane("list") },
  }
  const action = actions[e.key]
  if (action) { e.preventDefault(); action() }
}

// --- start -----------------------------------------------------------------------------------

function layout(): void {
  const searchForm = h("form", { id: "search", role: "search" }, el.query,
    h("button", { type: "button", id: "advanced", title: "Advanced search", onclick: () => advancedSearch() }, "⚙"))
  searchForm.addEventListener("submit", e => { e.preventDefault(); void search(el.query.value) })
  for (const [value, label] of [["date", "Date"], ["arrival", "Arrival"], ["from", "From"], ["subject", "Subject"], ["size", "Size"]] as const) {
    el.sortSelect.append(h("option", { value }, label))
  }
  el.sortSelect.addEventListener("change", () => { state.sort = el.sortSelect.value as T.SortKey; void reloadList() })
  el.threaded.addEventListener("change", () => void reloadList())
  el.moveSelect.addEventListener("change", () => {
    const dest = el.moveSelect.value
    el.moveSelect.value = ""
    if (dest) void moveTo(targets(), dest)
  })
  el.selectAll.addEventListener("change", () => {
    state.selected = el.selectAll.checked ? new Set(state.rows.map(r => r.id)) : new Set()
    renderList()
  })
  el.more.addEventListener("click", () => void loadMore())
  const top = h("header", { className: "top" },
    h("button", { type: "button", id: "menu", title: "Mailboxes", onclick: () => document.body.classList.toggle("show-nav") }, "☰"),
    searchForm,
    h("button", { type: "button", id: "compose", title: "Compose (c)", onclick: () => openCompose(null) }, "Compose"),
    h("button", { type: "button", id: "open-settings", title: "Settings", onclick: () => openSettings() }, "Settings"),
    h("button", { type: "button", id: "help", title: "Keyboard shortcuts (?)", onclick: () => showHelp() }, "?"),
    h("button", { type: "button", id: "logout", onclick: () => void logout() }, "Log out"),
    el.status,
  )
  const listTools = h("div", { className: "list-tools" },
    el.selectAll,
    h("button", { type: "button", title: "Archive (e)", onclick: () => void bulk("archive") }, "Archive"),
    h("button", { type: "button", title: "Delete (#)", onclick: () => void bulk("delete") }, "Delete"),
    h("button", { type: "button", title: "Junk (!)", onclick: () => void bulk("junk") }, "Junk"),
    h("button", { type: "button", title: "Mark read", onclick: () => void setFlags(targets(), "add", ["\\Seen"]) }, "Read"),
    h("button", { type: "button", title: "Mark unread (u)", onclick: () => void setFlags(targets(), "remove", ["\\Seen"]) }, "Unread"),
    h("button", { type: "button", title: "Flag (s)", onclick: () => void setFlags(targets(), "add", ["\\Flagged"]) }, "Flag"),
    el.moveSelect, el.sortSelect,
    h("button", { type: "button", title: "Reverse the order", onclick: () => { state.descending = !state.descending; void reloadList() } }, "⇅"),
    h("label", { title: "Group by conversation" }, el.threaded, "Threads"),
  )
  const main = h("div", { className: "main" }, el.nav,
    h("section", { id: "list" }, listTools, el.listTitle, el.list, el.more), el.view)
  const app = document.getElementById("app") ?? document.body
  clear(app)
  app.append(top, main)
  document.addEventListener("keydown", onKey)
}

async function start(): Promise<void> {
  layout()
  state.settings = fullSettings(await api.Settings())
  el.threaded.checked = state.settings.threading
  await loadMailboxes()
  const inbox = state.mailboxes.find(m => m.name === "INBOX") ?? state.mailboxes[0]
  if (inbox) await selectMailbox(inbox.id)
  void connectEvents()
}

void start()
