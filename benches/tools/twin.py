#!/usr/bin/env python3
"""Counting twin of a wasm module: same code, every import call counted.

  twin.py BINARYEN_BIN IN.wasm OUT.wasm

Disassembles IN with binaryen (names stripped first), routes every `call` of an
imported function through a shim that adds one to a per-import i64 global, and
wraps each exported nd_* function so that, when it returns, it logs the counters
through the kernel (alloc + store_u64 + log_error, imports of its own that are
not counted) as "NDPBENCH" followed by one little-endian u64 per import.
OUT.imports.json lists the imports in counter order. Only the counts matter:
the twin is never timed.
"""
import json, os, re, subprocess, sys, tempfile

NAME = r'\$(?:"(?:[^"\\]|\\.)*"|[^\s()]+)'
IMPORT = re.compile(r'^\s*\(import "([^"]*)" "([^"]*)" \(func (' + NAME + r')((?: \((?:type|param|result)[^()]*\))*)\)\)\s*$')
EXPORT = re.compile(r'\(export "(nd_[^"]*)" \(func (' + NAME + r')\)\)')
MAGIC = int.from_bytes(b"NDPBENCH", "little")
MAGIC = MAGIC - (1 << 64) if MAGIC >= 1 << 63 else MAGIC


# What Navidrome's runtime accepts (wazero CoreFeaturesV2), nothing newer: binaryen's
# --all-features would let wasm-as use encodings wazero rejects.
FEATURES = ["--enable-" + f for f in ("mutable-globals", "sign-ext", "bulk-memory", "nontrapping-float-to-int",
                                      "multivalue", "reference-types", "simd")]


def run(tool, *args):
    subprocess.run([tool, *FEATURES, *args], check=True)


def twin(text):
    lines = text.split("\n")
    imports, last_import = [], None
    for i, line in enumerate(lines):
        m = IMPORT.match(line)
        if m:
            mod, field, name, sig = m.groups()
            params = re.findall(r"\(param ([^()]*)\)", sig)
            params = " ".join(params).split()
            results = " ".join(re.findall(r"\(result ([^()]*)\)", sig)).split()
            imports.append((mod, field, name, params, results))
            last_import = i
        elif line.lstrip().startswith("(import "):
            last_import = i  # a non-function import still orders the fields
    by_name = {im[2]: i for i, im in enumerate(imports)}

    def reroute(m):
        i = by_name.get(m.group(1))
        return m.group(0) if i is None else "(call $bench_cnt$%d" % i

    body = re.sub(r"\(call (" + NAME + r")", reroute, "\n".join(lines))
    lines = body.split("\n")

    headers = {}
    for line in lines:
        m = re.match(r"^\s*\(func (" + NAME + r")(.*)$", line)
        if m:
            headers[m.group(1)] = m.group(2)
    wrappers, exports = [], {}

    def rewrap(m):
        export, target = m.groups()
        if target not in exports:
            exports[target] = "$bench_exp$%d" % len(exports)
            returns = "(result i32)" in headers.get(target, "")
            if returns:
                wrappers.append("(func %s (result i32) (local $r i32) (local.set $r (call %s)) (call $bench_dump) (local.get $r))" % (exports[target], target))
            else:
                wrappers.append("(func %s (call %s) (call $bench_dump))" % (exports[target], target))
        return '(export "%s" (func %s))' % (export, exports[target])

    body = EXPORT.sub(rewrap, "\n".join(lines))
    lines = body.split("\n")

    own = [
        '(import "extism:host/env" "alloc" (func $bench_alloc (param i64) (result i64)))',
        '(import "extism:host/env" "store_u64" (func $bench_store (param i64 i64)))',
        '(import "extism:host/env" "log_error" (func $bench_log (param i64)))',
    ]
    at = last_import + 1 if last_import is not None else 1
    lines[at:at] = own

    extra = []
    for i, (_, _, name, params, results) in enumerate(imports):
        extra.append("(global $bench_c$%d (mut i64) (i64.const 0))" % i)
        ps = "".join(" (param %s)" % p for p in params)
        rs = "".join(" (result %s)" % r for r in results)
        args = "".join(" (local.get %d)" % j for j in range(len(params)))
        extra.append("(func $bench_cnt$%d%s%s (global.set $bench_c$%d (i64.add (global.get $bench_c$%d) (i64.const 1))) (call %s%s))"
                     % (i, ps, rs, i, i, name, args))
    dump = ["(func $bench_dump (local $h i64)",
            " (local.set $h (call $bench_alloc (i64.const %d)))" % (8 * (len(imports) + 1)),
            " (call $bench_store (local.get $h) (i64.const %d))" % MAGIC]
    for i in range(len(imports)):
        dump.append(" (call $bench_store (i64.add (local.get $h) (i64.const %d)) (global.get $bench_c$%d))" % (8 * (i + 1), i))
    dump.append(" (call $bench_log (local.get $h)))")
    extra += dump + wrappers

    end = max(i for i, line in enumerate(lines) if line.strip() == ")")
    lines[end:end] = extra
    return "\n".join(lines), [[im[0], im[1]] for im in imports]


def main():
    bindir, src, dst = sys.argv[1:4]
    with tempfile.TemporaryDirectory() as d:
        stripped, wat, out = (os.path.join(d, n) for n in ("s.wasm", "m.wat", "t.wat"))
        run(os.path.join(bindir, "wasm-opt"), src, "--strip-debug", "-o", stripped)
        run(os.path.join(bindir, "wasm-dis"), stripped, "-o", wat)
        text, imports = twin(open(wat).read())
        open(out, "w").write(text)
        run(os.path.join(bindir, "wasm-as"), out, "-o", dst)
    with open(dst + ".imports.json", "w") as f:
        json.dump(imports, f)


if __name__ == "__main__":
    main()
