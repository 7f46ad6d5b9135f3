"""Sanitising a message's HTML for display in the webmail.

The HTML goes through nh3 (the Rust ammonia sanitiser): an allow-list of presentational
tags and attributes; everything else goes, with the content of `script`, `style`-less
dangerous containers (`iframe`, `object`, `template`, `noscript`...) dropped entirely. What the
allow-list keeps is then rewritten here:

- Links (`a href`): http, https and mailto only; they open in a new browsing context
  (`target=_blank`) without referrer or opener.
- Resources the browser would fetch (`img src`, the `background` attribute, CSS `url()`) are
  remote unless they are `cid:` references (RFC 2392) to a part of the same message, which
  `cid_url` maps to a URL of ours, or small inline raster `data:` images. Remote ones are
  replaced by `placeholder` (or dropped) unless `allow_remote`; `blocked` counts them so the
  reader can offer to load them. Relative URLs mean nothing in a message and are dropped.
- CSS, in `style` attributes and `<style>` elements: `@import` rules, `expression()`,
  `behavior`, `-moz-binding`, `image-set()` and every `url()` that is not an allowed
  resource are removed; CSS escapes are decoded first, so `u\\72l(` is a `url(` too.

The result is meant for a document served with a Content-Security-Policy that forbids
scripts and, unless remote resources are allowed, remote loads: the sanitiser and the
policy each stop what the other might miss.

Cost: nh3 is linear; the per-attribute rewriting is a Python call per kept URL or style
attribute, and CSS rewriting is regular-expression passes without backtracking over nested
quantifiers. Input beyond `MAX_HTML` characters is cut first (the parser closes what was
left open).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import nh3

MAX_HTML = 8 * 1024 * 1024  # characters sanitised; the rest of a bigger part is not shown
MAX_DATA_URL = 256 * 1024  # characters of an inline data: image kept

_TAGS = {
    "a", "abbr", "address", "article", "aside", "b", "bdi", "bdo", "big", "blockquote", "br", "caption",
    "center", "cite", "code", "col", "colgroup", "dd", "del", "details", "dfn", "div", "dl", "dt", "em",
    "figcaption", "figure", "font", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "i", "img",
    "ins", "kbd", "li", "main", "mark", "nav", "ol", "p", "pre", "q", "rp", "rt", "ruby", "s", "samp",
    "section", "small", "span", "strike", "strong", "style", "sub", "summary", "sup", "table", "tbody", "td",
    "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul", "var", "wbr",
}  # fmt: skip
# Removed with everything inside them (their text is not for the reader).
_CLEAN_CONTENT = {
    "script", "noscript", "iframe", "frame", "frameset", "object", "embed", "applet", "template",
    "title", "head", "svg", "math", "select", "textarea", "button", "option", "noembed", "noframes",
    "xmp", "plaintext", "canvas", "audio", "video",
}  # fmt: skip
_GENERIC_ATTRIBUTES = {"style", "align", "valign", "dir", "lang", "title", "width", "height", "bgcolor", "class"}
_ATTRIBUTES: dict[str, set[str]] = {
    "*": _GENERIC_ATTRIBUTES,
    "a": {"href", "name"},
    "img": {"src", "alt", "border", "hspace", "vspace"},
    "table": {"border", "cellpadding", "cellspacing", "background", "summary", "frame", "rules"},
    "td": {"colspan", "rowspan", "background", "nowrap", "headers", "scope", "abbr"},
    "th": {"colspan", "rowspan", "background", "nowrap", "headers", "scope", "abbr"},
    "tr": {"background"},
    "col": {"span"},
    "colgroup": {"span"},
    "font": {"color", "face", "size"},
    "ol": {"start", "type", "reversed"},
    "ul": {"type"},
    "li": {"value", "type"},
    "hr": {"size", "noshade"},
    "blockquote": {"type"},
    "time": {"datetime"},
    "div": {"background"},
    "details": {"open"},
    "style": {"type", "media"},
}
_URL_SCHEMES = {"http", "https", "mailto", "cid", "data"}
_LINK_SCHEMES = ("http:", "https:", "mailto:")
_DATA_IMAGE = re.compile(r"data:image/(?:png|gif|jpeg|jpg|webp);base64,[A-Za-z0-9+/=\s]*", re.IGNORECASE)

# CSS escapes (CSS Syntax 3 §4.3.7): a backslash and up to six hex digits with one optional
# white space, or a backslash and any other character.
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})[ \t\r\n\f]?|(.))", re.DOTALL)
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.DOTALL)
_CSS_IMPORT = re.compile(r"@import", re.IGNORECASE)
_CSS_ANY_URL = re.compile(r"url\s*\(", re.IGNORECASE)
# url( ... ) with a quoted or unquoted argument; an unterminated one runs to the end.
_CSS_URL = re.compile(r"""url\s*\(\s*(?:"([^"]*)"|'([^']*)'|([^)"']*))\s*(?:\)|$)""", re.IGNORECASE)
_CSS_DANGER = re.compile(r"expression\s*\(|behavior\s*:|-moz-binding|(?:-webkit-)?image-set\s*\(", re.IGNORECASE)
_STYLE_ELEMENT = re.compile(r"(<style\b[^>]*>)(.*?)(</style>)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class SanitizedHTML:
    html: str
    blocked: int  # remote resources left out (images, backgrounds, CSS urls)
    truncated: bool  # the input was longer than MAX_HTML


def _decode_css_escape(m: re.Match[str]) -> str:
    if m.group(1) is not None:
        code = int(m.group(1), 16)
        if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return "\ufffd"
        return chr(code)
    return m.group(2)


class _Rewriter:
    """The per-call state: what is allowed, and how many remote resources were blocked."""

    def __init__(self, allow_remote: bool, cid_url: Callable[[str], str | None], placeholder: str) -> None:
        self.allow_remote = allow_remote
        self.cid_url = cid_url
        self.placeholder = placeholder
        self.blocked = 0

    def resource(self, url: str) -> str | None:
        """The URL to load for a resource reference, or None to leave it out."""
        url = url.strip()
        lower = url.lower()
        if lower.startswith("cid:"):
            return self.cid_url(_unquote_cid(url[4:]))
        if lower.startswith("data:"):
            if len(url) <= MAX_DATA_URL and _DATA_IMAGE.fullmatch(url):
                return url
            return None
        if lower.startswith(("http://", "https://", "//")):
            if self.allow_remote:
                return url if not lower.startswith("//") else "https:" + url
            self.blocked += 1
            return self.placeholder or None
        return None  # relative, javascript:, file:, ...

    def attribute(self, tag: str, name: str, value: str) -> str | None:
        if name == "href":
            return value if value.strip().lower().startswith(_LINK_SCHEMES) else None
        if name in ("src", "background"):
            return self.resource(value)
        if name == "style":
            cleaned = self.css(value)
            return cleaned or None
        return value

    def css(self, text: str) -> str:
        """The CSS with imports, scripted values and disallowed urls removed."""
        if "\\" in text:
            text = _CSS_ESCAPE.sub(_decode_css_escape, text)
        text = _CSS_COMMENT.sub(" ", text)
        # An unknown at-rule is ignored by the browser, whatever follows it.
        text = _CSS_IMPORT.sub("@x-import", text.replace("\0", ""))
        text = _CSS_DANGER.sub("invalid(", text)

        def url(m: re.Match[str]) -> str:
            target = next((g for g in m.groups() if g is not None), "")
            replaced = self.resource(target)
            if replaced is None or replaced == self.placeholder:
                return "none"
            quoted = replaced.replace("\\", "").replace('"', "%22").replace("'", "%27")
            return "\0('" + quoted + "')"

        text = _CSS_URL.sub(url, text)
        # A url( the pattern could not take apart (odd quoting) must not survive either.
        text = _CSS_ANY_URL.sub("invalid(", text).replace("\0(", "url(")
        # Nothing in CSS needs these; inside <style> they could close the element.
        return text.replace("<", "\\3c ").replace(">", "\\3e ")


def _unquote_cid(cid: str) -> str:
    from urllib.parse import unquote

    return unquote(cid).strip().strip("<>")


def sanitize_html(
    html: str,
    *,
    allow_remote: bool = False,
    cid_url: Callable[[str], str | None] = lambda cid: None,
    placeholder: str = "",
) -> SanitizedHTML:
    """The displayable form of `html` (see the module docstring). `cid_url` maps a Content-ID
    (without <>) to the URL of that part, or None when the message has no such part;
    `placeholder` replaces blocked remote images ("" drops the attribute)."""
    truncated = len(html) > MAX_HTML
    if truncated:
        html = html[:MAX_HTML]
    rewriter = _Rewriter(allow_remote, cid_url, placeholder)
    cleaned = nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags=_CLEAN_CONTENT,
        attributes=_ATTRIBUTES,
        attribute_filter=rewriter.attribute,
        url_schemes=_URL_SCHEMES,
        strip_comments=True,
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )
    # <style> content is raw text that nh3 keeps as is: rewrite it like a style attribute.
    cleaned = _STYLE_ELEMENT.sub(lambda m: m.group(1) + rewriter.css(m.group(2)) + m.group(3), cleaned)
    return SanitizedHTML(cleaned, rewriter.blocked, truncated)
