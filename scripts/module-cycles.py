#!/usr/bin/env python3
"""Finds import cycles between the modules of one Rust crate.

    scripts/module-cycles.py config/src             # top-level modules
    scripts/module-cycles.py --nested forwarder/src # and one level deeper

A module is a top-level file (`x.rs`) or folder (`x/` holding `.rs` files)
of SRC; `lib.rs` and `main.rs` are crate roots, not modules, and `bin/` is
skipped. With --nested, each file and folder one level down (`x/y.rs`,
`x/y/`) is a module of its own too (`x/mod.rs`, or `x.rs` next to `x/`, is
`x`); deeper files belong to their level-two ancestor.

What counts as a reference from module A to module B (made in any file of A):

- a `use` tree naming B: `use crate::b::X`, `use crate::{b::X, c}`,
  `use super::b` (super resolved against the file's own module path, inline
  `mod name { ... }` blocks included), `use self::child::X`, and a relative
  first segment that is a child module (`use child::X` in `x/mod.rs`);
- a path in code that starts the same way (`crate::b::f()`,
  `super::b::T`, `$crate::b::m!`);
- `crate::Name` / `use crate::Name`, where Name is no module: resolved
  through the crate roots' `use` lines (`pub use b::Name`, `pub use b::*`,
  the glob looked up in b's public items). Items defined in the root itself
  are nobody's module and give no edge.

What is ignored, and why:

- comments, doc comments included, so intra-doc links such as
  [`crate::b::X`] are no dependency; string and char literals;
- every item under a `#[cfg(test)]` (or `#[cfg(all(test, ...))]`)
  attribute: `mod tests { ... }` blocks, test-only `use` lines and
  functions; an out-of-line `#[cfg(test)] mod name;` skips that file
  (test code is not built into the crate, and a test may reach into
  modules of any layer to check them);
- `pub(in crate::x)` visibilities, `pub(crate)`, `pub(super)`;
- references of a module to itself, and `mod child;` declarations (a
  parent declares its children; only a parent's use of a child's items is
  an edge, with --nested);
- a module's re-exports of its own descendants (`pub use child::X` in
  `x/mod.rs`): a facade uses nothing of the child; a user of `crate::x::X`
  is taken to depend on the child that defines X.

Prints every cycle (each strongly connected group of modules with the
elementary cycles through it, shortest first, and the references that make
its edges, file:line) and exits 1 if there is one, 0 if there is none, 2 on
a usage error.
"""

import argparse
import os
import sys
from collections import defaultdict

ROOT_FILES = ("lib.rs", "main.rs")


# ---------------------------------------------------------------- tokens


class Token:
    __slots__ = ("kind", "text", "line")

    def __init__(self, kind, text, line):
        self.kind = kind  # "ident", "punct"
        self.text = text
        self.line = line

    def __repr__(self):
        return f"{self.kind}:{self.text}@{self.line}"


def tokenize(src):
    """Rust source -> identifiers and punctuation with line numbers.

    Comments (nested block comments too), string, byte, raw and char
    literals, numbers and lifetimes are dropped."""
    tokens = []
    i, n, line = 0, len(src), 1
    while i < n:
        c = src[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    line += src[i] == "\n"
                    i += 1
        elif c == '"':
            i, line = skip_string(src, i + 1, line)
        elif c in "rbc" and raw_string_start(src, i):
            i, line = skip_raw_string(src, i, line)
        elif c in "bc" and i + 1 < n and src[i + 1] == '"':
            i, line = skip_string(src, i + 2, line)
        elif c == "b" and i + 1 < n and src[i + 1] == "'":
            i = skip_char(src, i + 1)
        elif c == "'":
            i = skip_char_or_lifetime(src, i)
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (src[j].isalnum() or src[j] == "_"):
                j += 1
            word = src[i:j]
            if word == "r" and src.startswith("#", j) and j + 1 < n and (
                src[j + 1].isalpha() or src[j + 1] == "_"
            ):
                k = j + 1
                while k < n and (src[k].isalnum() or src[k] == "_"):
                    k += 1
                word, j = src[j + 1 : k], k
            tokens.append(Token("ident", word, line))
            i = j
        elif c.isdigit():
            j = i
            while j < n and (src[j].isalnum() or src[j] in "_."):
                if src[j] == "." and not (j + 1 < n and src[j + 1].isdigit()):
                    break
                j += 1
            i = j
        elif c == "$" and src.startswith("crate", i + 1):
            tokens.append(Token("ident", "$crate", line))
            i += 6
        elif src.startswith("::", i):
            tokens.append(Token("punct", "::", line))
            i += 2
        else:
            tokens.append(Token("punct", c, line))
            i += 1
    return tokens


def skip_string(src, i, line):
    """i is just past the opening quote; returns the index past the closing one."""
    n = len(src)
    while i < n:
        c = src[i]
        if c == "\\":
            if i + 1 < n and src[i + 1] == "\n":
                line += 1
            i += 2
            continue
        if c == "\n":
            line += 1
        if c == '"':
            return i + 1, line
        i += 1
    return n, line


def raw_string_start(src, i):
    j = i
    if src[j] in "bc":
        j += 1
    if j >= len(src) or src[j] != "r":
        return False
    j += 1
    while j < len(src) and src[j] == "#":
        j += 1
    return j < len(src) and src[j] == '"' and (j > i + 1 or src[i] == "r")


def skip_raw_string(src, i, line):
    while src[i] != "r":
        i += 1
    i += 1
    hashes = 0
    while src[i] == "#":
        hashes, i = hashes + 1, i + 1
    i += 1  # opening quote
    end = '"' + "#" * hashes
    j = src.find(end, i)
    j = len(src) if j < 0 else j
    line += src.count("\n", i, j)
    return j + len(end), line


def skip_char(src, i):
    """i is at the opening quote of a char literal."""
    j = i + 1
    if j < len(src) and src[j] == "\\":
        j += 2
    else:
        j += 1
    while j < len(src) and src[j] != "'" and src[j] != "\n":
        j += 1
    return j + 1


def skip_char_or_lifetime(src, i):
    n = len(src)
    if i + 1 < n and src[i + 1] == "\\":
        return skip_char(src, i)
    if i + 2 < n and src[i + 2] == "'":
        return i + 3
    # a lifetime or label: skip the quote, the identifier is harmless
    return i + 1


# ------------------------------------------------------ cfg(test) removal


def is_cfg_test(attr):
    """attr: the tokens inside `#[ ... ]`."""
    texts = [t.text for t in attr]
    if texts[:2] != ["cfg", "("]:
        return False
    if texts[2:] == ["test", ")"]:
        return True
    if texts[2:4] == ["all", "("]:
        depth, i = 0, 3
        while i < len(texts):
            if texts[i] == "(":
                depth += 1
            elif texts[i] == ")":
                depth -= 1
            elif depth == 1 and texts[i] == "test":
                return True
            i += 1
    return False


def read_attribute(tokens, i):
    """tokens[i] is `#`; returns (inner tokens, index past `]`) or None."""
    j = i + 1
    if j < len(tokens) and tokens[j].text == "!":
        j += 1
    if j >= len(tokens) or tokens[j].text != "[":
        return None
    depth, k = 0, j
    while k < len(tokens):
        if tokens[k].text == "[":
            depth += 1
        elif tokens[k].text == "]":
            depth -= 1
            if depth == 0:
                return tokens[j + 1 : k], k + 1
        k += 1
    return tokens[j + 1 :], len(tokens)


def skip_item(tokens, i):
    """Index past the item starting at tokens[i] (attributes included)."""
    n = len(tokens)
    while i < n and tokens[i].text == "#":
        attr = read_attribute(tokens, i)
        if attr is None:
            break
        i = attr[1]
    is_use = any(
        t.text == "use" for t in tokens[i : min(n, i + 6)] if t.kind == "ident"
    ) and not any(t.text in ("fn", "mod", "impl") for t in tokens[i : min(n, i + 6)])
    depth = 0
    while i < n:
        t = tokens[i].text
        if t in "([{":
            depth += 1
        elif t in ")]}":
            depth -= 1
            if depth == 0 and t == "}" and not is_use:
                return i + 1
            if depth < 0:
                return i  # the enclosing block ends: never eat its brace
        elif t == ";" and depth == 0:
            return i + 1
        i += 1
    return n


def strip_cfg_test(tokens):
    """Drops every item under #[cfg(test)]; returns (tokens, skipped out-of-line
    module names)."""
    out, skipped_mods = [], []
    i, n = 0, len(tokens)
    while i < n:
        if tokens[i].text == "#":
            attr = read_attribute(tokens, i)
            if attr is not None and is_cfg_test(attr[0]):
                end = skip_item(tokens, i)
                item = [t.text for t in tokens[attr[1] : end]]
                if item and item[-1] == ";" and "mod" in item:
                    skipped_mods.append(item[item.index("mod") + 1])
                i = end
                continue
        out.append(tokens[i])
        i += 1
    return out, skipped_mods


# ------------------------------------------------------------ references


class Ref:
    """A path as written: the resolution base and its segments."""

    __slots__ = ("base", "segments", "line", "written", "reexport", "alias")

    def __init__(self, base, segments, line, written):
        self.base = base  # "crate", ("super", k), "self", "relative"
        self.segments = segments
        self.line = line
        self.written = written
        self.reexport = False  # from a `pub use` (any pub visibility)
        self.alias = None  # the `as` name of a use path


def parse_use_tree(tokens, i, prefix):
    """Expands a use tree starting at tokens[i]; returns (paths, index).

    Each path is a list of segment strings (`*` for a glob); renames
    (`as x`) are recorded as ("as", x) at the end."""
    paths = []
    segs = list(prefix)
    n = len(tokens)
    while i < n:
        t = tokens[i]
        if t.text == "{":
            i += 1
            while i < n and tokens[i].text != "}":
                sub, i = parse_use_tree(tokens, i, segs)
                paths.extend(sub)
                if i < n and tokens[i].text == ",":
                    i += 1
            return paths, i + 1
        if t.text == "*":
            paths.append(segs + ["*"])
            return paths, i + 1
        if t.kind == "ident" and t.text == "as":
            alias = tokens[i + 1].text if i + 1 < n else "_"
            paths.append(segs + [("as", alias)])
            return paths, i + 2
        if t.kind == "ident":
            segs.append(t.text)
            i += 1
            if i < n and tokens[i].text == "::":
                i += 1
                continue
            paths.append(segs)
            return paths, i
        if t.text == "::":  # leading `::` of an external path
            segs.append("::")
            i += 1
            continue
        break
    if segs != list(prefix):
        paths.append(segs)
    return paths, i


def use_path_to_ref(segs, line):
    """A `use` path -> Ref (or None for an external one)."""
    names = [s for s in segs if isinstance(s, str)]
    alias = segs[-1][1] if segs and isinstance(segs[-1], tuple) else None
    if not names or names[0] == "::":
        return None, alias
    written = "::".join(names)
    if names[0] in ("crate", "$crate"):
        return Ref("crate", names[1:], line, written), alias
    if names[0] == "super":
        k = 0
        while k < len(names) and names[k] == "super":
            k += 1
        return Ref(("super", k), names[k:], line, written), alias
    if names[0] == "self":
        return Ref("self", names[1:], line, written), alias
    return Ref("relative", names, line, written), alias


def read_path(tokens, i):
    """The segments of the path `a::b::c` starting at tokens[i], and the index
    past it."""
    segs, j, n = [], i, len(tokens)
    while j + 1 < n and tokens[j].kind == "ident" and tokens[j + 1].text == "::":
        segs.append(tokens[j].text)
        j += 2
    if j < n and tokens[j].kind == "ident":
        segs.append(tokens[j].text)
        j += 1
    return segs, j


def collect_refs(tokens):
    """Yields (inline module stack, Ref) for every use tree and path."""
    stack = []  # (name, brace depth at which the inline module's body opened)
    depth = 0
    n = len(tokens)
    i = 0
    while i < n:
        t = tokens[i]
        text = t.text
        if text == "{":
            depth += 1
        elif text == "}":
            depth -= 1
            while stack and stack[-1][1] > depth:
                stack.pop()
        elif (
            t.kind == "ident"
            and text == "mod"
            and i + 2 < n
            and tokens[i + 1].kind == "ident"
            and tokens[i + 2].text == "{"
        ):
            stack.append((tokens[i + 1].text, depth + 1))
            depth += 1
            i += 3
            continue
        elif (
            t.kind == "ident"
            and text == "pub"
            and i + 2 < n
            and tokens[i + 1].text == "("
            and tokens[i + 2].text == "in"
        ):
            while i < n and tokens[i].text != ")":
                i += 1
        elif t.kind == "ident" and text == "use" and not (
            i > 0 and tokens[i - 1].text == "::"
        ):
            paths, end = parse_use_tree(tokens, i + 1, [])
            reexport = is_pub(tokens, i)
            for segs in paths:
                ref, alias = use_path_to_ref(segs, t.line)
                if ref is not None:
                    ref.reexport, ref.alias = reexport, alias
                    yield list(stack), ref
            i = end
            continue
        elif (
            t.kind == "ident"
            and text in ("crate", "$crate", "super", "self")
            and i + 1 < n
            and tokens[i + 1].text == "::"
            and not (i > 0 and tokens[i - 1].text == "::")
        ):
            segs, j = read_path(tokens, i)
            ref, _ = use_path_to_ref(segs, t.line)
            if ref is not None:
                yield list(stack), ref
            i = j
            continue
        elif (
            t.kind == "ident"
            and i + 1 < n
            and tokens[i + 1].text == "::"
            and not (i > 0 and tokens[i - 1].text in ("::", "."))
        ):
            # a relative path: only counts when it names a child module,
            # decided at resolution time
            segs, j = read_path(tokens, i)
            yield list(stack), Ref("relative", segs, t.line, "::".join(segs))
            i = j
            continue
        i += 1


def is_pub(tokens, i):
    """Whether the item whose keyword is tokens[i] is `pub` or `pub(...)`."""
    j = i - 1
    if j >= 0 and tokens[j].text == ")":
        while j >= 0 and tokens[j].text != "(":
            j -= 1
        j -= 1
    return j >= 0 and tokens[j].text == "pub"


def public_names(tokens):
    """Names a glob import of this module's main file would bring in."""
    names = set()
    depth = 0
    n = len(tokens)
    item_words = ("struct", "enum", "fn", "trait", "type", "const", "static", "union", "mod")
    for i, t in enumerate(tokens):
        if t.text == "{":
            depth += 1
        elif t.text == "}":
            depth -= 1
        elif depth == 0 and t.kind == "ident" and t.text == "pub":
            j = i + 1
            if j < n and tokens[j].text == "(":
                while j < n and tokens[j].text != ")":
                    j += 1
                j += 1
            while j < n and tokens[j].text in ("unsafe", "async", "extern", "const") and not (
                tokens[j].text == "const" and j + 1 < n and tokens[j + 1].text != "fn"
            ):
                j += 1
            if j < n and tokens[j].text == "use":
                paths, _ = parse_use_tree(tokens, j + 1, [])
                for segs in paths:
                    if segs and isinstance(segs[-1], tuple):
                        names.add(segs[-1][1])
                    elif segs and segs[-1] != "*":
                        names.add(segs[-1])
            elif j + 1 < n and tokens[j].text in item_words and tokens[j + 1].kind == "ident":
                names.add(tokens[j + 1].text)
    return names


# ---------------------------------------------------------------- crate


class Crate:
    def __init__(self, src, nested):
        self.src = os.path.normpath(src)
        self.nested = nested
        self.depth = 2 if nested else 1
        self.files = {}  # relative file path -> module path (tuple)
        self.known = set()  # every module path that has a file
        self.root_files = []
        self._discover()
        self.tokens = {}
        skipped = set()
        for rel in sorted(self.files) + self.root_files:
            with open(os.path.join(self.src, rel), encoding="utf-8") as f:
                toks, skipped_mods = strip_cfg_test(tokenize(f.read()))
            self.tokens[rel] = toks
            owner = self.files.get(rel, ())
            for name in skipped_mods:
                skipped.add(owner + (name,))
        if skipped:
            for rel, path in list(self.files.items()):
                if any(path[: len(s)] == s for s in skipped):
                    del self.files[rel]
                    del self.tokens[rel]
            self.known = {p for p in self.known if not any(p[: len(s)] == s for s in skipped)}
        self.nodes = sorted({p[: self.depth] for p in self.files.values()})
        self.root_imports = {}  # name -> absolute path (list) or None for external
        self.root_globs = []  # absolute module paths
        for rel in self.root_files:
            self._root_uses(self.tokens[rel])
        self._exports = {}
        # a module's re-exports of its own descendants (`pub use child::X`):
        # name -> absolute path, and globbed descendants
        self.facades = defaultdict(dict)
        self.facade_globs = defaultdict(list)
        for rel, module in self.files.items():
            for stack, ref in collect_refs(self.tokens[rel]):
                if stack or not ref.reexport:
                    continue
                path = self.absolute(module, stack, ref)
                if path is None or not is_below(path, module):
                    continue
                if path[-1] == "*":
                    self.facade_globs[module].append(path[:-1])
                else:
                    self.facades[module][ref.alias or path[-1]] = path

    def _discover(self):
        def walk(folder, prefix):
            for entry in sorted(os.listdir(folder)):
                full = os.path.join(folder, entry)
                if os.path.isdir(full):
                    if not prefix and entry == "bin":
                        continue
                    if has_rust(full):
                        self.known.add(prefix + (entry,))
                        walk(full, prefix + (entry,))
                elif entry.endswith(".rs"):
                    rel = os.path.relpath(full, self.src)
                    if not prefix and entry in ROOT_FILES:
                        self.root_files.append(rel)
                        continue
                    if entry == "mod.rs":
                        path = prefix
                    else:
                        path = prefix + (entry[:-3],)
                    if path:
                        self.files[rel] = path
                        self.known.add(path)

        walk(self.src, ())

    def _root_uses(self, tokens):
        i, n = 0, len(tokens)
        depth = 0
        while i < n:
            t = tokens[i]
            if t.text == "{":
                depth += 1
            elif t.text == "}":
                depth -= 1
            elif depth == 0 and t.kind == "ident" and t.text == "use":
                paths, i = parse_use_tree(tokens, i + 1, [])
                for segs in paths:
                    alias = segs[-1][1] if segs and isinstance(segs[-1], tuple) else None
                    names = [s for s in segs if isinstance(s, str)]
                    if names and names[0] in ("crate", "self"):
                        names = names[1:]
                    if not names:
                        continue
                    if names[-1] == "*":
                        if names[0] != "::" and tuple(names[:-1]) in self.known:
                            self.root_globs.append(tuple(names[:-1]))
                        continue
                    local = alias or names[-1]
                    internal = names[0] != "::" and (names[0],) in self.known
                    self.root_imports[local] = tuple(names) if internal else None
                continue
            i += 1

    def exports(self, module):
        """Public names of a module's main file (mod.rs or x.rs)."""
        if module not in self._exports:
            names = set()
            for rel, path in self.files.items():
                if path == module:
                    names |= public_names(self.tokens[rel])
            self._exports[module] = names
        return self._exports[module]

    def absolute(self, file_module, stack, ref):
        """Ref -> absolute segment tuple, or None when external/unknown."""
        here = file_module + tuple(name for name, _ in stack)
        if ref.base == "crate":
            return tuple(ref.segments)
        if ref.base == "self":
            return here + tuple(ref.segments)
        if isinstance(ref.base, tuple):
            k = ref.base[1]
            if k > len(here):
                return None
            return here[: len(here) - k] + tuple(ref.segments)
        # relative: only a child module of the current module counts
        if ref.segments and here + (ref.segments[0],) in self.known:
            return here + tuple(ref.segments)
        return None

    def module_of(self, path, hops=0):
        """Absolute path -> the node it belongs to, or None."""
        if not path or hops > 8:
            return None
        best = None
        for k in range(1, len(path) + 1):
            if path[:k] in self.known:
                best = path[:k]
            else:
                break
        if best is not None:
            rest = path[len(best) :]
            if rest and rest[0] in self.facades.get(best, {}):
                return self.module_of(self.facades[best][rest[0]] + rest[1:], hops + 1)
            for glob in self.facade_globs.get(best, []):
                if rest and rest[0] in self.exports(glob):
                    return self.module_of(glob + rest, hops + 1)
            return best[: self.depth]
        # crate::Name through the roots' imports
        name = path[0]
        if name in self.root_imports:
            target = self.root_imports[name]
            if target is None:
                return None
            return self.module_of(target + path[1:], hops + 1)
        for glob in self.root_globs:
            if name in self.exports(glob):
                return glob[: self.depth]
        return None

    def edges(self):
        """{(from, to): [(file, line, written)]}"""
        found = defaultdict(list)
        for rel in sorted(self.files):
            file_module = self.files[rel]
            node = file_module[: self.depth]
            for stack, ref in collect_refs(self.tokens[rel]):
                path = self.absolute(file_module, stack, ref)
                if path is None:
                    continue
                if ref.reexport and is_below(path, file_module + tuple(n for n, _ in stack)):
                    continue  # a facade: re-exporting a child uses none of it
                target = self.module_of(path)
                if target is None or target == node:
                    continue
                found[(node, target)].append((rel, ref.line, ref.written))
        return found


def is_below(path, module):
    """Whether path lies strictly inside module (a descendant's item)."""
    return len(path) > len(module) + 1 and path[: len(module)] == module


def has_rust(folder):
    for _, _, files in os.walk(folder):
        if any(f.endswith(".rs") for f in files):
            return True
    return False


# ---------------------------------------------------------------- graph


def strongly_connected(nodes, succ):
    """Tarjan's algorithm; components in a stable order."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(sorted(comp))

    sys.setrecursionlimit(max(1000, 10 * len(nodes)))
    for v in nodes:
        if v not in index:
            visit(v)
    return sorted(comps)


def elementary_cycles(comp, succ, limit):
    """Every elementary cycle inside one component (each once, starting at its
    smallest module), up to limit (0: no limit); returns (cycles, complete)."""
    members = set(comp)
    cycles = []
    for start in comp:
        allowed = {v for v in members if v >= start}
        path, on_path = [start], {start}

        def dfs(v):
            for w in sorted(succ[v]):
                if w not in allowed:
                    continue
                if w == start:
                    cycles.append(list(path))
                    if limit and len(cycles) >= limit:
                        return False
                elif w not in on_path:
                    path.append(w)
                    on_path.add(w)
                    if not dfs(w):
                        return False
                    path.pop()
                    on_path.discard(w)
            return True

        if not dfs(start):
            return cycles, False
    return cycles, True


def name(module):
    return "/".join(module)


def main(argv):
    parser = argparse.ArgumentParser(
        prog="module-cycles.py",
        description=__doc__.split("\n\n", 1)[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("src", help="the crate's src directory")
    parser.add_argument(
        "--nested",
        action="store_true",
        help="also treat the files and folders one level down as modules",
    )
    parser.add_argument(
        "--max-cycles",
        type=int,
        default=0,
        metavar="N",
        help="print at most N elementary cycles per group (default 0: all)",
    )
    parser.add_argument(
        "--evidence",
        type=int,
        default=3,
        metavar="N",
        help="references shown per edge of a cycle (default 3)",
    )
    args = parser.parse_args(argv)
    if not os.path.isdir(args.src):
        parser.error(f"{args.src}: not a directory")

    crate = Crate(args.src, args.nested)
    if not crate.nodes:
        parser.error(f"{args.src}: no modules (no .rs files besides the crate root)")
    found = crate.edges()
    succ = {v: set() for v in crate.nodes}
    for a, b in found:
        succ[a].add(b)
    comps = [c for c in strongly_connected(crate.nodes, succ) if len(c) > 1]

    level = "top-level and nested" if args.nested else "top-level"
    print(f"{crate.src}: {len(crate.nodes)} {level} modules, {len(found)} edges")
    if not comps:
        print(f"{crate.src}: no import cycle")
        return 0

    total = 0
    for g, comp in enumerate(comps, 1):
        cycles, complete = elementary_cycles(comp, succ, args.max_cycles)
        cycles.sort(key=lambda c: (len(c), c))
        total += len(cycles)
        print()
        print(f"cycle group {g}: {len(comp)} modules: {' '.join(name(m) for m in comp)}")
        more = "" if complete else f" (first {len(cycles)}; --max-cycles 0 for all)"
        print(f"  {len(cycles)} elementary cycles{more}:")
        for cycle in cycles:
            print("    " + " -> ".join(name(m) for m in cycle + [cycle[0]]))
        print("  references that make the edges of this group:")
        members = set(comp)
        for (a, b) in sorted(found):
            if a in members and b in members:
                refs = found[(a, b)]
                print(f"    {name(a)} -> {name(b)} ({len(refs)} references)")
                for rel, line, written in refs[: args.evidence]:
                    print(f"      {os.path.join(crate.src, rel)}:{line}: {written}")
    print()
    print(
        f"{crate.src}: {len(comps)} cycle groups, {total} elementary cycles: "
        "the modules of each group import each other"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
