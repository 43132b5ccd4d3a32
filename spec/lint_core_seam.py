#!/usr/bin/env python3
"""lint_core_seam.py - the seam between the core and Lua, read from the includes.

Two rules (docs/architecture.md, issue 8):

1. No core file includes a header of src/lua/: the core reaches the app
   only through the callback table of src/app.h. Core files are everything
   under src/ but src/lua/ and src/main.c (which wires the two together).
2. The core's modules form no include circle. A module is foo.c with foo.h
   (and foo_private.h, the module's header for its own parts); module A
   depends on B when a file of A includes a header of B. Only src/*.c and
   src/*.h count: not src/lua/, src/main.c or src/bench/.

Prints every violation (for a circle, its modules, one path around it and
the includes that make each of its edges) and exits 1 when there is any.
Usage: lint_core_seam.py SRC_DIR
"""

import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def includes(path):
    """(line number, included name) of every #include "..." in path."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in INCLUDE.finditer(text)]


def lua_includes(src):
    """Core files that include a header of src/lua/."""
    bad = []
    for root, dirs, files in os.walk(src):
        dirs.sort()
        rel_root = os.path.relpath(root, src)
        if rel_root == "lua" or rel_root.startswith("lua" + os.sep):
            continue
        for name in sorted(files):
            if not name.endswith((".c", ".h")):
                continue
            rel = os.path.normpath(os.path.join(rel_root, name))
            if rel == "main.c":
                continue
            for line, inc in includes(os.path.join(root, name)):
                # Resolved against the including file's directory, then against
                # src/ (the include path): "lua/x.h", "../lua/x.h", "./lua/x.h".
                for base in (rel_root, "."):
                    target = os.path.normpath(os.path.join(base, inc))
                    if target.split(os.sep)[0] == "lua":
                        bad.append("src/%s:%d includes \"%s\" (src/%s)" % (rel, line, inc, target))
                        break
    return bad


def module_of(name):
    """The module a file of src/ belongs to: foo for foo.c, foo.h, foo_private.h."""
    stem = os.path.splitext(name)[0]
    return stem[: -len("_private")] if stem.endswith("_private") else stem


def include_graph(src):
    """{module: {module it depends on: [evidence, ...]}} over src/*.c and src/*.h."""
    files = sorted(
        n for n in os.listdir(src)
        if n.endswith((".c", ".h")) and n != "main.c" and os.path.isfile(os.path.join(src, n))
    )
    present = set(files)
    graph = {}
    for name in files:
        a = module_of(name)
        graph.setdefault(a, {})
        for line, inc in includes(os.path.join(src, name)):
            target = os.path.normpath(inc)
            if target not in present:
                continue  # system headers, src/lua/ (rule 1), anything outside the core
            b = module_of(target)
            if b != a:
                graph[a].setdefault(b, []).append("src/%s:%d includes \"%s\"" % (name, line, inc))
    return graph


def cycles(graph):
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
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
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def path_around(graph, comp, start):
    """One shortest circle through start inside the component (BFS)."""
    members = set(comp)
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v]):
            if w not in members:
                continue
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: lint_core_seam.py SRC_DIR")
    src = sys.argv[1]
    failed = False

    bad = lua_includes(src)
    if bad:
        failed = True
        print("core files that include a src/lua/ header (the core reaches the app through src/app.h):")
        for b in bad:
            print("  " + b)

    graph = include_graph(src)
    for comp in cycles(graph):
        failed = True
        print("include circle between the core modules %s:" % ", ".join(comp))
        seen = []
        for start in comp:
            circle = path_around(graph, comp, start)
            key = sorted(circle[:-1])
            if key not in seen:
                seen.append(key)
                print("  " + " -> ".join(circle))
        for a in comp:
            for b in sorted(graph[a]):
                if b in comp:
                    for why in graph[a][b]:
                        print("  %s -> %s: %s" % (a, b, why))

    if not failed:
        print("core seam ok: no src/lua/ include outside src/lua/ and src/main.c, "
              "no include circle among %d core modules" % len(graph))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
