// Temporary: replaced by web/ts/lib's DOM helper when it lands.
type Child = Node | string | null | undefined | false | Child[]
type Props = { [key: string]: unknown }
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props?: Props | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value as EventListener)
    } else if (key === "className") {
      el.className = String(value)
    } else if (key === "style" && typeof value === "object") {
      Object.assign(el.style, value)
    } else if (key in el && key !== "list" && key !== "form") {
      (el as unknown as Record<string, unknown>)[key] = value
    } else {
      el.setAttribute(key, value === true ? "" : String(value))
    }
  }
  append(el, children)
  return el
}
export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue
    if (Array.isArray(c)) append(el, c)
    else el.appendChild(typeof c === "string" ? document.createTextNode(c) : c)
  }
}
export function clear(el: Node): void { while (el.firstChild) el.removeChild(el.firstChild) }
