"""Allow-list patterns whose placeholders cannot collide across tenants.

A ``-`` glued after ``{namespace}`` in an allow-list pattern is ambiguous: namespace
names may contain ``-``, so namespace ``team-a`` is allowed ``team-a-prod-db``, which is namespace
``team-a-prod``'s secret. For every backend that uses the operator's own identity (AWS,
GCP, Azure, Vault token/AppRole auth) the allow-list is the whole boundary between
tenants, so a pattern must name one namespace's values only. This module decides that,
as pure functions, for the CRD's CEL rules and the operator alike.

The rule (one pattern; ``crds/credentialbackends.yaml`` enforces the same with CEL):

1. each ``{namespace}`` / ``{serviceAccount}`` is delimited on *both* sides by the start
   or end of the pattern, ``/``, or a literal character that cannot occur in what it
   stands for. A namespace is a DNS label (``a-z``, ``0-9``, ``-``); a ServiceAccount
   name is a DNS subdomain (``a-z``, ``0-9``, ``-``, ``.``). So ``_ : = @ + ,`` and
   ``/`` delimit both, ``.`` delimits ``{namespace}`` only, and a placeholder never
   touches ``*``, another placeholder, ``{`` or ``}``;
2. within one path segment (between two ``/``), no placeholder has a ``*`` on both
   sides (``*_{namespace}_*`` reads ``p_q_r_s`` as namespace ``q`` or ``r``): every
   placeholder is anchored to one end of its segment by literals and delimiters only;
3. ``{serviceAccount}`` only together with ``{namespace}``: ServiceAccount names are
   chosen by tenants and repeat across namespaces, so ``agents/{serviceAccount}`` is as
   shared as a literal.

For backends that compare names case-insensitively (Azure Key Vault secret names, IAM
role names in ``awsSts.allowedRoleArns``) an upper-case letter is the same as its lower
case, so it never delimits. Azure names hold only letters, digits and ``-``: there the
only safe form with a placeholder is the whole name, ``{namespace}`` (several secrets
per tenant: one vault, and one CredentialBackend with literal names, per tenant).

Why it is enough: ``*``, ``{namespace}`` and ``{serviceAccount}`` never produce ``/``,
so a value's segments line up with the pattern's. In a segment, a placeholder anchored
on the left starts where the literals and placeholders before it end, and ends at the
first character it cannot contain (its right delimiter); one anchored on the right
mirrors that. So a value determines the namespace (and ServiceAccount) it was allowed
for: two different namespaces never share a value through one pattern, and two
ServiceAccounts never through a pattern naming ``{serviceAccount}``
(tests/unit/test_placeholder_rule.py checks this on generated patterns).

One pattern alone is not the whole list: ``x_{namespace}/*`` and ``{namespace}_*/*``
each pass, yet both allow ``x_team/q`` (to namespaces ``team`` and ``x``).
:func:`allow_list_problem` also checks every two patterns of a list against each other,
segment by segment on the product of their automata, and names a value two namespaces
would share (operator only: CEL cannot). Placeholders are read there as any run of
their characters, so it may refuse a list real names could not break, never the
reverse. Patterns without a placeholder are the platform's deliberate shared grants and
are not compared.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from functools import lru_cache

NAMESPACE = "{namespace}"
SERVICE_ACCOUNT = "{serviceAccount}"
NAMESPACE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
SERVICE_ACCOUNT_CHARS = NAMESPACE_CHARS | {"."}
NEVER_DELIMITS = frozenset("*{}")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_TOKEN = re.compile(r"(\{namespace\}|\{serviceAccount\}|\*)")

SAFE_FORMS = (
    "delimit each placeholder on both sides with the start or end of the pattern, '/', "
    "or a character the name cannot contain ('_', ':', '=', '@'; '.' next to {namespace} "
    "only), keep '*' off it, e.g. 'secret/data/{namespace}/*', 'database/creds/{namespace}_*', "
    "'{namespace}/*', 'projects/p/secrets/{namespace}_*'"
)
SAFE_AZURE = (
    "Azure secret names hold only letters, digits and '-' (case-insensitive), none of which "
    "delimits a namespace: use '{namespace}' as the whole name, or a vault (and a "
    "CredentialBackend with literal names) per tenant"
)


def _alphabet(placeholder: str) -> frozenset[str]:
    return NAMESPACE_CHARS if placeholder == NAMESPACE else SERVICE_ACCOUNT_CHARS


def _fold(pattern: str, case_insensitive: bool) -> str:
    """Literal A-Z lower-cased (placeholders kept) where the backend ignores case; ASCII
    only, as the CRD's CEL classes are (no backend name holds other letters)."""
    if not case_insensitive:
        return pattern
    return "".join(
        p if p in (NAMESPACE, SERVICE_ACCOUNT) else p.translate(_ASCII_LOWER)
        for p in split(pattern)
    )


def split(pattern: str) -> list[str]:
    """Placeholders, ``*`` and literal runs, in order (empty runs dropped)."""
    return [p for p in _TOKEN.split(pattern) if p]


def has_placeholder(pattern: str) -> bool:
    return NAMESPACE in pattern or SERVICE_ACCOUNT in pattern


def pattern_problem(pattern: str, *, case_insensitive: bool = False) -> str | None:
    """Why ``pattern`` could allow one tenant's value to another, or None when it cannot."""
    parts = split(_fold(pattern, case_insensitive))
    if SERVICE_ACCOUNT in parts and NAMESPACE not in parts:
        return (
            f"pattern {pattern!r} names {SERVICE_ACCOUNT} without {NAMESPACE}: ServiceAccount "
            "names repeat across namespaces, so add {namespace} (e.g. "
            "'agents/{namespace}/{serviceAccount}')"
        )
    for i, part in enumerate(parts):
        if part not in (NAMESPACE, SERVICE_ACCOUNT):
            continue
        before = parts[i - 1][-1] if i > 0 else "/"
        after = parts[i + 1][0] if i + 1 < len(parts) else "/"
        for side, char in (("preceded", before), ("followed", after)):
            if char in NEVER_DELIMITS or char in _alphabet(part):
                what = "a namespace" if part == NAMESPACE else "a ServiceAccount name"
                return (
                    f"pattern {pattern!r}: {part} is {side} by {char!r}, which "
                    + (
                        f"{what} may contain"
                        if char not in NEVER_DELIMITS
                        else "is not a delimiter"
                    )
                    + f", so it can match another namespace's values; {SAFE_FORMS}"
                )
        segment_before = "".join(parts[:i]).rsplit("/", 1)[-1]
        segment_after = "".join(parts[i + 1 :]).split("/", 1)[0]
        if "*" in segment_before and "*" in segment_after:
            return (
                f"pattern {pattern!r}: {part} has '*' on both sides within one path segment, "
                "so a value can be read as more than one namespace's; keep '*' on one side "
                f"only (or in another segment); {SAFE_FORMS}"
            )
    return None


# The product of two patterns' automata: is there a value both allow, to two different
# namespaces (or ServiceAccounts)? Placeholders are read generically (any run of their
# characters), which can only find more overlaps than real names allow, never fewer.


@dataclass(frozen=True)
class _Tok:
    kind: str  # "lit", "*", NAMESPACE or SERVICE_ACCOUNT
    char: str = ""


def _tokens(pattern: str) -> tuple[_Tok, ...]:
    out: list[_Tok] = []
    for part in split(pattern):
        if part in ("*", NAMESPACE, SERVICE_ACCOUNT):
            out.append(_Tok(part))
        else:
            out.extend(_Tok("lit", c) for c in part)
    return tuple(out)


# A state: (index of the token, inside that placeholder token?).
_State = tuple[int, bool]


def _closure(toks: tuple[_Tok, ...], state: _State) -> list[_State]:
    """States reachable without reading: past a ``*``, or out of a placeholder's run."""
    found, todo = [state], [state]
    while todo:
        i, inside = todo.pop()
        nxt: _State | None = None
        if inside or (i < len(toks) and toks[i].kind == "*"):
            nxt = (i + 1, False)
        if nxt is not None and nxt not in found:
            found.append(nxt)
            todo.append(nxt)
    return found


def _steps(toks: tuple[_Tok, ...], state: _State, char: str) -> list[tuple[_State, str]]:
    """(next state, the placeholder that read ``char`` or "") for one character."""
    i, inside = state
    if i >= len(toks):
        return []
    tok = toks[i]
    if tok.kind == "lit":
        return [((i + 1, False), "")] if not inside and char == tok.char else []
    if tok.kind == "*":
        return [((i, False), "")] if char != "/" else []
    return [((i, True), tok.kind)] if char in _alphabet(tok.kind) else []


def _representatives(a: tuple[_Tok, ...], b: tuple[_Tok, ...]) -> list[str]:
    """One character per class that behaves alike in both automata."""
    chars = {t.char for t in (*a, *b) if t.kind == "lit"}
    reps = set(chars) | {"/"}
    for pool in ("abcdefghijklmnopqrstuvwxyz0123456789-", ".", "~^`|!#%&'()<>[]\\\"$;?"):
        free = next((c for c in pool if c not in chars), None)
        if free is not None:
            reps.add(free)
    return sorted(reps, key=lambda c: (not c.isalnum(), c))  # readable witnesses first


_Node = tuple[_State, _State, bool]


@lru_cache(maxsize=4096)
def overlap(first: str, second: str, *, case_insensitive: bool = False) -> str | None:
    """A value ``first`` allows to one namespace (or ServiceAccount) and ``second`` to
    another, or None. Both patterns must pass :func:`pattern_problem`.

    Nothing but a literal ``/`` makes a ``/``, so the two only meet segment by segment:
    a value needs a common string for every pair of segments, and one pair whose common
    string puts a placeholder in different places."""
    segs_a = _fold(first, case_insensitive).split("/")
    segs_b = _fold(second, case_insensitive).split("/")
    if len(segs_a) != len(segs_b):
        return None
    pairs = list(zip(segs_a, segs_b, strict=True))
    if all(_same_spans(x, y) for x, y in pairs) or not all(_may_meet(x, y) for x, y in pairs):
        return None
    both_sa = SERVICE_ACCOUNT in first and SERVICE_ACCOUNT in second
    found = [_segment_product(x, y, both_sa) for x, y in pairs]
    if any(common is None for common, _ in found):
        return None
    common = [c or "" for c, _ in found]
    for i, (_, differing) in enumerate(found):
        if differing is not None:
            return "/".join([*common[:i], differing, *common[i + 1 :]])
    return None


def _same_spans(x: str, y: str) -> bool:
    """Segments whose placeholders surely sit at the same places in any common string:
    equal (each is unambiguous), without placeholders, or the same literal text and
    placeholders, without ``*``, from one end up to the last placeholder."""
    if x == y:
        return True
    px, py = split(x), split(y)
    hx = [i for i, p in enumerate(px) if p in (NAMESPACE, SERVICE_ACCOUNT)]
    hy = [i for i, p in enumerate(py) if p in (NAMESPACE, SERVICE_ACCOUNT)]
    if not hx or not hy:
        return not hx and not hy
    head_x, head_y = px[: hx[-1] + 1], py[: hy[-1] + 1]
    if "*" not in head_x and head_x == head_y:
        return True
    tail_x, tail_y = px[hx[0] :], py[hy[0] :]
    return "*" not in tail_x and tail_x == tail_y


def _may_meet(x: str, y: str) -> bool:
    """Cheap: the literal text each segment starts (and ends) with must agree."""
    px, py = split(x) or [""], split(y) or [""]
    head_x = "" if _TOKEN.fullmatch(px[0]) else px[0]
    head_y = "" if _TOKEN.fullmatch(py[0]) else py[0]
    tail_x = "" if _TOKEN.fullmatch(px[-1]) else px[-1]
    tail_y = "" if _TOKEN.fullmatch(py[-1]) else py[-1]
    n, m = min(len(head_x), len(head_y)), min(len(tail_x), len(tail_y))
    return head_x[:n] == head_y[:n] and tail_x[len(tail_x) - m :] == tail_y[len(tail_y) - m :]


@lru_cache(maxsize=4096)
def _segment_product(x: str, y: str, both_sa: bool) -> tuple[str | None, str | None]:
    """(a shortest string both segments allow, one where their placeholders sit in
    different places), each None when there is none."""
    a, b = _tokens(x), _tokens(y)
    reps = _representatives(a, b)
    starts = [(s, t, False) for s in _closure(a, (0, False)) for t in _closure(b, (0, False))]
    parent: dict[_Node, tuple[_Node, str] | None] = dict.fromkeys(starts)
    queue = deque(starts)
    common: str | None = None
    while queue:
        node = queue.popleft()
        s, t, differ = node
        if s == (len(a), False) and t == (len(b), False):
            if common is None:
                common = _witness(parent, node)
            if differ:
                return common, _witness(parent, node)
        for char in reps:
            for s2, la in _steps(a, s, char):
                for t2, lb in _steps(b, t, char):
                    split_ns = (la == NAMESPACE) != (lb == NAMESPACE)
                    split_sa = both_sa and (la == SERVICE_ACCOUNT) != (lb == SERVICE_ACCOUNT)
                    for s3 in _closure(a, s2):
                        for t3 in _closure(b, t2):
                            nxt = (s3, t3, differ or split_ns or split_sa)
                            if nxt not in parent:
                                parent[nxt] = (node, char)
                                queue.append(nxt)
    return common, None


def _witness(parent: dict[_Node, tuple[_Node, str] | None], node: _Node) -> str:
    chars: list[str] = []
    step = parent[node]
    while step is not None:
        node, char = step
        chars.append(char)
        step = parent[node]
    return "".join(reversed(chars))


@lru_cache(maxsize=1024)
def allow_list_problem(patterns: tuple[str, ...], *, case_insensitive: bool = False) -> str | None:
    """The first pattern (or pair of patterns) of an allow-list that could allow one
    tenant's value to another, as a sentence; None when the list is safe."""
    for pattern in patterns:
        problem = pattern_problem(pattern, case_insensitive=case_insensitive)
        if problem is not None:
            return problem
    scoped = [p for p in dict.fromkeys(patterns) if has_placeholder(p)]
    for i, first in enumerate(scoped):
        for second in scoped[i + 1 :]:
            value = overlap(first, second, case_insensitive=case_insensitive)
            if value is not None:
                return (
                    f"patterns {first!r} and {second!r} together allow a value such as "
                    f"{value!r} to two different namespaces (or ServiceAccounts); give each "
                    "pattern its own literal prefix or segment"
                )
    return None
