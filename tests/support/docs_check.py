"""The docs check's pure parts: which reasons the operator can emit, read from its source
without importing it, and which relative links in the Markdown docs lead nowhere.

``tests/unit/test_docs.py`` runs them on the repository; they take text, not files, so a
test can feed them a made-up module or page and see the check fail.

**Reasons.** A condition or Event reason is a PascalCase word (``NotAllowed``) that
reaches a reason slot. The scan (Python's ``ast``, no import) collects every string
constant that flows into one of these slots, through the expressions the operator uses
to carry reasons:

* a ``reason=`` keyword of any call, and the positional argument bound to a parameter
  named ``reason`` of any function or class of the package (``TaskFailed("X", ...)``,
  ``end(deps, task, phase, "X", ...)``, a dataclass whose field is ``reason``);
* an assignment to ``reason`` or ``<obj>.reason`` (the ``reason = "X"`` of an error
  class), a ``{"reason": ...}`` dict item, a ``x["reason"] = ...`` store;
* a ``return`` of a tuple holding a PascalCase constant next to a message (a
  ``(reason, message)`` or ``(phase, reason, message)`` answer);
* every constant declared in a class named ``*Reason*`` or a module named ``*reason*``
  (reasons declared as API even before a call site uses them).

An expression in a slot is followed through conditional expressions, ``and``/``or``,
``await``, local variables (plain, annotated or unpacked from a tuple literal),
subscripts of tuples, and module or class constants, imported or not
(``report.ISSUED``, ``Reason.NOT_ALLOWED``, ``Reason.NOT_ALLOWED.value``). A reason read
from an object at run time (``exc.reason``) is found where the object got it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

REASON_SHAPE = re.compile(r"^[A-Z][A-Za-z0-9]*$")
SLOT = "reason"


@dataclass
class _Module:
    name: str
    tree: ast.Module
    aliases: dict[str, str] = field(default_factory=dict)  # local name -> module
    imported: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (module, name)
    constants: dict[str, list[ast.expr]] = field(default_factory=dict)
    classes: dict[str, dict[str, list[ast.expr]]] = field(default_factory=dict)


def emitted_reasons(sources: Mapping[str, str]) -> dict[str, set[str]]:
    """``{reason: {"module:line", ...}}`` for ``sources`` (``{module name: source}``)."""
    modules = {name: _index(name, ast.parse(text)) for name, text in sources.items()}
    slots = _reason_parameters(modules.values())
    found: dict[str, set[str]] = {}
    for module in modules.values():
        for where, value in _reason_values(module, slots, modules):
            if REASON_SHAPE.match(value):
                found.setdefault(value, set()).add(f"{module.name}:{where}")
    return found


def _index(name: str, tree: ast.Module) -> _Module:
    module = _Module(name, tree)
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                module.aliases[alias.asname or alias.name.split(".")[0]] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package upwards
                package = ".".join(name.split(".")[: -node.level])
                base = f"{package}.{node.module}" if node.module else package
            for alias in node.names:
                local = alias.asname or alias.name
                module.aliases[local] = f"{base}.{alias.name}"  # if it is a module
                module.imported[local] = (base, alias.name)  # if it is a name in one
        elif isinstance(node, ast.ClassDef):
            module.classes[node.name] = _assigned(node.body)
    module.constants = _assigned(tree.body)
    return module


def _assigned(body: list[ast.stmt]) -> dict[str, list[ast.expr]]:
    out: dict[str, list[ast.expr]] = {}
    for stmt in body:
        for target, value in _assignments(stmt):
            if isinstance(target, ast.Name):
                out.setdefault(target.id, []).append(value)
    return out


def _assignments(stmt: ast.stmt) -> Iterator[tuple[ast.expr, ast.expr]]:
    """(target, value) pairs of one statement, tuple targets paired element by element."""
    if isinstance(stmt, ast.Assign):
        for target in stmt.targets:
            yield from _pairs(target, stmt.value)
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        yield from _pairs(stmt.target, stmt.value)


def _pairs(target: ast.expr, value: ast.expr) -> Iterator[tuple[ast.expr, ast.expr]]:
    if isinstance(target, ast.Tuple | ast.List):
        if isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(target.elts):
            for t, v in zip(target.elts, value.elts, strict=True):
                yield from _pairs(t, v)
        return
    yield target, value


def _reason_parameters(modules: Iterable[_Module]) -> dict[str, set[int]]:
    """Callable name -> positions (as called) of its parameter named ``reason``."""
    slots: dict[str, set[int]] = {}
    for module in modules:
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ClassDef):
                init = next(
                    (
                        s
                        for s in node.body
                        if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)
                        and s.name == "__init__"
                    ),
                    None,
                )
                if init is not None:
                    params = [a.arg for a in [*init.args.posonlyargs, *init.args.args]][1:]
                else:  # a dataclass or NamedTuple: its annotated fields, in order
                    params = [
                        s.target.id
                        for s in node.body
                        if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
                    ]
                if SLOT in params:
                    slots.setdefault(node.name, set()).add(params.index(SLOT))
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        static = any(
                            isinstance(d, ast.Name) and d.id == "staticmethod"
                            for d in item.decorator_list
                        )
                        params = [a.arg for a in [*item.args.posonlyargs, *item.args.args]]
                        params = params if static else params[1:]
                        if SLOT in params:
                            slots.setdefault(item.name, set()).add(params.index(SLOT))
        for node in module.tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                params = [a.arg for a in [*node.args.posonlyargs, *node.args.args]]
                if SLOT in params:
                    slots.setdefault(node.name, set()).add(params.index(SLOT))
    return slots


def _reason_values(
    module: _Module, slots: Mapping[str, set[int]], modules: Mapping[str, _Module]
) -> Iterator[tuple[int, str]]:
    """(line, string) for every string reaching a reason slot in ``module``."""
    resolver = _Resolver(module, modules)
    declared = SLOT in module.name.rsplit(".", 1)[-1].lower()
    if declared:
        for name, values in module.constants.items():
            for value in values:
                yield from resolver.lines(value, None, {name})
    for cls, members in module.classes.items():
        if SLOT in cls.lower():
            for values in members.values():
                for value in values:
                    yield from resolver.lines(value, None, set())
    for scope, node in _walk_with_scope(module.tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == SLOT:
                    yield from resolver.lines(keyword.value, scope, set())
            callee = _callee_name(node.func)
            for index in slots.get(callee or "", ()):
                before = node.args[: index + 1]
                if len(node.args) > index and not any(isinstance(a, ast.Starred) for a in before):
                    yield from resolver.lines(node.args[index], scope, set())
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            for target, value in _assignments(node):
                if _is_slot_target(target):
                    yield from resolver.lines(value, scope, set())
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == SLOT:
                    yield from resolver.lines(value, scope, set())
        elif isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple):
            elements = node.value.elts
            if any(_is_message(e) for e in elements):
                for element in elements:
                    text = element.value if isinstance(element, ast.Constant) else None
                    if isinstance(text, str) and REASON_SHAPE.match(text):
                        yield element.lineno, text


def _is_slot_target(target: ast.expr) -> bool:
    if isinstance(target, ast.Name):
        return target.id == SLOT
    if isinstance(target, ast.Attribute):
        return target.attr == SLOT
    if isinstance(target, ast.Subscript):
        key = target.slice
        return isinstance(key, ast.Constant) and key.value == SLOT
    return False


def _is_message(node: ast.expr) -> bool:
    """An element that reads as a message: an f-string, a call (``str(exc)``), or prose."""
    if isinstance(node, ast.JoinedStr | ast.Call):
        return True
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and " " in node.value


def _callee_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _walk_with_scope(
    tree: ast.AST, scope: ast.AST | None = None
) -> Iterator[tuple[ast.AST | None, ast.AST]]:
    """Every node with the innermost function around it (None at module or class level)."""
    for child in ast.iter_child_nodes(tree):
        yield scope, child
        inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else scope
        yield from _walk_with_scope(child, inner)


class _Resolver:
    """Follows an expression back to the string constants it can hold."""

    def __init__(self, module: _Module, modules: Mapping[str, _Module]) -> None:
        self.module = module
        self.modules = modules

    def lines(
        self, node: ast.expr, scope: ast.AST | None, seen: set[str]
    ) -> Iterator[tuple[int, str]]:
        for value in self.strings(node, scope, self.module, seen):
            yield node.lineno, value

    def strings(
        self, node: ast.expr, scope: ast.AST | None, module: _Module, seen: set[str]
    ) -> set[str]:
        if isinstance(node, ast.Constant):
            return {node.value} if isinstance(node.value, str) else set()
        if isinstance(node, ast.IfExp):
            return self.strings(node.body, scope, module, seen) | self.strings(
                node.orelse, scope, module, seen
            )
        if isinstance(node, ast.BoolOp):
            return set().union(*(self.strings(v, scope, module, seen) for v in node.values))
        if isinstance(node, ast.Await):
            return self.strings(node.value, scope, module, seen)
        if isinstance(node, ast.Name):
            return self._name(node.id, scope, module, seen)
        if isinstance(node, ast.Attribute):
            return self._attribute(node, scope, module, seen)
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            index = node.slice.value
            if isinstance(index, int):
                return set().union(
                    *(
                        self.strings(t.elts[index], scope, module, seen)
                        for t in self._tuples(node.value, scope, module, seen)
                        if -len(t.elts) <= index < len(t.elts)
                    )
                )
        return set()

    def _tuples(
        self, node: ast.expr, scope: ast.AST | None, module: _Module, seen: set[str]
    ) -> list[ast.Tuple]:
        if isinstance(node, ast.Tuple):
            return [node]
        if isinstance(node, ast.Name) and scope is not None:
            return [v for v in _local_values(scope, node.id) if isinstance(v, ast.Tuple)]
        return []

    def _name(self, name: str, scope: ast.AST | None, module: _Module, seen: set[str]) -> set[str]:
        key = f"{module.name}:{id(scope)}:{name}"
        if key in seen:
            return set()
        seen = seen | {key}
        if scope is not None:
            local = _local_values(scope, name)
            if local:
                return set().union(*(self.strings(v, scope, module, seen) for v in local))
        if name in module.constants:
            return set().union(
                *(self.strings(v, None, module, seen) for v in module.constants[name])
            )
        if name in module.imported:
            source, original = module.imported[name]
            other = self.modules.get(source)
            if other is not None:
                return self._name(original, None, other, seen)
        return set()

    def _attribute(
        self, node: ast.Attribute, scope: ast.AST | None, module: _Module, seen: set[str]
    ) -> set[str]:
        if node.attr == "value" and isinstance(node.value, ast.Attribute):  # Enum.X.value
            return self._attribute(node.value, scope, module, seen)
        if not isinstance(node.value, ast.Name):
            return set()
        owner = node.value.id
        target = self.modules.get(module.aliases.get(owner, ""))
        if target is not None:  # module.CONSTANT
            return self._name(node.attr, None, target, seen)
        where, cls = module, owner
        if owner not in module.classes and owner in module.imported:
            source, cls = module.imported[owner]
            found = self.modules.get(source)
            if found is None:
                return set()
            where = found
        members = where.classes.get(cls, {})
        return set().union(
            *(self.strings(v, None, where, seen) for v in members.get(node.attr, []))
        )


def _local_values(scope: ast.AST, name: str) -> list[ast.expr]:
    values: list[ast.expr] = []
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            for target, value in _assignments(node):
                if isinstance(target, ast.Name) and target.id == name:
                    values.append(value)
    return values


def package_sources(package: Path) -> dict[str, str]:
    """``{dotted module name: source}`` of every module under the ``package`` directory."""
    out: dict[str, str] = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path.read_text()
    return out


# --- Markdown: links, anchors, the reasons a page lists ---------------------------------

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`[^`\n]*(?:\n[^`\n]*)?`")  # a code span may wrap once
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_TICKED = re.compile(r"`([^`]+)`")
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, mailto:, ...


def _prose_lines(markdown: str) -> Iterator[str]:
    """The lines outside fenced code blocks."""
    fenced = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield line


def links(markdown: str) -> list[str]:
    """Every link target of a page (inline, also when its text wraps onto the next line,
    then reference-style), code left out."""
    prose = list(_prose_lines(markdown))
    references = [m.group(1) for line in prose if (m := _REFERENCE.match(line))]
    text = "\n".join(line for line in prose if not _REFERENCE.match(line))
    inline = [m.group(1) for m in _LINK.finditer(_INLINE_CODE.sub("``", text))]
    return inline + references


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """The anchors a page's headings make, duplicates numbered as GitHub numbers them."""
    out: set[str] = set()
    for line in _prose_lines(markdown):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        name, n = base, 0
        while name in out:
            n += 1
            name = f"{base}-{n}"
        out.add(name)
    out.update(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", markdown))
    return out


def broken_links(pages: Mapping[str, str], exists: Iterable[str]) -> list[str]:
    """``"page: target (why)"`` for each relative link of ``pages`` that leads nowhere.

    ``pages`` maps repository paths (``docs/security.md``) to text; ``exists`` holds every
    path in the repository, directories included. External links are not followed.
    """
    present = set(exists)
    problems: list[str] = []
    for page, text in sorted(pages.items()):
        for target in links(text):
            if _EXTERNAL.match(target) or target.startswith("/"):
                continue
            path_part, _, anchor = target.partition("#")
            resolved = _join(page, path_part) if path_part else page
            if resolved is None:
                problems.append(f"{page}: {target} (points outside the repository)")
                continue
            if resolved.rstrip("/") not in present:
                problems.append(f"{page}: {target} (no {resolved} in the repository)")
                continue
            if anchor and resolved.endswith(".md"):
                other = pages.get(resolved)
                if other is not None and anchor.lower() not in anchors(other):
                    problems.append(f"{page}: {target} (no heading #{anchor} in {resolved})")
    return problems


def _join(page: str, target: str) -> str | None:
    parts: list[str] = list(PurePosixPath(page).parent.parts)
    for part in PurePosixPath(target).parts:
        if part == "..":
            if parts:
                parts.pop()
            else:
                return None
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def listed_reasons(markdown: str) -> set[str]:
    """The reasons a troubleshooting page lists: each `Reason` in backticks in a heading or
    in the first cell of a table row."""
    found: set[str] = set()
    for line in _prose_lines(markdown):
        heading = _HEADING.match(line)
        if heading:
            cell = heading.group(2)
        elif line.lstrip().startswith("|"):
            cell = line.strip().strip("|").split("|")[0]
        else:
            continue
        found.update(t for t in _TICKED.findall(cell) if REASON_SHAPE.match(t))
    return found


def missing_reasons(emitted: Mapping[str, set[str]], troubleshooting: str) -> list[str]:
    """``"Reason (emitted at module:line, ...)"`` for each reason the page does not list."""
    listed = listed_reasons(troubleshooting)
    return [
        f"{reason} (emitted at {', '.join(sorted(where))})"
        for reason, where in sorted(emitted.items())
        if reason not in listed
    ]
