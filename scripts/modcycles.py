#!/usr/bin/env python3
"""Fails when the top-level modules of a crate import each other in a circle.

    scripts/modcycles.py CRATE_SRC_DIR...

A module's edges are the `crate::X` paths in its files, its `#[cfg(test)]` part left
out (tests may use anything). Each cycle is printed with the edges that make it, so
the fix (moving what both need down into a module of its own) is plain to see.
"""
import os
import re
import sys


def modules(src):
    """Top-level module name -> the text of its files (tests cut off)."""
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            top = os.path.relpath(path, src).split(os.sep)[0].removesuffix(".rs")
            if top in ("lib", "main", "bin"):
                continue
            text = open(path).read().split("#[cfg(test)]")[0]
            mods.setdefault(top, []).append(re.sub(r"//.*", "", text))
    return mods


def edges_of(mods):
    edges = {m: set() for m in mods}
    for m, texts in mods.items():
        for text in texts:
            names = re.findall(r"crate::([a-z_0-9]+)", text)
            for group in re.findall(r"crate::\{([^}]*)\}", text):
                names += re.findall(r"\b([a-z_0-9]+)\b", group)
            edges[m].update(n for n in names if n in mods and n != m)
    return edges


def cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
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
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main():
    failed = False
    for src in sys.argv[1:]:
        edges = edges_of(modules(src))
        for comp in cycles(edges):
            failed = True
            print(f"{src}: modules import each other in a circle: {', '.join(comp)}", file=sys.stderr)
            for m in comp:
                print(f"  {m} -> {', '.join(sorted(e for e in edges[m] if e in comp))}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
