// The compose window: From among the allowed addresses, To/Cc/Bcc with completion from recent
// correspondents, attachments by picker or drag-and-drop with upload progress, drafts saved
// automatically, RequireTLS, send now or later (nobody gets it before then, at most 60 days ahead);
// a draft keeps its send-later time and RequireTLS.
import type * as T from "./types"
import { api } from "./api"
import { csrfToken } from "./client"
import { h, clear } from "./dom"
import { currentSettings, fmtSize, notify, refreshIfShowing } from "./main"
import { inputSeconds, localInputValue } from "./scheduled"

const AUTOSAVE_MS = 15000

type Form = Required<T.ComposeForm>

function emptyForm(): Form {
  return {
    from: "", to: [], cc: [], bcc: [], subject: "", text: "", html: "", attachments: [], reply_to_id: 0,
    forward_ids: [], forwarded_id: 0, in_reply_to: "", references: [], draft_id: 0, requiretls: false,
    send_at: 0,
  }
}

// "Name <a@b>, c@d" → mailboxes; commas inside quotes are kept.
export function parseAddresses(text: string): T.Mailbox[] {
  const out: T.Mailbox[] = []
  for (const part of text.match(/("[^"]*"|[^,;])+/g) ?? []) {
    const s = part.trim()
    if (!s) continue
    const m = /^(.*)<([^<>]+)>$/.exec(s)
    if (m) out.push({ name: (m[1] ?? "").trim().replace(/^"|"$/g, ""), address: (m[2] ?? "").trim() })
    else out.push({ name: "", address: s })
  }
  return out
}

function formatAddresses(list: T.Mailbox[]): string {
  return list.map(m => (m.name ? `${/[,;"]/.test(m.name) ? `"${m.name.replace(/"/g, "")}"` : m.name} <${m.address}>` : m.address)).join(", ")
}

function upload(file: File, progress: (fraction: number) => void): Promise<T.Upload> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open("POST", "upload")
    xhr.setRequestHeader("x-mailsrv-csrf", csrfToken())
    xhr.setRequestHeader("x-filename", encodeURIComponent(file.name))
    xhr.setRequestHeader("content-type", file.type || "application/octet-stream")
    xhr.upload.addEventListener("progress", e => { if (e.lengthComputable) progress(e.loaded / e.total) })
    xhr.addEventListener("load", () => {
      if (xhr.status === 200) resolve(JSON.parse(xhr.responseText) as T.Upload)
      else reject(new Error(xhr.responseText.trim() || `upload failed (${xhr.status})`))
    })
    xhr.addEventListener("error", () => reject(new Error("upload failed")))
    xhr.send(file)
  })
}

let choices: T.AddressView[] | null = null

export function openCompose(initial: T.ComposeForm | null): void {
  document.getElementById("compose-window")?.remove()
  const form = { ...emptyForm(), ...(initial ?? {}) } as Form
  const signature = currentSettings()?.signature ?? ""
  if (!initial && signature) form.text = `\n\n-- \n${signature}`
  let dirty = false
  let sending = false
  let uploading = 0
  const fromSelect = h("select", { name: "from", id: "compose-from" })
  const field = (name: string, label: string, value: string): HTMLInputElement =>
    h("input", { name, id: `compose-${name}`, "aria-label": label, placeholder: label, value, list: name === "subject" ? undefined : "completions", autocomplete: "off" })
  const to = field("to", "To", formatAddresses(form.to))
  const cc = field("cc", "Cc", formatAddresses(form.cc))
  const bcc = field("bcc", "Bcc", formatAddresses(form.bcc))
  const subject = field("subject", "Subject", form.subject)
  const text = h("textarea", { name: "text", id: "compose-text", rows: 16, "aria-label": "Message" })
  text.value = form.text
  const requiretls = h("input", { type: "checkbox", name: "requiretls", checked: form.requiretls })
  // Local time in the browser; sent as Unix seconds (0: now).
  const sendAt = h("input", { type: "datetime-local", name: "send_at", id: "compose-send-at", "aria-label": "Send later", value: localInputValue(form.send_at) })
  const datalist = h("datalist", { id: "completions" })
  const attachmentList = h("ul", { className: "compose-attachments" })
  const fileInput = h("input", { type: "file", multiple: true, id: "compose-files", "aria-label": "Attach files" })
  const info = h("span", { className: "compose-info" })
  const win = h("form", { id: "compose-window", className: "dialog compose", "aria-label": "Compose" })

  const renderAttachments = (): void => {
    clear(attachmentList)
    form.attachments.forEach((a, i) => attachmentList.append(h("li", null, `${a.filename ?? ""} (${fmtSize(a.size ?? 0)}) `,
      h("button", { type: "button", title: "Remove", onclick: () => { form.attachments.splice(i, 1); dirty = true; renderAttachments() } }, "×"))))
  }
  renderAttachments()

  const collect = (): Form => ({
    ...form,
    from: fromSelect.value || form.from,
    to: parseAddresses(to.value), cc: parseAddresses(cc.value), bcc: parseAddresses(bcc.value),
    subject: subject.value, text: text.value, requiretls: requiretls.checked,
    send_at: inputSeconds(sendAt.value),
  })

  const addFiles = (files: FileList | File[]): void => {
    for (const file of Array.from(files)) {
      const bar = h("progress", { max: 1, value: 0 })
      const item = h("li", { className: "uploading" }, `${file.name} `, bar)
      attachmentList.append(item)
      uploading += 1
      upload(file, f => { bar.value = f })
        .then(u => {
          form.attachments.push({ upload: u.token, message_id: 0, path: "", filename: u.filename, content_type: u.content_type, size: u.size })
          dirty = true
        })
        .catch((e: unknown) => notify(e instanceof Error ? e.message : String(e), true))
        .finally(() => { uploading -= 1; renderAttachments() })
    }
  }

  const saveDraft = async (quiet: boolean): Promise<void> => {
    if (sending) return
    try {
      const id = await api.DraftSave(collect())
      form.draft_id = id
      dirty = false
      info.textContent = `Draft saved ${new Date().toLocaleTimeString()}`
      if (!quiet) notify("Draft saved")
      refreshIfShowing("Drafts")
    } catch (e) {
      if (!quiet) notify(e instanceof Error ? e.message : String(e), true)
    }
  }
  const timer = window.setInterval(() => { if (dirty && !uploading) void saveDraft(true) }, AUTOSAVE_MS)
  const close = (): void => { window.clearInterval(timer); win.remove() }

  win.addEventListener("input", () => { dirty = true })
  win.addEventListener("submit", e => {
    e.preventDefault()
    if (uploading) { notify("Wait for the uploads to finish", true); return }
    sending = true
    const later = sendAt.value ? new Date(sendAt.value) : null
    api.Send(collect()).then(() => {
      close()
      notify(later ? `Will be sent ${later.toLocaleString()}` : "Sent")
      refreshIfShowing(later ? "Scheduled" : "Sent")
      refreshIfShowing("Drafts")
    }).catch((err: unknown) => {
      sending = false
      notify(err instanceof Error ? err.message : String(err), true)
    })
  })
  win.addEventListener("dragover", e => { e.preventDefault(); win.classList.add("drop") })
  win.addEventListener("dragleave", () => win.classList.remove("drop"))
  win.addEventListener("drop", e => {
    e.preventDefault()
    win.classList.remove("drop")
    if (e.dataTransfer?.files.length) addFiles(e.dataTransfer.files)
  })
  win.addEventListener("keydown", e => {
    if (e.key === "Escape") { e.stopPropagation(); if (!dirty || confirm("Close without saving?")) close() }
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); win.requestSubmit() }
  })
  fileInput.addEventListener("change", () => { if (fileInput.files) addFiles(fileInput.files); fileInput.value = "" })
  let completing = 0
  for (const input of [to, cc, bcc]) {
    input.addEventListener("input", () => {
      const last = input.value.split(",").pop()?.trim() ?? ""
      if (last.length < 2) return
      const mine = ++completing
      void api.Complete(last).then(found => {
        if (mine !== completing) return
        clear(datalist)
        const head = input.value.includes(",") ? input.value.slice(0, input.value.lastIndexOf(",") + 1) + " " : ""
        for (const c of found) datalist.append(h("option", { value: head + (c.name ? `${c.name} <${c.address}>` : c.address) }))
      }).catch(() => undefined)
    })
  }

  win.append(
    h("div", { className: "compose-row" }, h("label", { htmlFor: "compose-from" }, "From"), fromSelect),
    h("div", { className: "compose-row" }, h("label", { htmlFor: "compose-to" }, "To"), to),
    h("div", { className: "compose-row" }, h("label", { htmlFor: "compose-cc" }, "Cc"), cc),
    h("div", { className: "compose-row" }, h("label", { htmlFor: "compose-bcc" }, "Bcc"), bcc),
    h("div", { className: "compose-row" }, h("label", { htmlFor: "compose-subject" }, "Subject"), subject),
    datalist, text,
    h("div", { className: "compose-row" }, fileInput, h("span", { className: "hint" }, "or drop files here")),
    attachmentList,
    h("div", { className: "buttons" },
      h("button", { type: "submit", id: "compose-send" }, "Send"),
      h("button", { type: "button", id: "compose-save", onclick: () => void saveDraft(false) }, "Save draft"),
      h("button", { type: "button", id: "compose-close", onclick: () => close() }, "Close"),
      h("label", { title: "RFC 8689: delivery only over verified TLS" }, requiretls, " Require TLS"),
      h("label", { htmlFor: "compose-send-at", title: "Nobody gets the message before then, recipients on this server neither (at most 60 days ahead; listed under Scheduled until then); empty: now" }, "Send later ", sendAt),
      info),
  )
  document.body.appendChild(win)
  const fill = (list: T.AddressView[]): void => {
    clear(fromSelect)
    for (const c of list) fromSelect.append(h("option", { value: c.address, selected: c.address === form.from }, c.name ? `${c.name} <${c.address}>` : c.address))
  }
  if (choices) fill(choices)
  else void api.FromChoices().then(list => { choices = list; fill(list) })
  ;(form.to.length ? text : to).focus()
}
