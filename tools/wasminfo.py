#!/usr/bin/env python3
"""Size and interface report for a WebAssembly module (stdlib only).

  wasminfo.py [--ndp FILE] WASM        size table (what build.sh prints)
  wasminfo.py --json [--ndp FILE] WASM the same as JSON, plus per-section sizes
  wasminfo.py --top N WASM             the N largest function bodies (names need a `name` section)
  wasminfo.py --features WASM          wasm-opt flags enabling exactly the features the code uses
  wasminfo.py --check BUDGET WASM      enforce the size budget, the plugin's interface and
                                       its stack bound

Features are found by decoding every instruction, not from the target_features section
(cargo's `strip = true` removes that section along with the names).
"""
import argparse, hashlib, json, os, re, sys

# What Navidrome's runtime (wazero CoreFeaturesV2) accepts, spelled as wasm-opt features.
# bulk-memory-opt is binaryen's name for the memory.copy/fill subset of bulk-memory.
CORE_V2 = ["mutable-globals", "sign-ext", "bulk-memory", "bulk-memory-opt",
           "nontrapping-float-to-int", "multivalue", "reference-types", "simd"]
ALLOWED_IMPORT_MODULES = {"extism:host/env", "extism:host/user"}
# Navidrome instantiates every plugin with WASI (EnableWasi) and the real wall clock
# (WithSysWalltime); of WASI only the clock is used.
ALLOWED_WASI = {"wasi_snapshot_preview1": {"clock_time_get"}}
REQUIRED_EXPORTS = [
    "nd_scrobbler_is_authorized", "nd_scrobbler_now_playing", "nd_scrobbler_scrobble",
    "nd_scrobbler_playback_report", "nd_websocket_on_text_message",
    "nd_websocket_on_binary_message", "nd_websocket_on_error", "nd_websocket_on_close",
    "nd_scheduler_callback"]
FORBIDDEN_EXPORTS = {"_start", "_initialize"}
LOW_MEMORY = 1024                                         # wasm-opt --low-memory-unused
SECTION_NAMES = {0: "custom", 1: "type", 2: "import", 3: "function", 4: "table", 5: "memory",
                 6: "global", 7: "export", 8: "start", 9: "element", 10: "code", 11: "data",
                 12: "datacount", 13: "tag"}
KINDS = ["func", "table", "memory", "global", "tag"]


class Reader:
    def __init__(self, buf, pos=0, end=None):
        self.b, self.p, self.end = buf, pos, len(buf) if end is None else end

    def byte(self):
        if self.p >= self.end:
            raise ValueError("unexpected end of module at byte %d" % self.p)
        self.p += 1
        return self.b[self.p - 1]

    def uleb(self):
        r = s = 0
        while True:
            x = self.byte(); r |= (x & 0x7F) << s; s += 7
            if x < 0x80:
                return r

    def sleb(self):
        r = s = 0
        while True:
            x = self.byte(); r |= (x & 0x7F) << s; s += 7
            if x < 0x80:
                return r - (1 << s) if x & 0x40 else r

    def bytes(self, n):
        if self.p + n > self.end:
            raise ValueError("unexpected end of module at byte %d" % self.p)
        self.p += n
        return self.b[self.p - n:self.p]

    def name(self):
        return self.bytes(self.uleb()).decode("utf-8", "replace")

    def limits(self, feats):
        flags = self.uleb(); lo = self.uleb()
        if flags & 2: feats.add("threads")                # shared memory
        if flags & 4: feats.add("memory64")
        return lo, (self.uleb() if flags & 1 else None)


# ---- instruction decoding, just enough to skip immediates and note feature use ----
MEMARG = set(range(0x28, 0x3F))
ONE_U32 = {0x0C, 0x0D, 0x10, 0x20, 0x21, 0x22, 0x23, 0x24, 0x3F, 0x40}
SIMD_MEMARG = set(range(0, 12)) | {92, 93}
SIMD_LANE = set(range(21, 35))


def valtype(t, feats):
    if t == 0x7B: feats.add("simd")
    elif t in (0x70, 0x6F): feats.add("reference-types")


def skip_expr(r, feats, const=False, ops=None):
    """Decode instructions up to the `end` closing the expression; with `ops`, append
    (opcode, first immediate or None) for each (what `stack_bound` reads)."""
    depth = 1
    while depth:
        op = r.byte(); imm = None
        if op in (0x02, 0x03, 0x04):                      # block / loop / if
            depth += 1
            bt = r.sleb()
            if bt >= 0:                                   # type-index block type
                feats.add("multivalue")
            elif bt not in (-0x40, -1, -2, -3, -4):       # empty, i32, i64, f32, f64
                valtype(bt & 0x7F, feats)
        elif op == 0x0B: depth -= 1
        elif op in MEMARG: r.uleb(); r.uleb()
        elif op in ONE_U32: imm = r.uleb()
        elif op == 0x0E:                                  # br_table
            for _ in range(r.uleb() + 1): r.uleb()
        elif op == 0x11:                                  # call_indirect type table
            imm = r.uleb()
            if r.uleb(): feats.add("reference-types")
        elif op == 0x12: feats.add("tail-call"); r.uleb()
        elif op == 0x13: feats.add("tail-call"); r.uleb(); r.uleb()
        elif op == 0x1C:                                  # typed select
            feats.add("reference-types")
            for _ in range(r.uleb()): valtype(r.byte(), feats)
        elif op in (0x25, 0x26, 0xD2): feats.add("reference-types"); imm = r.uleb()
        elif op == 0xD0: feats.add("reference-types"); r.byte()
        elif op == 0xD1: feats.add("reference-types")
        elif op == 0x41: imm = r.sleb()
        elif op == 0x42: r.sleb()
        elif op == 0x43: r.bytes(4)
        elif op == 0x44: r.bytes(8)
        elif 0xC0 <= op <= 0xC4: feats.add("sign-ext")
        elif op == 0xFC:
            sub = r.uleb()
            if sub <= 7: feats.add("nontrapping-float-to-int")
            elif sub <= 14:                               # memory.copy/fill alone: bulk-memory-opt
                feats.add("bulk-memory-opt" if sub in (10, 11) else "bulk-memory")
                for _ in range({8: 2, 9: 1, 10: 2, 11: 1, 12: 2, 13: 1, 14: 2}[sub]): r.uleb()
            elif sub <= 17: feats.add("reference-types"); r.uleb()
            else: raise ValueError("unknown opcode 0xFC %d" % sub)
        elif op == 0xFD:
            feats.add("simd"); sub = r.uleb()
            if sub in SIMD_MEMARG: r.uleb(); r.uleb()
            elif sub in (12, 13): r.bytes(16)
            elif sub in SIMD_LANE: r.byte()
            elif 84 <= sub <= 91: r.uleb(); r.uleb(); r.byte()
        elif op == 0xFE:
            feats.add("threads"); sub = r.uleb()
            if sub == 3: r.byte()
            else: r.uleb(); r.uleb()
        elif op in (0x00, 0x01, 0x05, 0x0F, 0x1A, 0x1B) or 0x45 <= op <= 0xBF:
            if const: feats.add("extended-const")         # arithmetic in an initialiser
        else:
            raise ValueError("unsupported opcode 0x%02x at byte %d" % (op, r.p - 1))
        if ops is not None: ops.append((op, imm))


def parse(path):
    with open(path, "rb") as f:
        buf = f.read()
    if buf[:8] != b"\0asm\1\0\0\0":
        raise ValueError("%s: not a WebAssembly 1.0 binary" % path)
    m = dict(path=path, bytes=len(buf), sections=[], imports=[], exports=[],
             functions=0, imported_functions=0, memory=None, code_bytes=0, bodies=[],
             data_bytes=0, data_segments=0, data_init_bytes=0, custom=[], names={},
             target_features=None, tables=0)
    feats = set()
    # What the stack bound is computed from: each defined function's type and opcodes,
    # the functions a table holds, the globals' mutability and initial values, and where
    # the data ends.
    sk = dict(types=[], ops=[], table=[], globals=[], data_end=0)
    r = Reader(buf, 8)
    while r.p < len(buf):
        sid = r.byte(); size = r.uleb(); start = r.p; s = Reader(buf, start, start + size)
        name = SECTION_NAMES.get(sid, str(sid))
        if sid == 0:
            cname = s.name(); name = "custom:" + cname; m["custom"].append(cname)
            if cname == "name":
                parse_names(s, m)
            elif cname == "target_features":
                m["target_features"] = [chr(s.byte()) + s.name() for _ in range(s.uleb())]
        elif sid == 1:
            for _ in range(s.uleb()):
                if s.byte() != 0x60: raise ValueError("bad function type")
                params = list(s.bytes(s.uleb())); results = list(s.bytes(s.uleb()))
                for t in params + results: valtype(t, feats)
                if len(results) > 1: feats.add("multivalue")
        elif sid == 2:
            for _ in range(s.uleb()):
                mod, fld, kind = s.name(), s.name(), s.byte()
                m["imports"].append(dict(module=mod, name=fld, kind=KINDS[kind]))
                if kind == 0: s.uleb(); m["imported_functions"] += 1
                elif kind == 1: table_type(s, feats, m)
                elif kind == 2: m["memory"] = s.limits(feats) + (True,)
                elif kind == 3:
                    valtype(s.byte(), feats)
                    if s.byte(): feats.add("mutable-globals")
                else: raise ValueError("unsupported import kind %d" % kind)
        elif sid == 3:
            m["functions"] = s.uleb()
            sk["types"] = [s.uleb() for _ in range(m["functions"])]
        elif sid == 4:
            for _ in range(s.uleb()): table_type(s, feats, m)
        elif sid == 5:
            n = s.uleb()
            if n: m["memory"] = s.limits(feats) + (False,)
            if n > 1: feats.add("multi-memory")
        elif sid == 6:
            m["globals"] = []
            for _ in range(s.uleb()):
                valtype(s.byte(), feats); m["globals"].append(s.byte())
                ops = []; skip_expr(s, feats, True, ops); sk["globals"].append((m["globals"][-1], ops))
        elif sid == 7:
            for _ in range(s.uleb()):
                ename, kind, idx = s.name(), s.byte(), s.uleb()
                m["exports"].append(dict(name=ename, kind=KINDS[kind], index=idx))
        elif sid == 9:
            sk["table"] = parse_elements(s, feats)
        elif sid == 10:
            m["code_bytes"] = size
            for i in range(s.uleb()):
                bsize = s.uleb(); b = Reader(buf, s.p, s.p + bsize)
                for _ in range(b.uleb()): b.uleb(); valtype(b.byte(), feats)
                ops = []; skip_expr(b, feats, ops=ops); sk["ops"].append(ops)
                if b.p != b.end:
                    raise ValueError("function body %d: its end is not at its last byte" % i)
                m["bodies"].append(bsize); s.p += bsize
        elif sid == 11:
            m["data_bytes"] = size; m["data_segments"] = s.uleb()
            for _ in range(m["data_segments"]):
                flags = s.uleb()
                if flags == 1: feats.add("bulk-memory")                   # passive segment
                if flags == 2: s.uleb()
                ops = []
                if flags != 1: skip_expr(s, feats, True, ops)
                n = s.uleb(); s.bytes(n); m["data_init_bytes"] += n
                if ops[:1] and ops[0][0] == 0x41:
                    sk["data_end"] = max(sk["data_end"], ops[0][1] + n)
                    m["data_start"] = min(m.get("data_start", ops[0][1]), ops[0][1])
        elif sid == 12:
            feats.add("bulk-memory")
        m["sections"].append(dict(id=sid, name=name, bytes=size))
        r.p = start + size
    # Exported mutable globals also need the mutable-globals feature.
    nglob_imp = sum(1 for i in m["imports"] if i["kind"] == "global")
    for e in m["exports"]:
        g = m.get("globals", []); k = e["index"] - nglob_imp
        if e["kind"] == "global" and 0 <= k < len(g) and g[k]: feats.add("mutable-globals")
    if m["tables"] > 1: feats.add("reference-types")
    if "bulk-memory" in feats: feats.discard("bulk-memory-opt")
    m["features"] = sorted(feats)
    m.pop("globals", None)
    m["stack"] = stack_bound(m, sk)
    return m


# The opcodes `stack_bound` reads.
LOCAL_GET, LOCAL_TEE, GLOBAL_GET, GLOBAL_SET = 0x20, 0x22, 0x23, 0x24
CALL, CALL_INDIRECT, I32_CONST, I32_ADD, I32_SUB, I32_AND = 0x10, 0x11, 0x41, 0x6A, 0x6B, 0x71


def stack_bound(m, sk):
    """The most shadow stack any export can use. LLVM keeps the stack pointer in the
    module's one mutable global; a function takes its frame with `global.get sp; i32.const
    N; i32.sub` (or `i32.const -N; i32.add`; maybe aligned down after with `i32.const -A;
    i32.and`) and gives it back with `local.get; i32.const N; i32.add` (or `i32.const -N;
    i32.sub`) or a saved `local.get` before it returns. With no recursion the deepest
    chain of frames is a bound whatever the input. A `call_indirect` may call any function
    of its type in the table (a closure or a trait object's method), but no closure runs
    again inside itself: a parser that takes a closure runs inside the closure of an
    enclosing value, never inside its own, so a chain holds each table function once (the
    bound allows that many indirect calls, whichever they are). Recursion among functions
    that take no frame adds nothing (the engine's own stack bounds it, and traps). Any
    other use of the stack pointer, or a call cycle through a frame, leaves no bound.
    Returns dict(bytes, room, path) or dict(error)."""
    imported = sum(1 for i in m["imports"] if i["kind"] == "global")
    muts = [i for i, (mut, _) in enumerate(sk["globals"]) if mut]
    if len(muts) != 1 or sk["globals"][muts[0]][1][:1] != [(I32_CONST, sk["globals"][muts[0]][1][0][1])]:
        return dict(error="no single mutable i32 global holds the stack pointer")
    sp, top = muts[0] + imported, sk["globals"][muts[0]][1][0][1]
    base = m["imported_functions"]
    name = lambda f: demangle(m["names"].get(base + f, "")) or "func[%d]" % (base + f)
    frames, calls = [], []
    for f, ops in enumerate(sk["ops"]):
        frame, out, taken = 0, set(), -1                   # taken: where the last frame's value ends
        for k, (op, imm) in enumerate(ops):
            seq = [o for o, _ in ops[k + 1:k + 6]]
            if op == GLOBAL_GET and imm == sp:
                n = ops[k + 1][1] if seq[:1] == [I32_CONST] else None
                n = n if seq[1:2] == [I32_SUB] else -n if seq[1:2] == [I32_ADD] and n is not None else None
                if n is None or n < 0:
                    return dict(error="%s reads the stack pointer in an unknown way" % name(f))
                taken = k + 3
                if seq[2:4] == [I32_CONST, I32_AND]:      # aligned down: up to A - 1 more
                    n, taken = n - ops[k + 3][1] - 1, k + 5
                frame += n
                taken += seq[taken - k - 1:taken - k] == [LOCAL_TEE]
            elif op == GLOBAL_SET and imm == sp:
                before = [o for o, _ in ops[max(0, k - 3):k]]
                up = ops[k - 2][1] if before[-3:-1] == [LOCAL_GET, I32_CONST] else None
                given = before[-1:] == [LOCAL_GET] or up is not None and (
                    before[-1] == I32_ADD and up >= 0 or before[-1] == I32_SUB and up <= 0)
                if not (k == taken or given):
                    return dict(error="%s writes the stack pointer in an unknown way" % name(f))
            elif op == CALL and imm >= base:
                out.add((imm - base, False))
            elif op == CALL_INDIRECT:
                out |= {(g - base, True) for g in sk["table"] if g >= base and sk["types"][g - base] == imm}
        frames.append(frame); calls.append(sorted(out))
    # The direct calls' cycles (Tarjan): one that takes a frame is recursion; a frameless
    # one acts as one function with all their calls.
    comp, members, low, order, on, stack = {}, {}, {}, {}, set(), []

    def strong(v):
        order[v] = low[v] = len(order); stack.append(v); on.add(v)
        for c, indirect in calls[v]:
            if indirect:
                continue
            if c not in order:
                strong(c); low[v] = min(low[v], low[c])
            elif c in on:
                low[v] = min(low[v], order[c])
        if low[v] == order[v]:
            own = members[v] = []
            while True:
                g = stack.pop(); on.discard(g); own.append(g); comp[g] = v
                if g == v:
                    break
            if (len(own) > 1 or (v, False) in calls[v]) and any(frames[g] for g in own):
                raise ValueError("recursion: " + " -> ".join(name(g) for g in reversed(own)))
    # A chain holds each table function once, so at most that many indirect calls.
    hops, memo = len(set(sk["table"])), {}

    def deepest(v, k):
        """(bytes, chain) of the deepest chain from function `v`'s component with at most
        `k` more indirect calls."""
        if (v, k) not in memo:
            best = (0, [])
            for g in members[v]:
                for c, indirect in calls[g]:
                    if indirect and k:
                        best = max(best, deepest(comp[c], k - 1))
                    elif not indirect and comp[c] != v:
                        best = max(best, deepest(comp[c], k))
            memo[v, k] = (frames[v] + best[0], [v] + best[1])
        return memo[v, k]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(frames) * (hops + 1) + 1000))
    try:
        for f in range(len(frames)):
            if f not in order:
                strong(f)
        chains = [deepest(comp[e["index"] - base], hops)
                  for e in m["exports"] if e["kind"] == "func" and e["index"] >= base]
    except ValueError as e:
        return dict(error=str(e))
    total, chain = max(chains, default=(0, []))
    path = [name(f) for f in chain]
    # The stack grows down from `top`: to the data when the data lies below it, else to 0.
    room = top - (sk["data_end"] if sk["data_end"] <= top else 0)
    return dict(bytes=total, room=room, path=path)


def table_type(s, feats, m):
    if s.byte() != 0x70: feats.add("reference-types")     # MVP tables hold funcref only
    s.limits(feats); m["tables"] += 1


def parse_names(s, m):
    while s.p < s.end:
        sub = s.byte(); n = s.uleb(); end = s.p + n
        if sub == 1:                                      # function names
            for _ in range(s.uleb()):
                idx = s.uleb(); m["names"][idx] = s.name()
        s.p = end


def parse_elements(s, feats):
    """The functions the active segments put in a table (what `call_indirect` may call)."""
    funcs = []
    for _ in range(s.uleb()):
        flags = s.uleb()
        if flags: feats.add("bulk-memory")
        if flags & 4: feats.add("reference-types")
        if flags & 2 and not flags & 1: s.uleb()          # explicit table index
        if not flags & 1: skip_expr(s, feats, True)       # active: offset expression
        if flags & 3: s.byte()                            # elemkind / reftype
        for _ in range(s.uleb()):
            if flags & 4:
                ops = []; skip_expr(s, feats, True, ops)
                funcs += [i for op, i in ops if op == 0xD2]   # ref.func
            else:
                funcs.append(s.uleb())
    return funcs


def demangle(sym):
    """Legacy Rust symbols: _ZN16discord_presence6plugin5flush17h..E -> discord_presence::plugin::flush."""
    if not (sym.startswith("_ZN") and sym.endswith("E")):
        return sym
    parts, i = [], 3
    try:
        while sym[i].isdigit():
            n = re.match(r"\d+", sym[i:]).group(); i += len(n)
            part = sym[i:i + int(n)]; i += int(n)
            parts.append(part[1:] if part.startswith("_$") else part)
    except IndexError:
        return sym
    if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        parts.pop()
    out = "::".join(parts)
    for k, v in (("$LT$", "<"), ("$GT$", ">"), ("$RF$", "&"), ("$BP$", "*"), ("$C$", ","),
                 ("$SP$", "@"), ("$LP$", "("), ("$RP$", ")"), ("..", "::")):
        out = out.replace(k, v)
    return re.sub(r"\$u([0-9a-f]+)\$", lambda g: chr(int(g.group(1), 16)), out)


def ndp_info(path):
    data = open(path, "rb").read()
    return dict(path=path, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


def fmt_table(m, ndp):
    lo, hi, imported = m["memory"] or (0, None, False)
    mods = {}
    for i in m["imports"]:
        kind = "" if i["kind"] == "func" else " (%s)" % i["kind"]
        mods.setdefault(i["module"], []).append(i["name"] + kind)
    rows = [(os.path.basename(m["path"]), "%d bytes" % m["bytes"]),
            ("memory", "%d initial pages (%d KiB), max %s%s" % (
                lo, lo * 64, "none" if hi is None else hi, ", imported" if imported else ""))]
    rows.append(("imports", "%d" % len(m["imports"])))
    rows += [("  " + mod, ", ".join(names)) for mod, names in mods.items()]
    rows.append(("exports", "%d: %s" % (len(m["exports"]), ", ".join(
        e["name"] + ("" if e["kind"] == "func" else " (%s)" % e["kind"]) for e in m["exports"]))))
    rows += [("functions", "%d defined (+%d imported)" % (m["functions"], m["imported_functions"])),
             ("code section", "%d bytes" % m["code_bytes"]),
             ("data section", "%d bytes, %d segments (%d bytes initialised)" % (
                 m["data_bytes"], m["data_segments"], m["data_init_bytes"])),
             ("features", ", ".join(m["features"]) or "none (MVP)"),
             ("stack", m["stack"].get("error") or "at most %d of %d bytes" % (m["stack"]["bytes"], m["stack"]["room"]))]
    if m["custom"]: rows.append(("custom sections", ", ".join(m["custom"])))
    if ndp: rows += [(os.path.basename(ndp["path"]), "%d bytes" % ndp["bytes"]),
                     ("  sha256", ndp["sha256"])]
    w = max(len(k) for k, _ in rows)
    return "\n".join("%-*s  %s" % (w, k, v) for k, v in rows)


def read_budget(path):
    budget = {}
    for ln, line in enumerate(open(path), 1):
        line = line.split("#", 1)[0].split()
        if not line: continue
        if len(line) != 2 or line[0] not in ("max_wasm_bytes", "max_initial_pages"):
            raise ValueError("%s:%d: expected `max_wasm_bytes N` or `max_initial_pages N`" % (path, ln))
        budget[line[0]] = int(line[1])
    missing = {"max_wasm_bytes", "max_initial_pages"} - budget.keys()
    if missing:
        raise ValueError("%s: no %s" % (path, " or ".join(sorted(missing))))
    return budget


def check(m, budget):
    errs = []
    if m["bytes"] > budget["max_wasm_bytes"]:
        errs.append("%s is %d bytes, budget %d"
                    % (os.path.basename(m["path"]), m["bytes"], budget["max_wasm_bytes"]))
    pages = (m["memory"] or (0,))[0]
    if pages > budget["max_initial_pages"]:
        errs.append("initial memory is %d pages, budget %d" % (pages, budget["max_initial_pages"]))
    for i in m["imports"]:
        if i["module"] not in ALLOWED_IMPORT_MODULES and i["name"] not in ALLOWED_WASI.get(i["module"], ()):
            errs.append("import %s/%s is from a module Navidrome does not provide"
                        % (i["module"], i["name"]))
    names = {e["name"] for e in m["exports"] if e["kind"] == "func"}
    errs += ["missing export %s" % e for e in REQUIRED_EXPORTS if e not in names]
    errs += ["forbidden export %s (a command/reactor entry point)" % e
             for e in sorted(FORBIDDEN_EXPORTS & names)]
    errs += ["feature %s is not in wazero's CoreFeaturesV2" % f for f in m["features"] if f not in CORE_V2]
    # wasm-opt's --low-memory-unused (tools/wasm-opt.conf) folds address constants on the
    # promise that nothing lives in the first KiB; the stack and the heap lie above the data.
    if m.get("data_start", LOW_MEMORY) < LOW_MEMORY:
        errs.append("data at %d, in the first %d bytes that wasm-opt assumes unused" % (m["data_start"], LOW_MEMORY))
    # The data lies below the stack (.cargo/config.toml): an overflow would overwrite it
    # instead of trapping, so the deepest chain of frames must fit.
    st = m["stack"]
    if "error" in st:
        errs.append("no stack bound: " + st["error"])
    elif st["bytes"] > st["room"]:
        errs.append("the stack may need %d bytes, it has %d: %s" % (st["bytes"], st["room"], " -> ".join(st["path"])))
    return errs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("wasm")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--json", action="store_true", help="machine-readable report")
    mode.add_argument("--top", type=int, metavar="N", help="N largest function bodies")
    mode.add_argument("--features", action="store_true", help="print wasm-opt feature flags")
    mode.add_argument("--check", metavar="BUDGET", help="enforce budget file and interface rules")
    ap.add_argument("--ndp", metavar="FILE", help="also report this package's size and sha256")
    a = ap.parse_args()
    try:
        m = parse(a.wasm)
        ndp = ndp_info(a.ndp) if a.ndp else None
        budget = read_budget(a.check) if a.check else None
    except (OSError, ValueError, IndexError) as e:
        sys.exit("wasminfo: %s" % e)
    if a.features:
        # Start from MVP so wasm-opt neither assumes nor introduces anything the input lacks.
        print(" ".join(["--mvp-features"] + ["--enable-" + f for f in m["features"]]))
    elif a.check:
        errs = check(m, budget)
        for e in errs: print("budget: FAIL: " + e, file=sys.stderr)
        if errs: sys.exit(1)
        print("budget: ok: %d of %d bytes, %d of %d initial pages, %d imports from extism:host/* and WASI,"
              " all %d nd_* exports, stack at most %d of %d bytes"
              % (m["bytes"], budget["max_wasm_bytes"], (m["memory"] or (0,))[0], budget["max_initial_pages"],
                 len(m["imports"]), len(REQUIRED_EXPORTS), m["stack"]["bytes"], m["stack"]["room"]))
    elif a.json:
        lo, hi, imported = m["memory"] or (0, None, False)
        m.update(ndp=ndp, function_bodies=len(m.pop("bodies")), names=len(m["names"]),
                 memory=dict(initial_pages=lo, max_pages=hi, imported=imported))
        print(json.dumps(m, indent=2))
    elif a.top:
        base = m["imported_functions"]
        top = sorted(enumerate(m["bodies"]), key=lambda x: -x[1])[:a.top]
        print("%8s  %6s  %s" % ("bytes", "func", "name"))
        for i, size in top:
            print("%8d  %6d  %s" % (size, base + i, demangle(m["names"].get(base + i, ""))))
        if not m["names"]:
            print("(no name section; for names: CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR=/tmp/x"
                  " cargo build --release --target wasm32-unknown-unknown)")
    else:
        print(fmt_table(m, ndp))


if __name__ == "__main__":
    main()
