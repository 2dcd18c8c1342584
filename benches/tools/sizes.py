#!/usr/bin/env python3
"""Where a module's bytes go, by function and by crate (stdlib only).

  sizes.py [--top N] [--json] MODULE.wasm

Reads the code section (each body with its size prefix) and the `name` section,
demangles Rust's legacy symbols and charges each function to the crate that
defines it: the first path segment, or for `<T as Trait>::f` the crate of T
(generic code of core/alloc instantiated for the plugin's types is charged to
core/alloc, and closures called through `FnOnce::call_once` shims to core).
Sections other than code are listed as such, so the rows add up to the file.
"""
import argparse, json, re, sys
from collections import defaultdict

ESCAPES = {"$SP$": "@", "$BP$": "*", "$RF$": "&", "$LT$": "<", "$GT$": ">", "$LP$": "(", "$RP$": ")", "$C$": ","}
SECTIONS = {0: "custom", 1: "type", 2: "import", 3: "function", 4: "table", 5: "memory", 6: "global",
            7: "export", 8: "start", 9: "element", 10: "code", 11: "data", 12: "datacount", 13: "tag"}


def uleb(b, p):
    r = s = 0
    while True:
        x = b[p]
        p += 1
        r |= (x & 0x7F) << s
        s += 7
        if x < 0x80:
            return r, p


def sections(b):
    if b[:4] != b"\0asm":
        raise SystemExit("not a wasm module")
    p = 8
    while p < len(b):
        sid = b[p]
        n, q = uleb(b, p + 1)
        name = SECTIONS.get(sid, "?")
        if sid == 0:
            ln, r = uleb(b, q)
            name = "custom:" + b[r:r + ln].decode("utf-8", "replace")
        yield sid, name, q, q + n, q + n - p
        p = q + n


def imported_functions(b, start, end):
    count, p = uleb(b, start)
    funcs = 0
    for _ in range(count):
        for _ in range(2):
            ln, p = uleb(b, p)
            p += ln
        kind = b[p]
        p += 1
        if kind == 0:
            _, p = uleb(b, p)
            funcs += 1
        elif kind == 1:
            p += 1
            flags, p = uleb(b, p)
            _, p = uleb(b, p)
            if flags & 1:
                _, p = uleb(b, p)
        elif kind == 2:
            flags, p = uleb(b, p)
            _, p = uleb(b, p)
            if flags & 1:
                _, p = uleb(b, p)
        elif kind == 3:
            p += 2
        else:
            _, p = uleb(b, p + 1)
    return funcs


def function_names(b, start, end):
    ln, p = uleb(b, start)
    p += ln
    names = {}
    while p < end:
        sub = b[p]
        size, q = uleb(b, p + 1)
        if sub == 1:
            count, r = uleb(b, q)
            for _ in range(count):
                idx, r = uleb(b, r)
                ln, r = uleb(b, r)
                names[idx] = b[r:r + ln].decode("utf-8", "replace")
                r += ln
        p = q + size
    return names


def unescape(seg):
    for k, v in ESCAPES.items():
        seg = seg.replace(k, v)
    seg = re.sub(r"\$u([0-9a-f]+)\$", lambda m: chr(int(m.group(1), 16)), seg)
    seg = seg.replace("..", "::")
    return seg[1:] if seg.startswith("_$") or seg.startswith("_<") else seg


BASIC = {"a": "i8", "b": "bool", "c": "char", "d": "f64", "e": "str", "f": "f32", "h": "u8", "i": "isize",
         "j": "usize", "l": "i32", "m": "u32", "n": "i128", "o": "u128", "s": "i16", "t": "u16", "u": "()",
         "v": "...", "x": "i64", "y": "u64", "z": "!", "p": "_"}


class V0:
    """Rust v0 symbols (_R...), enough to print paths; generic arguments are kept."""

    def __init__(self, s):
        self.s, self.p = s, 0

    def peek(self):
        return self.s[self.p] if self.p < len(self.s) else ""

    def take(self):
        c = self.peek()
        self.p += 1
        return c

    def base62(self):
        if self.peek() == "_":
            self.p += 1
            return 0
        n = 0
        while self.peek() != "_":
            c = self.take()
            n = n * 62 + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".index(c)
        self.p += 1
        return n + 1

    def disambiguator(self):
        if self.peek() == "s":
            self.p += 1
            self.base62()

    def ident(self):
        self.disambiguator()
        if self.peek() == "u":
            self.p += 1
        m = re.match(r"\d+", self.s[self.p:])
        n = int(m.group())
        self.p += len(m.group())
        if self.peek() == "_":
            self.p += 1
        name = self.s[self.p:self.p + n]
        self.p += n
        return name

    def backref(self, f):
        at = self.base62() + 2
        saved, self.p = self.p, at
        r = f()
        self.p = saved
        return r

    def path(self):
        c = self.take()
        if c == "C":
            return self.ident()
        if c == "N":
            ns = self.take()
            parent = self.path()
            name = self.ident()
            if ns == "C":
                return parent + "::{closure}"
            if ns == "S":
                return parent + "::{shim}"
            return parent + "::" + name if name else parent
        if c == "M":
            self.disambiguator()
            self.path()
            return "<" + self.type() + ">"
        if c == "X":
            self.disambiguator()
            self.path()
            t = self.type()
            return "<" + t + " as " + self.path() + ">"
        if c == "Y":
            t = self.type()
            return "<" + t + " as " + self.path() + ">"
        if c == "I":
            base = self.path()
            args = []
            while self.peek() != "E":
                args.append(self.generic_arg())
            self.p += 1
            return base + "<" + ", ".join(a for a in args if a) + ">"
        if c == "B":
            return self.backref(self.path)
        raise ValueError(c)

    def generic_arg(self):
        if self.peek() == "L":
            self.p += 1
            self.base62()
            return ""
        if self.peek() == "K":
            self.p += 1
            return self.const()
        return self.type()

    def const(self):
        c = self.peek()
        if c == "B":
            self.p += 1
            return self.backref(self.const)
        if c == "p":
            self.p += 1
            return "_"
        self.type()
        neg = self.peek() == "n"
        if neg:
            self.p += 1
        digits = self.s[self.p:self.s.index("_", self.p)]
        self.p += len(digits) + 1
        return ("-" if neg else "") + str(int(digits or "0", 16))

    def type(self):
        c = self.peek()
        if c in BASIC:
            self.p += 1
            return BASIC[c]
        self.p += 1
        if c == "A":
            t = self.type()
            return "[%s; %s]" % (t, self.const())
        if c == "S":
            return "[" + self.type() + "]"
        if c in "RQ":
            if self.peek() == "L":
                self.p += 1
                self.base62()
            return ("&" if c == "R" else "&mut ") + self.type()
        if c in "PO":
            return ("*const " if c == "P" else "*mut ") + self.type()
        if c == "T":
            ts = []
            while self.peek() != "E":
                ts.append(self.type())
            self.p += 1
            return "(" + ", ".join(ts) + ")"
        if c == "F":
            if self.peek() == "G":
                self.p += 1
                self.base62()
            if self.peek() == "U":
                self.p += 1
            if self.peek() == "K":
                self.p += 1
                if self.peek() == "C":
                    self.p += 1
                else:
                    self.ident()
            args = []
            while self.peek() != "E":
                args.append(self.type())
            self.p += 1
            return "fn(" + ", ".join(args) + ") -> " + self.type()
        if c == "D":
            if self.peek() == "G":
                self.p += 1
                self.base62()
            bounds = []
            while self.peek() != "E":
                b = self.path()
                while self.peek() == "p":
                    self.p += 1
                    self.ident()
                    self.type()
                bounds.append(b)
            self.p += 1
            if self.peek() == "L":
                self.p += 1
                self.base62()
            return "dyn " + " + ".join(bounds)
        if c == "B":
            return self.backref(self.type)
        self.p -= 1
        return self.path()


def demangle(sym):
    """Rust symbols to a path without hash: legacy (_ZN...E) and v0 (_R...); others unchanged."""
    sym = re.sub(r"\.llvm\.\d+$", "", sym)
    if sym.startswith("_R"):
        d = V0(sym)
        d.p = 2
        if d.peek().isdigit():
            while d.peek().isdigit():
                d.p += 1
        try:
            return d.path()
        except (ValueError, IndexError, AttributeError):
            return sym
    if not sym.startswith("_ZN") or not sym.endswith("E"):
        return sym
    p, segs = 3, []
    while p < len(sym) - 1:
        m = re.match(r"\d+", sym[p:])
        if not m:
            return sym
        n = int(m.group())
        p += len(m.group())
        segs.append(sym[p:p + n])
        p += n
    if segs and re.fullmatch(r"h[0-9a-f]{16}", segs[-1]):
        segs.pop()
    return "::".join(unescape(s) for s in segs)


BUILTINS = re.compile(r"^(mem(cpy|set|move|cmp)|bcmp|__(ash|lsh|mul|div|mod|udiv|umod|neg|float|fix|extend|trunc|add|sub|cmp)\w*)$")


def split_top(s, sep):
    """s split at the first sep outside <...>."""
    depth = 0
    for i, c in enumerate(s):
        depth += c == "<"
        depth -= c == ">"
        if depth == 0 and s.startswith(sep, i):
            return s[:i], s[i + len(sep):]
    return s, ""


def type_crate(t):
    """The crate defining a type, None for primitives and generic parameters."""
    t = re.sub(r"^(?:&mut |&|\*const |\*mut |dyn |impl |\[|\()+", "", t)
    m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", t)
    if not m or "::" not in t or m.group() in BASIC.values():
        return None
    return "std" if m.group() == "__rustc" else m.group()


def crate_of(path):
    if BUILTINS.match(path):
        return "compiler_builtins"
    if re.match(r"nd_\w+$", path):
        return "(nd_* export shims)"
    if path.startswith("<"):
        depth = 0
        for i, c in enumerate(path):
            depth += c == "<"
            depth -= c == ">"
            if depth == 0:
                break
        self_type, trait = split_top(path[1:i], " as ")
        return type_crate(self_type) or (crate_of(trait) if trait else "core")
    return type_crate(path) or "(other)"


def analyse(path):
    b = open(path, "rb").read()
    secs = list(sections(b))
    imported, names, bodies, other = 0, {}, [], []
    for sid, name, start, end, total in secs:
        if sid == 2:
            imported = imported_functions(b, start, end)
        elif name == "custom:name":
            names = function_names(b, start, end)
    for sid, name, start, end, total in secs:
        if sid == 10:
            count, p = uleb(b, start)
            for i in range(count):
                size, q = uleb(b, p)
                bodies.append((imported + i, q + size - p))
                p = q + size
            other.append(("code section overhead", total - sum(s for _, s in bodies)))
        elif name != "custom:name":
            other.append((name + " section", total))
    funcs = []
    for idx, size in bodies:
        sym = names.get(idx, "")
        path = demangle(sym) if sym else "func[%d]" % idx
        funcs.append({"index": idx, "bytes": size, "name": path, "crate": crate_of(path) if sym else "(no name)"})
    crates = defaultdict(lambda: [0, 0])
    for f in funcs:
        crates[f["crate"]][0] += f["bytes"]
        crates[f["crate"]][1] += 1
    name_bytes = sum(t for _, n, _, _, t in secs if n == "custom:name")
    return {
        "file": path, "bytes": len(b), "named": bool(names), "name_section": name_bytes,
        "functions": sorted(funcs, key=lambda f: -f["bytes"]),
        "crates": sorted(({"crate": k, "bytes": v[0], "functions": v[1]} for k, v in crates.items()), key=lambda c: -c["bytes"]),
        "other": sorted(({"what": k, "bytes": v} for k, v in other if v), key=lambda o: -o["bytes"]),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("wasm")
    a = ap.parse_args()
    r = analyse(a.wasm)
    if a.json:
        r["functions"] = r["functions"][:a.top]
        json.dump(r, sys.stdout, indent=1)
        return
    print("%s: %d bytes (name section %d)" % (a.wasm, r["bytes"], r["name_section"]))
    for f in r["functions"][:a.top]:
        print("%7d  %-18s %s" % (f["bytes"], f["crate"], f["name"][:110]))
    print()
    for c in r["crates"]:
        print("%7d  %4d fn  %s" % (c["bytes"], c["functions"], c["crate"]))
    for o in r["other"]:
        print("%7d          %s" % (o["bytes"], o["what"]))


if __name__ == "__main__":
    main()
