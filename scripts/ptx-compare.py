#!/usr/bin/env python3
"""Compares the kernels of two PTX files entry by entry: which entries are new, gone, or changed.

    scripts/ptx-compare.py OLD.ptx NEW.ptx
    scripts/ptx-compare.py --git REV src/main/resources/ptx/flash_attention.ptx   (REV's copy against the working tree's)

A kernel source change meant to leave the existing kernels alone (a new template argument, a new
entry) should change none of them. nvcc renumbers virtual registers and may reorder a few moves
when a template grows, which changes the text but not what runs, so each changed entry is put in
one of three classes:
  - "registers only": the same text once registers are renamed in order of first use;
  - "moves only": the same instructions, operands and order once the moves are left out (what the
    moves copy is not compared: read the SASS where that matters);
  - "changed": anything else (other instructions, operands of other kinds, another order).
Exit status 0 when no entry of OLD is gone or "changed", 1 otherwise, 2 on bad arguments.
"""
import re
import subprocess
import sys

ENTRY = re.compile(r"\.entry\s+(\w+)\s*\(")
LABEL = re.compile(r"\$L__\w+")
REGISTER = re.compile(r"%(rd|r|fd|f|p|hh|h|rs)\d+\b")
DECLARATION = re.compile(r"\.reg\s+[^;]*;")


def entries(text):
    """Each .entry's text up to its closing brace, labels normalized, by name."""
    out = {}
    for m in ENTRY.finditer(text):
        i = text.index("{", m.end())
        depth = 0
        j = i
        while True:
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        out[m.group(1)] = LABEL.sub("L", text[m.start():j + 1])
    return out


def renamed(body):
    """The body with its register declarations dropped and registers renamed in order of first use."""
    names = {}

    def rename(m):
        key = m.group(0)
        if key not in names:
            names[key] = "%%%s_%d" % (m.group(1), len(names))
        return names[key]

    return REGISTER.sub(rename, DECLARATION.sub("", body))


def without_moves(body):
    """The body without its moves, registers renamed in order of first use in what is left."""
    kept = [line for line in body.splitlines() if not line.strip().startswith("mov.")]
    return renamed("\n".join(kept))


def classify(old, new):
    if old == new:
        return "same"
    if renamed(old) == renamed(new):
        return "registers only"
    if without_moves(old) == without_moves(new):
        return "moves only"
    return "changed"


def main(argv):
    if len(argv) == 4 and argv[1] == "--git":
        old_text = subprocess.run(["git", "show", "%s:%s" % (argv[2], argv[3])], capture_output=True, text=True, check=True).stdout
        new_text = open(argv[3]).read()
    elif len(argv) == 3:
        old_text, new_text = open(argv[1]).read(), open(argv[2]).read()
    else:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    old, new = entries(old_text), entries(new_text)
    gone = sorted(set(old) - set(new))
    added = sorted(set(new) - set(old))
    classes = {}
    for name in sorted(set(old) & set(new)):
        classes.setdefault(classify(old[name], new[name]), []).append(name)
    print("entries: %d before, %d after" % (len(old), len(new)))
    print("new: %d %s" % (len(added), " ".join(added)))
    print("gone: %d %s" % (len(gone), " ".join(gone)))
    for c in ("same", "registers only", "moves only", "changed"):
        names = classes.get(c, [])
        print("%s: %d%s" % (c, len(names), "" if c == "same" else " " + " ".join(names)))
    return 1 if gone or classes.get("changed") else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
