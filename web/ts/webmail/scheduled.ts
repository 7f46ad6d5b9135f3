// The Scheduled view: messages waiting for their send-later time (nobody has them yet, recipients
// on this server neither), with their time, recipients and subject. "Change" moves the time,
// "Cancel and edit" stops the message and opens it from Drafts, where it went back.
import type * as T from "./types"
import { api } from "./api"
import { h, clear } from "./dom"

// datetime-local's value for Unix seconds, in the browser's time zone.
export function localInputValue(seconds: number): string {
  if (!seconds) return ""
  const d = new Date(seconds * 1000)
  const pad = (n: number): string => String(n).padStart(2, "0")
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`
}

// Unix seconds for a datetime-local value (0 when empty).
export function inputSeconds(value: string): number {
  return value ? Math.floor(new Date(value).getTime() / 1000) : 0
}

interface Hooks {
  notify: (text: string, error?: boolean) => void
  editDraft: (id: number) => Promise<void>
}

export async function showScheduled(view: HTMLElement, hooks: Hooks): Promise<void> {
  let items: T.ScheduledItem[]
  try {
    items = await api.Scheduled()
  } catch (e) {
    hooks.notify(e instanceof Error ? e.message : String(e), true)
    return
  }
  clear(view)
  const refresh = (): void => void showScheduled(view, hooks)
  const list = h("ul", { id: "scheduled", className: "scheduled" })
  for (const item of items) {
    const when = h("input", { type: "datetime-local", value: localInputValue(item.send_at), "aria-label": "Send at" })
    const change = async (): Promise<void> => {
      try {
        await api.ScheduledReschedule(item.id, inputSeconds(when.value))
        hooks.notify(when.value ? `Will be sent ${new Date(when.value).toLocaleString()}` : "Sending now")
      } catch (e) {
        hooks.notify(e instanceof Error ? e.message : String(e), true)
      }
      refresh()
    }
    const cancel = async (): Promise<void> => {
      try {
        const draft = await api.ScheduledCancel(item.id)
        hooks.notify("Not sent: back in Drafts")
        refresh()
        await hooks.editDraft(draft)
      } catch (e) {
        hooks.notify(e instanceof Error ? e.message : String(e), true)
        refresh()
      }
    }
    list.append(h("li", { className: "scheduled-item", "data-id": String(item.id) },
      h("div", { className: "scheduled-when" }, new Date(item.send_at * 1000).toLocaleString()),
      h("div", { className: "scheduled-subject" }, item.subject || "(no subject)"),
      h("div", { className: "scheduled-to" }, "To: ", item.recipients.join(", ")),
      h("div", { className: "buttons" },
        when,
        h("button", { type: "button", className: "scheduled-change", onclick: () => void change() }, "Change time"),
        h("button", { type: "button", className: "scheduled-cancel", onclick: () => void cancel() }, "Cancel and edit"),
        item.requiretls ? h("span", { className: "hint" }, "Require TLS") : null),
    ))
  }
  view.append(
    h("h1", { className: "subject" }, "Scheduled"),
    items.length ? list : h("p", { className: "empty" }, "Nothing scheduled"),
  )
}
