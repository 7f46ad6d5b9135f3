// A small DOM helper: build elements in code, no HTML strings (so no injection and no inline script,
// which the Content-Security-Policy forbids anyway).

export type Child = Node | string | number | null | undefined | false
export type Attributes = Record<string, string | boolean | EventListener | undefined>

// h("button", {class: "primary", onclick: () => save()}, "Save")
export function h<K extends keyof HTMLElementTagNameMap>(
	tag: K,
	attributes: Attributes = {},
	...children: Child[]
): HTMLElementTagNameMap[K] {
	const element = document.createElement(tag)
	for (const [name, value] of Object.entries(attributes)) {
		if (value === undefined || value === false) {
			continue
		}
		if (typeof value === "function") {
			element.addEventListener(name.replace(/^on/, ""), value)
		} else if (value === true) {
			element.setAttribute(name, "")
		} else {
			element.setAttribute(name, value)
		}
	}
	append(element, ...children)
	return element
}

export function append(parent: Node, ...children: Child[]): void {
	for (const child of children) {
		if (child === null || child === undefined || child === false) {
			continue
		}
		parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)))
	}
}

// Replaces the element's children.
export function replace(parent: Element, ...children: Child[]): void {
	parent.replaceChildren()
	append(parent, ...children)
}
