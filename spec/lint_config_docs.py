#!/usr/bin/python3
"""lint_config_docs: docs/configuration.md documents exactly the options
`moonwire --help` prints, each once, and says for each whether a change
needs a restart the same way --help does.

The option list comes from the binary, not from src/config.c, so what is
checked is what a user sees. Options in the doc are the first cell of rows
of tables whose header starts with "key"; the "on reload" column, where a
table has one, must read `live` or `restart`.

Usage: lint_config_docs.py --binary build/moonwire --doc docs/configuration.md
Exit status 0 when they agree, 1 listing every disagreement.
"""
import argparse
import re
import subprocess
import sys

HELP_LINE = re.compile(r"^  ([a-z][a-z0-9_]*)\s+(integer|boolean|string|strings|table)\s")
RESTART_MARK = "[restart]"


def help_options(binary):
    """{name: needs_restart} from `moonwire --help`."""
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        sys.exit("lint_config_docs: %s --help exited %d: %s" % (binary, out.returncode, out.stderr))
    options = {}
    for line in (out.stdout + out.stderr).splitlines():
        m = HELP_LINE.match(line)
        if m:
            options[m.group(1)] = line.rstrip().endswith(RESTART_MARK)
    if not options:
        sys.exit("lint_config_docs: no options found in %s --help" % binary)
    return options


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def doc_options(path):
    """[(name, reload_cell or None, line number)] from the option tables."""
    rows = []
    header = None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.lstrip().startswith("|"):
                header = None
                continue
            c = cells(line)
            if header is None:
                header = [h.lower() for h in c]
                continue
            if header[0] != "key" or set(line.strip()) <= set("|-: "):
                continue
            m = re.fullmatch(r"`([a-z][a-z0-9_]*)`", c[0])
            if not m:
                rows.append((c[0], None, lineno))
                continue
            reload_cell = None
            if "on reload" in header and header.index("on reload") < len(c):
                reload_cell = c[header.index("on reload")].strip("`* ")
            rows.append((m.group(1), reload_cell, lineno))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--doc", required=True)
    args = ap.parse_args()

    options = help_options(args.binary)
    rows = doc_options(args.doc)
    problems = []
    seen = {}
    for name, reload_cell, lineno in rows:
        where = "%s:%d" % (args.doc, lineno)
        if name in seen:
            problems.append("%s: %s documented twice (first at line %d)" % (where, name, seen[name]))
            continue
        seen[name] = lineno
        if name not in options:
            problems.append("%s: %s is documented but moonwire --help has no such option"
                            % (where, name))
            continue
        want = "restart" if options[name] else "live"
        if reload_cell is None:
            problems.append("%s: %s does not say whether it is live or needs a restart "
                            "(no \"on reload\" column)" % (where, name))
        elif reload_cell != want:
            problems.append("%s: %s says %r on reload, moonwire --help says %s"
                            % (where, name, reload_cell, want))
    for name in options:
        if name not in seen:
            problems.append("%s: %s is not documented (moonwire --help lists it)" % (args.doc, name))

    for p in problems:
        print(p)
    if problems:
        print("lint_config_docs: %d problem(s); %d options in --help, %d documented"
              % (len(problems), len(options), len(seen)))
        return 1
    print("lint_config_docs: %d options, all documented" % len(options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
