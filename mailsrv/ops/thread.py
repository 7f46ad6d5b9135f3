"""Threading search results (RFC 5256 §3): ORDEREDSUBJECT and REFERENCES.

Both work on the `Summary`s of the matching messages (`mailsrv.ops.sort`) and return a
forest of `Node`s whose siblings are in the RFC's order; `thread_text` writes it in the
IMAP THREAD response syntax. A `Node` without a summary is a dummy (a message referred to
but not among the results, kept only where the RFC keeps one: at the top with several
children).

- ORDEREDSUBJECT: messages grouped by base subject, each group's first message (by sent
  date) the parent of the others; threads ordered by their first message's sent date.
- REFERENCES: the RFC's steps 1-7 (links from References, or the first message id of
  In-Reply-To; root set; dummies pruned; threads of the same base subject merged; siblings
  sorted by sent date), on the ids the store's summaries keep (the newest 50 References).

Cost: dictionaries keyed by message id and by base subject, no pairwise comparisons. The
one walk that is not constant-time, the loop check before a new link, happens only when the
new child already has children, and stops after `MAX_WALK` ancestors (such a deep link is
then refused, as a loop would be). Every traversal is iterative (no recursion limit on a
10,000-message chain).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal

from mailsrv.ops import search as engine
from mailsrv.ops.sort import Summary, collate, summaries
from mailsrv.store.interfaces import AccountStore

Algorithm = Literal["orderedsubject", "references"]
ALGORITHMS: frozenset[str] = frozenset(Algorithm.__args__)  # type: ignore[attr-defined]
MAX_WALK = 10_000


class Node:
    __slots__ = ("children", "parent", "summary")

    def __init__(self, summary: Summary | None = None) -> None:
        self.summary = summary
        self.parent: Node | None = None
        self.children: list[Node] = []

    @property
    def dummy(self) -> bool:
        return self.summary is None


def _sort_key(node: Node) -> tuple[float, int]:
    """Sent date, then view position; a dummy sorts as its first child (RFC 5256 §3 step 6)."""
    while node.summary is None:
        node = node.children[0]
    return (node.summary.sent, node.summary.position)


# --- ORDEREDSUBJECT ----------------------------------------------------------------------


def ordered_subject(items: Sequence[Summary]) -> list[Node]:
    groups: dict[str, list[Summary]] = {}
    for s in sorted(items, key=lambda s: (s.sent, s.position)):
        groups.setdefault(collate(s.subject), []).append(s)
    roots = []
    for members in groups.values():
        root = Node(members[0])
        for s in members[1:]:
            child = Node(s)
            child.parent = root
            root.children.append(child)
        roots.append(root)
    roots.sort(key=_sort_key)
    return roots


# --- REFERENCES --------------------------------------------------------------------------


def _would_loop(parent: Node, child: Node) -> bool:
    if parent is child:
        return True
    if not child.children:
        return False  # nothing below child, so parent cannot be there
    node: Node | None = parent
    for _ in range(MAX_WALK):
        if node is None:
            return False
        if node is child:
            return True
        node = node.parent
    return True  # deeper than MAX_WALK: refused like a loop


def _link(parent: Node, child: Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def _post_order(roots: Sequence[Node]) -> list[Node]:
    """Every node below `roots` (included), children before their parent."""
    out: list[Node] = []
    stack: list[tuple[Node, bool]] = [(r, False) for r in reversed(roots)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            out.append(node)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in reversed(node.children))
    return out


def references(items: Sequence[Summary]) -> list[Node]:
    """RFC 5256 §3 REFERENCES."""
    by_id: dict[str, Node] = {}
    unique = 0
    for s in items:
        # Step 1: a node per message id; a missing or duplicate Message-ID gets a unique one.
        own: str | None = s.message_id
        if not own or (own in by_id and not by_id[own].dummy):
            unique += 1
            own = f"\0{unique}"
        node = by_id.get(own)
        if node is None:
            node = by_id[own] = Node(s)
        else:
            node.summary = s  # a dummy created by an earlier reference: now the message
        chain = s.references or s.in_reply_to[:1]
        nodes = []
        for ref in chain:
            if ref not in by_id:
                by_id[ref] = Node()
            nodes.append(by_id[ref])
        # (A) link the references in order, never changing a link made earlier.
        for parent, child in itertools.pairwise(nodes):
            if child.parent is None and not _would_loop(parent, child):
                _link(parent, child)
        # (B) the last reference is this message's parent (replacing an earlier one).
        if nodes and node.parent is not nodes[-1] and not _would_loop(nodes[-1], node):
            _link(nodes[-1], node)
    # Step 2: the root set.
    roots = [n for n in by_id.values() if n.parent is None]
    # Step 4: prune dummies; below the root a dummy's children take its place; at the root
    # only when it has one child.
    for node in _post_order(roots):
        kept: list[Node] = []
        for c in node.children:
            if c.dummy:
                for g in c.children:
                    g.parent = node
                kept.extend(c.children)
            else:
                kept.append(c)
        node.children = kept
    top: list[Node] = []
    for r in roots:
        if r.dummy and len(r.children) == 1:
            r = r.children[0]
            r.parent = None
        if not r.dummy or r.children:
            top.append(r)
    top = _merge_subjects(top)
    # Step 6: siblings by sent date, children first so a dummy sorts as its first child.
    for node in _post_order(top):
        node.children.sort(key=_sort_key)
    top.sort(key=_sort_key)
    return top


def _thread_subject(node: Node) -> tuple[str, bool]:
    s = node.summary if node.summary is not None else node.children[0].summary
    assert s is not None
    return collate(s.subject), s.reply_or_forward


def _merge_subjects(roots: list[Node]) -> list[Node]:
    """Step 5: threads whose roots have the same base subject are gathered."""
    table: dict[str, Node] = {}
    for r in roots:
        subject, reply = _thread_subject(r)
        if not subject:
            continue
        old = table.get(subject)
        if old is None:
            table[subject] = r
            continue
        old_reply = old.summary.reply_or_forward if old.summary is not None else False
        if (r.dummy and not old.dummy) or (old_reply and not reply and not old.dummy and not r.dummy):
            table[subject] = r
    out: list[Node | None] = list(roots)
    index = {id(r): i for i, r in enumerate(roots)}
    for i, r in enumerate(roots):
        subject, reply = _thread_subject(r)
        if not subject or r.parent is not None:  # r.parent: already gathered under a new dummy
            continue
        t = table[subject]
        if t is r:
            continue
        out[i] = None
        if t.dummy and r.dummy:
            for c in r.children:
                c.parent = t
            t.children.extend(r.children)
        elif t.dummy or (reply and t.summary is not None and not t.summary.reply_or_forward):
            r.parent = t
            t.children.append(r)
        else:
            dummy = Node()
            out[index[id(t)]] = dummy
            index[id(dummy)] = index[id(t)]
            for c in (t, r):
                c.parent = dummy
                dummy.children.append(c)
            table[subject] = dummy
    return [r for r in out if r is not None]


# --- output and driver -------------------------------------------------------------------


def thread_text(roots: Sequence[Node], *, uid: bool) -> bytes:
    """The IMAP THREAD response data (RFC 5256 §4): ``(1 2 (3)(4 5))(6)``."""
    out: list[str] = []
    stack: list[Node | str] = []
    for r in reversed(roots):
        stack += [")", r, "("]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        children = item.children
        if item.summary is not None:
            out.append(str(item.summary.uid if uid else item.summary.position))
            if len(children) == 1:
                stack += [children[0], " "]
                continue
            if children:
                for c in reversed(children):
                    stack += [")", c, "("]
                stack.append(" ")
            continue
        for c in reversed(children):
            stack += [")", c, "("]
    return "".join(out).encode("ascii")


async def thread(
    store: AccountStore,
    mailbox_id: int,
    program: engine.Key,
    algorithm: Algorithm,
    *,
    scheduler: engine.Scheduler,
    view: Sequence[int] | None = None,
) -> list[Node]:
    """The matches of `program` threaded by `algorithm`. Raises what `search.search` raises."""
    result = await engine.search(store, mailbox_id, program, scheduler=scheduler, view=view)
    items = await summaries(store, mailbox_id, result.matches, scheduler)
    # Pure computation over immutable summaries (REFERENCES: ~0.1 s for 10,000 messages): in
    # the thread pool, so the reactor keeps serving other connections meanwhile.
    build = ordered_subject if algorithm == "orderedsubject" else references
    return await scheduler.in_thread(build, items)
