#!/usr/bin/python3
"""valgrind_report.py: summarize the memcheck logs of test/valgrind.sh.

Usage: valgrind_report.py [--strict] [--supp FILE] [--src DIR] LOGDIR [SERVERLOGDIR]

Reads every LOGDIR/<pid>.log (memcheck's text output, one per server
process: valgrind does not split its XML output at fork, so text it is),
names each process from the PostgreSQL server logs in SERVERLOGDIR, and
prints four sections:

  1. ours: errors where the code at fault is invicti_scan's.  That is the
     first frame of the error's stack that is not in a system library is
     in invicti_scan.so (a file of --src, default src/) or libcurl; or the
     memory involved was allocated, freed or left uninitialised by our code
     (in the "alloc'd at", "free'd at" or "created by" stack, the first
     frame outside the system libraries and PostgreSQL's allocator is
     ours).  Every stack is printed in full.
  2. definite leaks allocated that way (same rule on the leak's stack).
  3. PostgreSQL's own errors that ran under a call from our code (e.g. the
     worker's commit writing WAL that holds padding bytes): our frames are
     deeper in the stack, not at fault.  Printed in full; they fail the run
     only with --strict.
  4. everything else, briefly, with the suppression valgrind generated.

Exit status: 1 when section 1 or 2 (or, with --strict, 3) is not empty, or
when the suppressions file (--supp) breaks its rule: every entry names
every frame down to main with no "..." and no pattern that could match
invicti_scan.so or libcurl, so that no entry can hide a stack that passes
through our code.  Otherwise 0.  It only reads.
"""
import argparse
import collections
import glob
import os
import re
import sys

LINE_RE = re.compile(r"^==(\d+)== ?(.*)$")
FRAME_RE = re.compile(r"^\s+(?:at|by) (0x[0-9A-Fa-f]+): (.*)$")
# PostgreSQL's memory allocator, whose frames stand between malloc/free and
# the code that asked for the memory.  (Static ones show as ??? without
# debug symbols; those are skipped too.)
ALLOCATOR_RE = re.compile(
    r"^(palloc\w*|repalloc\w*|pfree|pstrdup|pnstrdup|psprintf|pvsnprintf|"
    r"MemoryContext\w+|AllocSet\w+|Generation\w+|Slab\w+|"
    r"initStringInfo|makeStringInfo|enlargeStringInfo|appendStringInfo\w*|"
    r"appendBinaryStringInfo\w*)$")


class Frame:
    __slots__ = ("ip", "fn", "file", "line", "obj")

    def __init__(self, ip, rest):
        self.ip = ip
        self.file = self.line = self.obj = ""
        m = re.match(r"^(.*?) \(in (.+)\)$", rest)
        if m:
            self.fn, self.obj = m.group(1), m.group(2)
        else:
            m = re.match(r"^(.*?) \((.+):(\d+)\)$", rest)
            if m:
                self.fn, self.file, self.line = m.group(1), m.group(2), m.group(3)
            else:
                self.fn = rest

    def text(self):
        where = f"{shorten(self.file)}:{self.line}" if self.file else os.path.basename(self.obj)
        return f"{self.fn} ({where})"


def shorten(path):
    """src/worker.c for our files, the basename for others."""
    m = re.search(r"(?:^|/)(src/[^/]+)$", path)
    return m.group(1) if m else os.path.basename(path)


class Classifier:
    def __init__(self, src_dir):
        self.ours = {os.path.basename(p) for p in glob.glob(os.path.join(src_dir, "*.[ch]"))}

    def is_ours(self, f):
        if "/invicti_scan.so" in f.obj or "/libcurl.so" in f.obj:
            return True
        if f.file:
            parts = f.file.rsplit("/", 2)
            name = parts[-1]
            parent = parts[-2] if len(parts) > 1 else "src"
            return name in self.ours and parent == "src"
        return False

    @staticmethod
    def is_postgres(f):
        return (f.obj.endswith("/postgres") or "/postgresql/" in f.obj
                or re.search(r"/src/(backend|common|port|include|pl)/", f.file) is not None)

    def at_fault(self, stack):
        for f in stack:
            if self.is_ours(f):
                return True
            if self.is_postgres(f):
                return False
        return False

    def allocated_by_us(self, stack):
        """Whether the code that allocated, freed or created the memory of an
        "alloc'd at" / "free'd at" / "created by" stack is ours: the first
        frame that is neither a system library nor PostgreSQL's allocator."""
        for f in stack:
            if self.is_ours(f):
                return True
            if self.is_postgres(f):
                if f.fn in ("???", "") or ALLOCATOR_RE.match(f.fn):
                    continue
                return False
        return False

    def any_ours(self, stack):
        return any(self.is_ours(f) for f in stack)


def parse_log(path):
    """The errors of one log, each with its stacks and suppression."""
    errors = []
    complete = False
    suppressed = 0
    node = "?"          # the server log's name, from the data directory
    pieces = []         # ("block", lines) and ("supp", lines), in order
    block, supp = [], None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            raw = raw.rstrip("\n")
            m = LINE_RE.match(raw)
            if m is None:
                # generated suppressions are written without the ==pid== prefix
                if raw == "{":
                    supp = [raw]
                elif supp is not None:
                    supp.append(raw)
                    if raw == "}":
                        pieces.append(("supp", supp))
                        supp = None
                continue
            text = m.group(2)
            c = re.match(r"Command: .* -D \S*/t_(\S+)_data/pgdata", text)
            if c:
                node = c.group(1)
            if text.strip() == "":
                if block:
                    pieces.append(("block", block))
                block = []
            else:
                block.append(text)
    if block:
        pieces.append(("block", block))

    for what, b in pieces:
        if what == "supp":
            if errors and not errors[-1]["suppression"]:
                errors[-1]["suppression"] = "\n".join(b)
            continue
        for line in b:
            if line.startswith("ERROR SUMMARY:"):
                complete = True
                s = re.search(r"suppressed: ([\d,]+) from", line)
                suppressed = int(s.group(1).replace(",", "")) if s else 0
        if len(b) < 2 or not FRAME_RE.match(b[1]):
            continue    # preamble, summaries, warnings
        err = {"what": b[0], "stack": [], "aux": [], "suppression": ""}
        target = err["stack"]
        for line in b[1:]:
            fm = FRAME_RE.match(line)
            if fm:
                target.append(Frame(fm.group(1), fm.group(2)))
            else:
                err["aux"].append((line.strip(), []))
                target = err["aux"][-1][1]
        errors.append(err)
    return errors, complete, suppressed, node


def kind_of(what):
    if "definitely lost" in what:
        return "Leak_DefinitelyLost"
    if "indirectly lost" in what:
        return "Leak_IndirectlyLost"
    if "possibly lost" in what:
        return "Leak_PossiblyLost"
    return re.sub(r"0x[0-9A-Fa-f]+|[\d,]+", "N", what)


def leaked_bytes(what):
    m = re.match(r"([\d,]+) (?:\(.*?\) )?bytes in", what)
    return int(m.group(1).replace(",", "")) if m else 0


def process_names(server_log_dir):
    """(server log, pid) -> what it is, from the server logs."""
    names = {}
    if not server_log_dir:
        return names
    line_re = re.compile(r"^\S+ \S+ \S+ \[(\d+)\] (.*?)\s*(?:LOG|WARNING|ERROR|FATAL|PANIC|DETAIL|HINT|STATEMENT|CONTEXT|DEBUG\d?):  (.*)$")
    for path in sorted(glob.glob(os.path.join(server_log_dir, "*.log"))):
        log = os.path.basename(path)[:-4]
        if log.startswith("regress_log_"):
            continue
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                m = line_re.match(line)
                if not m:
                    continue
                pid, app, msg = int(m.group(1)), m.group(2), m.group(3)
                w = re.search(r'background worker "invicti_scan worker" \(PID (\d+)\)', msg)
                if w:
                    names[(log, int(w.group(1)))] = "invicti_scan worker"
                key = (log, pid)
                if app == "invicti_scan worker" or msg.startswith("invicti_scan worker started"):
                    names[key] = "invicti_scan worker"
                elif msg.startswith("starting PostgreSQL"):
                    names[key] = "postmaster"
                elif key not in names and app:
                    names[key] = f"backend ({app})"
                elif key not in names:
                    names[key] = "server process"
    return names


def check_suppressions(path):
    """Problems with the suppressions file's rule, as sentences."""
    problems = []
    if not path:
        return problems
    entries, cur = [], None
    with open(path, encoding="utf-8") as fh:
        for n, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line == "{":
                cur = {"start": n, "lines": []}
            elif line == "}":
                entries.append(cur)
                cur = None
            elif cur is not None:
                cur["lines"].append(line)
    for e in entries:
        name = e["lines"][0] if e["lines"] else "?"
        # after the name and the kind: extra lines (a syscall parameter,
        # match-leak-kinds), then the frames
        frames = [l for l in e["lines"][2:] if re.match(r"^(fun|obj|src):", l) or l == "..."]
        # fun: an exact name that is not ours; obj: PostgreSQL or the C library
        bad = [l for l in frames if l == "..." or re.search(r"invicti|curl", l, re.I)
               or (l.startswith("fun:") and re.search(r"[*?]", l))
               or (l.startswith("obj:") and not re.search(
                   r"/(postgres|libc\.so\.6|ld-linux-x86-64\.so\.2)$", l))
               or l.startswith("src:")]
        if bad:
            problems.append(f"line {e['start']}: {name}: pattern(s) that could match our code: {bad}")
        if not frames or frames[-1] != "fun:main":
            problems.append(f"line {e['start']}: {name}: does not name every frame down to fun:main")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strict", action="store_true")
    ap.add_argument("--supp")
    ap.add_argument("--src", default="src")
    ap.add_argument("logdir")
    ap.add_argument("serverlogdir", nargs="?")
    args = ap.parse_args()

    cls = Classifier(args.src)
    names = process_names(args.serverlogdir)
    files = sorted(glob.glob(os.path.join(args.logdir, "*.log")))
    groups = collections.OrderedDict()
    incomplete, suppressed, total = [], 0, 0
    logged = set()
    for path in files:
        pid = int(os.path.basename(path)[:-4]) if os.path.basename(path)[:-4].isdigit() else 0
        errors, complete, supp, node = parse_log(path)
        suppressed += supp
        logged.add((node, pid))
        if not complete:
            incomplete.append(pid)
        for err in errors:
            total += 1
            kind = kind_of(err["what"])
            sig = (kind, tuple(f.fn if f.fn not in ("???", "") else os.path.basename(f.obj)
                               for f in err["stack"][:12]))
            g = groups.setdefault(sig, {"err": err, "kind": kind, "count": 0, "bytes": 0, "pids": set()})
            g["count"] += 1
            g["bytes"] += leaked_bytes(err["what"])
            g["pids"].add((node, pid))

    ours, our_leaks, under_us, others = [], [], [], []
    for g in groups.values():
        e = g["err"]
        aux_ours = any(cls.allocated_by_us(stack) for _, stack in e["aux"])
        if g["kind"].startswith("Leak_"):
            if cls.allocated_by_us(e["stack"]):
                our_leaks.append(g)
            elif cls.any_ours(e["stack"]):
                under_us.append(g)
            else:
                others.append(g)
        elif cls.at_fault(e["stack"]) or aux_ours:
            ours.append(g)
        elif cls.any_ours(e["stack"]) or any(cls.any_ours(s) for _, s in e["aux"]):
            under_us.append(g)
        else:
            others.append(g)

    def who(g):
        seen = collections.Counter()
        for node, pid in g["pids"]:
            kind = names.get((node, pid), "unnamed server process")
            seen[f"{kind} in {node}"] += 1
        return "; ".join(f"{k} x{n}" if n > 1 else k for k, n in sorted(seen.items()))

    def show(g, i, full):
        e = g["err"]
        extra = f", {g['bytes']} bytes in all" if g["kind"].startswith("Leak_") else ""
        print(f"\n#{i} {e['what']}")
        print(f"   {g['count']} time(s){extra}, in {len(g['pids'])} process(es): {who(g)}")
        for f in e["stack"][: (64 if full else 10)]:
            print(f"     at {f.text()}")
        for head, stack in e["aux"]:
            print(f"   {head}")
            for f in stack[: (64 if full else 6)]:
                print(f"     at {f.text()}")
        if not full and e["suppression"]:
            print("   suppression valgrind generated:")
            print("     " + e["suppression"].replace("\n", "\n     "))

    with_log = [f"{pid} ({node})" for node, pid in sorted(logged, key=lambda x: x[1])
                if names.get((node, pid)) == "invicti_scan worker"]
    print("valgrind memcheck report")
    print(f"  server processes run under memcheck: {len(files)}"
          f" ({len(incomplete)} ended before memcheck could finish its log, e.g. SIGKILL)")
    print(f"  invicti_scan worker processes: {len(with_log)} under memcheck"
          f" ({', '.join(map(str, with_log)) or 'none'})")
    print(f"  errors reported: {total} ({len(groups)} distinct); suppressed: {suppressed}")

    def section(title, gs, full):
        print(f"\n=== {title}: {sum(g['count'] for g in gs)} ({len(gs)} distinct)")
        for i, g in enumerate(gs, 1):
            show(g, i, full)

    section("1. errors in invicti_scan code (or libcurl called by it)", ours, True)
    section("2. definite leaks allocated by invicti_scan code (or libcurl)", our_leaks, True)
    section("3. PostgreSQL's errors under a call from invicti_scan code"
            + (" (fail: --strict)" if args.strict else " (not failing)"), under_us, True)
    section("4. other errors (PostgreSQL, system libraries)", others, False)

    problems = check_suppressions(args.supp)
    if problems:
        print(f"\n=== {args.supp} breaks its rule:")
        for p in problems:
            print(f"  {p}")
    failed = bool(ours or our_leaks or problems or (args.strict and under_us))
    print(f"\nresult: {'FAIL' if failed else 'ok'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
