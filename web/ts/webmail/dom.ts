// The webmail's element builder: web/ts/lib's `h` for attributes, listeners and children, plus
// what the webmail's code needs on top: DOM properties (checked, value, selected, htmlFor),
// `className`, nested child arrays, and styles set through the CSSOM (`style: {...}`), which the
// page's Content-Security-Policy allows where a style attribute would be refused.
import { type Attributes, type Child as LibChild, h as element } from "../lib/dom"

export type Child = LibChild | Child[]
type Props = Record<string, unknown>

const PROPERTIES = new Set(["checked", "value", "selected", "htmlFor", "disabled"])

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props?: Props | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const attributes: Attributes = {}
  const properties: [string, unknown][] = []
  let style: Partial<CSSStyleDeclaration> | null = null
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue
    if (typeof value === "function") attributes[key.toLowerCase()] = value as EventListener
    else if (key === "className") attributes["class"] = String(value)
    else if (key === "style" && typeof value === "object") style = value as Partial<CSSStyleDeclaration>
    else if (PROPERTIES.has(key)) properties.push([key, value])
    else attributes[key] = value === true ? true : String(value)
  }
  const el = element(tag, attributes)
  for (const [key, value] of properties) (el as unknown as Record<string, unknown>)[key] = value
  if (style) Object.assign(el.style, style)
  append(el, children)
  return el
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue
    if (Array.isArray(c)) append(el, c)
    else el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)))
  }
}

export function clear(el: Element): void { el.replaceChildren() }
