"""The text a reader sees in an HTML body, for searching it (IMAP SEARCH BODY/TEXT).

Invariants:
- Markup is never text: tags, comments, declarations (<!DOCTYPE>), processing
  instructions and CDATA markers are dropped, and so is everything inside <script> and
  <style> (code and rules a reader never sees).
- Character references are decoded, named (`&amp;`, `&eacute;`, the HTML5 list) and
  numeric (`&#233;`, `&#xE9;`), by the stdlib parser (`convert_charrefs`).
- Elements that start a new line or cell (p, div, br, li, td, ...) separate words; inline
  ones (b, i, span, a, ...) do not, so `<b>wo</b>rd` reads "word", as it renders.
- Whitespace runs, non-breaking spaces included, collapse to one space; no leading or
  trailing space.
- Any input gives a result, never an exception: `html.parser` is lenient by design.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# What the parser may leave unparsed at the end of input that is still markup: an unclosed
# comment, or a tag cut off before its ">".
_UNFINISHED_MARKUP = re.compile(r"<!--|<[A-Za-z/!?][^>]*\Z")

# Contents never rendered as text.
_HIDDEN = frozenset({"script", "style", "template"})

# Elements a browser lays out on their own line (or in their own cell): a word boundary.
_BREAKING = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "br",
        "caption",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "head",
        "header",
        "hr",
        "html",
        "img",
        "li",
        "main",
        "nav",
        "ol",
        "option",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "td",
        "th",
        "title",
        "tr",
        "ul",
    }
)


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden_depth += 1
        elif tag in _BREAKING:
            self.pieces.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag in _BREAKING:
            self.pieces.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self.pieces.append(data)

    # Comments, declarations, processing instructions: the base class ignores them.

    def close(self) -> None:
        # HTML §13.2.5: end of input inside a comment still ends a comment, inside a tag
        # drops the tag. Python before 3.13 hands such a tail to handle_data as text.
        unfinished = _UNFINISHED_MARKUP.search(self.rawdata)
        if unfinished is not None:
            self.rawdata = self.rawdata[: unfinished.start()]
        super().close()


def html_text(html: str) -> str:
    """The visible text of an HTML document or fragment, whitespace collapsed."""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    return " ".join("".join(collector.pieces).split())
