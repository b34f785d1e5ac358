#!/usr/bin/env python3
"""Lists import cycles between the modules (source files) of each crate.

An edge A -> B means file A names an item of module B through a path
(`crate::b::…`, `super::…`, `self::…` or a bare path to a sibling module
declared in the crate root). A parent's `mod child;` and its `pub use child::…`
re-exports are not edges: they make the parent a facade of its children, not a
user of them. Exits 1 when a cycle exists, printing each one.

Usage: scripts/module-cycles.py [crate_src_dir ...]   (default: every crate)
"""
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def crate_dirs():
    yield ROOT / "src"
    for d in sorted((ROOT / "crates").iterdir()):
        if (d / "src").is_dir():
            yield d / "src"


def module_path(src: Path, f: Path):
    rel = f.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


PATH = re.compile(r"\b(crate|super|self)((?:::\s*(?:\{[^}]*\}|\w+))+)")


def strip(text):
    """Source without comments and string literals, so paths in docs and
    messages do not count."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + len(hashes) + 2)
            i = n if end < 0 else end + 1 + len(hashes)
            out.append('""')
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:]):
            i += len(re.match(r"'(\\.|[^\\'])'", text[i:]).group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_tests(text):
    # `#[cfg(test)] mod tests { … }` blocks may use anything above them.
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def first_segments(rest):
    """`::a::b` -> ['a'], `::{a, b::c}` -> ['a', 'b']"""
    rest = rest.strip()
    assert rest.startswith("::")
    rest = rest[2:].strip()
    if rest.startswith("{"):
        inner = rest[1 : rest.index("}")] if "}" in rest else rest[1:]
        return [s.strip().split("::")[0].strip() for s in inner.split(",") if s.strip()], True
    return [rest.split("::")[0].strip()], False


def resolve(mods, here, kind, rest):
    """The deepest known module a path names, or None."""
    if kind == "crate":
        base = ()
    elif kind == "super":
        base = here[:-1]
        # super::super::…
        while rest.strip().startswith("::") and rest.strip()[2:].strip().startswith("super"):
            base = base[:-1]
            rest = rest.strip()[2:].strip()[len("super"):]
    else:
        base = here
    segs = re.findall(r"::\s*(\{[^}]*\}|\w+)", rest)
    targets = []

    def walk(prefix, segs):
        cur = prefix
        for i, s in enumerate(segs):
            if s.startswith("{"):
                for part in s[1:-1].split(","):
                    part = part.strip()
                    if not part:
                        continue
                    sub = [p.strip() for p in part.split("::")]
                    walk(cur, sub)
                return
            if cur + (s,) in mods:
                cur = cur + (s,)
            else:
                break
        targets.append(cur)

    walk(base, segs)
    return targets


def analyse(src: Path):
    files = [p for p in src.rglob("*.rs")]
    mods = {module_path(src, f): f for f in files}
    edges = {m: set() for m in mods}
    for m, f in mods.items():
        text = strip_tests(strip(f.read_text()))
        # Re-exports of own children are facade lines, not uses.
        for line_m in re.finditer(r"^\s*pub(?:\([^)]*\))?\s+use\s+(self::)?(\w+)[^;]*;", text, re.M):
            child = m + (line_m.group(2),)
            if child in mods:
                text = text.replace(line_m.group(0), "")
        for pm in PATH.finditer(text):
            for t in resolve(mods, m, pm.group(1), pm.group(2)):
                if t != m and t in mods and not (len(t) > len(m) and t[: len(m)] == m and False):
                    # A module naming its own descendant is a normal use.
                    edges[m].add(t)
        # Bare paths to a child (`pages::dag_list`, `use child::…`).
        for um in re.finditer(r"(?<![:\w])(\w+)\s*::", text):
            cand = m + (um.group(1),)
            if cand in mods and cand != m:
                edges[m].add(cand)
    # A parent using its own descendants and a descendant using an ancestor
    # are both edges; cycles between them count like any other.
    # `crate::Name` where the root re-exports `Name` from a module names
    # that module, not the root.
    root_text = strip(mods[()].read_text()) if () in mods else ""
    reexported = {}
    for rm in re.finditer(r"^\s*pub\s+use\s+(\w+)::(\{[^}]*\}|\w+)\s*;", root_text, re.M):
        names = rm.group(2).strip("{}").split(",")
        for n in names:
            n = n.strip().split(" as ")[-1].strip()
            if n:
                reexported[n] = (rm.group(1),)
    for m, f in mods.items():
        text = strip_tests(strip(f.read_text()))
        if () in edges[m] and m != ():
            uses_root = False
            for pm in re.finditer(r"\bcrate::\s*(\{[^}]*\}|\w+)", text):
                for n in pm.group(1).strip("{}").split(","):
                    n = n.strip().split("::")[0].strip()
                    if not n:
                        continue
                    if n in reexported:
                        if reexported[n] in mods and reexported[n] != m:
                            edges[m].add(reexported[n])
                    elif (n,) not in mods:
                        uses_root = True
            if not uses_root:
                edges[m].discard(())
    return mods, edges


def sccs(nodes, edges):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in nodes:
        if v not in index:
            strong(v)
    return out


def name(src, m):
    return "::".join(m) or "(root)"


def main():
    dirs = [Path(a).resolve() for a in sys.argv[1:]] or list(crate_dirs())
    bad = 0
    for src in dirs:
        mods, edges = analyse(src)
        crate = src.parent.name if src.parent != ROOT else "tributary (binary)"
        for comp in sccs(sorted(mods), edges):
            bad += 1
            comp_set = set(comp)
            print(f"{crate}: cycle between {', '.join(sorted(name(src, c) for c in comp))}")
            for a in sorted(comp):
                for b in sorted(edges[a] & comp_set):
                    print(f"    {name(src, a)} -> {name(src, b)}")
    if bad:
        print(f"{bad} cycle(s)")
        return 1
    print("no import cycles between modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
