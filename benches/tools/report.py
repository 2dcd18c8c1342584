#!/usr/bin/env python3
"""Turns the bench outputs into benches/results.md and benches/chart.svg, and prints
the tables. Reports against the goals; asserts nothing."""
import argparse, datetime, json, os, platform, re, subprocess, sys

sys.dont_write_bytecode = True  # no __pycache__ in the repo
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sizes  # noqa: E402

KIB = 1024
PAGE = 65536
SIDE = ["floor", "ours", "baseline", "baselinetuned"]
STEPS = ["step1", "step2", "step3", "step4", "step5", "step6"]


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu or platform.processor() or platform.machine(), "nproc": os.cpu_count(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "rustc": sh("rustc", "--version"), "node": sh("node", "--version")}


def us(ns):
    return "%.0f µs" % (ns / 1e3) if ns >= 100e3 else "%.1f µs" % (ns / 1e3)


def ms_or_us(ns):
    return "%.1f ms" % (ns / 1e6) if ns >= 1e6 else us(ns)


def ratio(a, b):
    return "—" if not a or not b else ("%.2f×" % (a / b) if a / b < 10 else "%.0f×" % (a / b))


def num(n):
    return "{:,}".format(int(round(n))).replace(",", " ")


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i == 0 else "--:" for i in range(len(head))) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def med(m, key, part="total", q="median"):
    s = m.get("scenarios", {}).get(key)
    return s[part].get(q) if s and s.get(part) else None


def chart(mods, path):
    """Two bar panels: module bytes, and instantiate + playback_report time."""
    rows = [k for k in SIDE + STEPS if k in mods]
    label = {k: mods[k]["label"] for k in rows}
    bytes_ = {k: mods[k]["bytes"] for k in rows}
    times = {k: med(mods[k], "playback_report") or 0 for k in rows}
    spread = {k: (med(mods[k], "playback_report", "total", "p25"), med(mods[k], "playback_report", "total", "p75")) for k in rows}
    bh, gap, top, lw, pw = 18, 6, 56, 330, 300
    h = top + len(rows) * (bh + gap) + 40
    w = lw + 2 * pw + 170
    colors = {"ours": "#d9480f", "floor": "#868e96", "baseline": "#1c7ed6", "baselinetuned": "#74c0fc"}
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">' % (w, h, w, h),
         '<rect width="100%" height="100%" fill="#fff"/>',
         '<text x="10" y="20" font-size="14" font-weight="bold">discord-presence plugin in Navidrome\'s runtime (extism go-sdk 1.7.1, wazero 1.12)</text>']
    panels = [("module bytes (line: 24 KiB goal)", bytes_, lambda v: "%.1f KiB" % (v / KIB), None, 24 * KIB),
              ("instantiate + playback_report (median, quartiles)", times, lambda v: "%.0f µs" % (v / 1e3), spread, None)]
    bottom = top + len(rows) * (bh + gap) - gap
    for p, (title, vals, fmt, whiskers, goal) in enumerate(panels):
        x0 = lw + p * (pw + 70)
        vmax = max(vals.values()) or 1
        if whiskers:
            vmax = max([vmax] + [hi or 0 for _, hi in whiskers.values()])
        o.append('<text x="%d" y="%d" font-weight="bold">%s</text>' % (x0, top - 12, title))
        for i, k in enumerate(rows):
            y = top + i * (bh + gap)
            bw = max(1, pw * vals[k] / vmax)
            o.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>' % (x0, y, bw, bh, colors.get(k, "#fab005")))
            end = x0 + bw
            if whiskers and whiskers[k][0] is not None and whiskers[k][1] is not None:
                lo, hi = (x0 + pw * v / vmax for v in whiskers[k])
                o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#212529" stroke-width="1"/>' % (lo, y + bh // 2, hi, y + bh // 2))
                end = max(end, hi)
            o.append('<text x="%.1f" y="%d">%s</text>' % (end + 4, y + 13, fmt(vals[k])))
        if goal and goal <= vmax:
            gx = x0 + pw * goal / vmax
            o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#2b8a3e" stroke-dasharray="4 3"/>' % (gx, top - 4, gx, bottom + 4))
    for i, k in enumerate(rows):
        y = top + i * (bh + gap)
        text = label[k].replace("&", "&amp;").replace("<", "&lt;")
        o.append('<text x="%d" y="%d" text-anchor="end"%s>%s</text>' % (lw - 10, y + 13, ' font-weight="bold"' if k == "ours" else "", text))
    o.append('<text x="10" y="%d" fill="#555">waterfall steps 1–6 are builds of the plugin; ours = the release module; see benches/results.md</text>' % (h - 12))
    o.append("</svg>")
    open(path, "w").write("\n".join(o) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--runtime", required=True)
    ap.add_argument("--names", required=True)
    ap.add_argument("--dist", default="")
    ap.add_argument("--md", required=True)
    ap.add_argument("--svg", required=True)
    ap.add_argument("--seconds", type=int, default=0)
    ap.add_argument("--load-start", default="")
    a = ap.parse_args()

    rt = json.load(open(a.runtime))
    mods = {m["name"]: m for m in rt["modules"]}
    ours, floor, base = mods.get("ours", {}), mods.get("floor", {}), mods.get("baseline", {})
    mc = machine()
    md = []
    w = md.append

    w("# Benchmarks: size and per-call cost in Navidrome's runtime\n")
    try:
        load_end = " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        load_end = "?"
    w("Generated by `benches/run.sh` on %s: %s, %s cores; %s, %s, Go %s. Whole run %s s (scale %s); "
      "load average %s at the start, %s at the end (other work on the machine widens the spread, not the interleaved ratios).\n"
      % (mc["date"], mc["cpu"], mc["nproc"], mc["rustc"], "binaryen 132 (npm)", rt["go"].lstrip("go"), a.seconds,
         rt.get("scale", 1), a.load_start or "?", load_end))
    w("Every call goes through `harness/` exactly as Navidrome v0.63.2 makes it: extism go-sdk v1.7.1 on wazero v1.12.0 "
      "(compiler), a fresh instance per call, JSON input, Navidrome's own host-function bindings over deterministic fakes, "
      "log level info. Times are medians over %d calls per module (%d for the 2 MiB READY), wall clock, one goroutine, "
      "the modules' calls interleaved round by round; *inst + call* is what Navidrome pays per event (create instance, "
      "call, close), *call* is the export alone. Ratios are the headline: absolute times move with the machine.\n"
      % (ours.get("scenarios", {}).get("playback_report", {}).get("total", {}).get("n", 0),
         ours.get("scenarios", {}).get("ready2m", {}).get("total", {}).get("n", 0)))

    # Headline
    w("## Headline: ours against the floor and the baseline\n")
    rows = []

    def line(what, key, part, fmt):
        o, f, b = key(ours), key(floor), key(base)
        rows.append([what, fmt(o) if o else "—", fmt(f) if f else "—", ratio(o, f), fmt(b) if b else "—", ratio(b, o)])

    line("module bytes", lambda m: m.get("bytes"), None, lambda v: num(v) + " B")
    line("initial memory pages", lambda m: m.get("initial_pages"), None, lambda v: "%d" % v)
    line("compile (wazero, module alone)", lambda m: m.get("compile", {}).get("median"), None, ms_or_us)
    line("harness load (module compiled twice: import check + extism)", lambda m: m.get("load", {}).get("median"), None, ms_or_us)
    line("instantiate + close", lambda m: m.get("instantiate", {}).get("median"), None, us)
    line("inst + empty export (scrobble)", lambda m: med(m, "empty"), None, us)
    line("inst + now_playing", lambda m: med(m, "now_playing"), None, us)
    line("inst + playback_report → presence", lambda m: med(m, "playback_report"), None, us)
    w(table(["", "ours", "floor", "ours ÷ floor", "baseline", "baseline ÷ ours"], rows))
    w("")

    # Goals
    w("## Goals (reported, not asserted)\n")
    ready = ours.get("scenarios", {}).get("ready2m", {})
    rin = ready.get("input_bytes", 0)
    g = []
    b = ours.get("bytes", 0)
    g.append(["plugin.wasm ≤ 24 KiB", "%s B (%.1f KiB)" % (num(b), b / KIB), "yes" if b <= 24 * KIB else "no"])
    p = ours.get("initial_pages", 0)
    g.append(["≤ 2 initial pages", "%d" % p, "yes" if p and p <= 2 else "no"])
    r = (med(ours, "now_playing") or 0) / (med(floor, "now_playing") or 1)
    g.append(["inst + now_playing ≤ 1.2× floor", "%.2f×" % r, "yes" if r <= 1.2 else "no"])
    t = med(ours, "ready2m") or 0
    g.append(["2 MiB READY ≤ 2 ms (inst + call)", ms_or_us(t), "yes" if t and t <= 2e6 else "no"])
    pages = ready.get("pages", 0)
    ready_frame = ready.get("message_bytes") or 0
    limit = (ready_frame or rin) + 64 * KIB
    g.append(["READY memory ≤ frame + 64 KiB", "%d pages = %s B for a %s B frame (%s B of JSON input)"
              % (pages, num(pages * PAGE), num(ready_frame) if ready_frame else "?", num(rin)),
              "yes" if pages and pages * PAGE <= limit else "no"])
    g.append(["READY memory ≤ 4 pages", "%d" % pages, "yes" if pages and pages <= 4 else "no"])
    prc = ours.get("scenarios", {}).get("playback_report") or {}
    if prc.get("counted"):
        n = prc["kernel_calls"] + prc["user_calls"]
        g.append(["playback_report → presence ≤ 250 host calls", num(n), "yes" if n <= 250 else "no"])
    c, cb = ours.get("compile", {}).get("median"), base.get("compile", {}).get("median")
    g.append(["compile ≤ 1/5 of the baseline's", "%s vs %s (%s)" % (ms_or_us(c or 0), ms_or_us(cb or 0), ratio(c, cb)),
              "yes" if c and cb and c * 5 <= cb else "no"])
    w(table(["goal", "measured", "met"], g))
    w("")

    # Per call
    w("## Ours, per call, against the floor\n")
    w("Same input bytes for both. The plugin is brought to each state through the real protocol (fakes, virtual clock) and "
      "the host state (cache, schedules) is restored before every call, so every call does the same work: *ready* = "
      "one configured user, gateway session READY, presence for track A shown, 60 s of heartbeats; the playback report "
      "is track B at t+60 s, so it sends a presence frame (no public Navidrome URL, as in Navidrome's default setup: "
      "no cover, the Navidrome logo, which Discord's external-assets fake registered for track A). READY is the gateway fake's 2 MiB READY (guilds, relationships, escapes, decoys), "
      "delivered while the session is identifying, a moment after the track was reported: it leaves the track's first "
      "update to the lookups' timer. Host calls come from a counting twin of the module (same code, "
      "every import call counted): *kernel* are the extism kernel's (`alloc`, `load_u64`, `store_u64`, `config_get`…) and WASI's wall clock (`clock_time_get`), "
      "*Navidrome* the host services (cache, websocket, scheduler, artwork).\n")
    rows = []
    for s in ["empty", "is_authorized", "now_playing", "playback_report", "ack", "dispatch", "heartbeat", "ready2m"]:
        o = ours.get("scenarios", {}).get(s)
        f = floor.get("scenarios", {}).get(s)
        if not o:
            continue
        ops = ",".join("op %d" % x for x in o.get("ops") or []) or "—"
        rows.append([o["label"], num(o["input_bytes"]), ms_or_us(o["total"]["median"]),
                     "%s–%s (min %s)" % (ms_or_us(o["total"]["p10"]), ms_or_us(o["total"]["p90"]), ms_or_us(o["total"]["min"])),
                     ratio(o["total"]["median"], f and f["total"]["median"]), ms_or_us(o["call"]["median"]),
                     num(o["alloc_bytes"]) + " B", str(o["pages"]),
                     "%s + %s" % (num(o["kernel_calls"]), num(o["user_calls"])) if o.get("counted") else "—",
                     "%s / %s" % (num(o["bytes_in"]), num(o["bytes_out"])) if o.get("counted") else "—", ops])
    w(table(["call", "input B", "inst + call", "p10–p90", "÷ floor", "call alone", "Go alloc/call", "pages after",
             "host calls kernel + Navidrome", "kernel bytes in / out", "sent"], rows))
    w("")
    bad = ["%s %s: twin %d, harness %d" % (m["name"], k, v["user_calls"], v["navidrome_calls_recorded"])
           for m in rt["modules"] for k, v in m.get("scenarios", {}).items()
           if v.get("counted") and v["user_calls"] != v.get("navidrome_calls_recorded", v["user_calls"])]
    w("The twins' Navidrome host-call counts %s the harness's own record of host calls.\n" %
      ("agree with" if not bad else "DISAGREE with (" + "; ".join(bad) + ")"))
    fl = floor.get("scenarios", {})
    w("Floor, same inputs: " + "; ".join("%s %s (call alone %s)" % (k, ms_or_us(v["total"]["median"]), ms_or_us(v["call"]["median"]))
                                         for k, v in sorted(fl.items())) + ".\n")

    # Derived observations
    obs = []
    pr = ours.get("scenarios", {}).get("playback_report")
    if ready.get("counted") and fl.get("ready2m"):
        extra = ready["call"]["median"] - fl["ready2m"]["call"]["median"]
        calls = ready["kernel_calls"] + ready["user_calls"]
        obs.append("2 MiB READY: %s host calls, %s of them `input_load_u64` (the input is copied 8 bytes per call); "
                   "the call's time above the floor's, spread over them, is %.2f µs per host call (parsing included: an upper bound)." %
                   (num(calls), num(ready["host"].get("extism:host/env.input_load_u64", 0)), extra / 1e3 / max(calls, 1)))
    if ready and fl.get("ready2m"):
        f = fl["ready2m"]
        obs.append("The floor alone takes %s (call alone %s) for the 2 MiB READY: Navidrome's JSON encoding of the %s B "
                   "request and extism copying it into kernel memory, before any plugin code runs." %
                   (ms_or_us(f["total"]["median"]), ms_or_us(f["call"]["median"]), num(ready["input_bytes"])))
        if ready.get("pages"):
            grows = ready["pages"] * PAGE >= ready["input_bytes"]
            obs.append("READY memory: %d page%s (%s B) after the call, for %s B of JSON input holding a %s B frame: %s" %
                       (ready["pages"], "" if ready["pages"] == 1 else "s", num(ready["pages"] * PAGE), num(ready["input_bytes"]),
                        num(ready.get("message_bytes", 0)),
                        "the plugin's memory follows the input it buffers." if grows else
                        "the plugin reads the input through a fixed window and keeps only what it needs."))
    if pr and pr.get("counted") and fl.get("playback_report"):
        extra = pr["call"]["median"] - fl["playback_report"]["call"]["median"]
        calls = pr["kernel_calls"] + pr["user_calls"]
        cfg = pr["host"].get("extism:host/env.config_get", 0)
        obs.append("playback_report: %s host calls (%s kernel, %s Navidrome; %s `config_get`), %s + %s bytes copied through the kernel; "
                   "%.2f µs per host call if all the time above the floor's call were theirs." % (num(calls), num(pr["kernel_calls"]), num(pr["user_calls"]), cfg,
                                                               num(pr["bytes_in"]), num(pr["bytes_out"]), extra / 1e3 / max(calls, 1)))
    if floor.get("instantiate") and fl.get("empty"):
        obs.append("Runtime overhead: instantiate + close alone is %s for the floor, %s for ours; every call also allocates "
                   "about %s B on the Go side before the plugin runs (floor, empty export)." %
                   (us(floor["instantiate"]["median"]), us(ours.get("instantiate", {}).get("median", 0)), num(fl["empty"]["alloc_bytes"])))
    if obs:
        w("Derived from the numbers above:\n")
        w("\n".join("- " + x for x in obs) + "\n")

    # Side by side
    w("## Side by side: floor, ours, baseline\n")
    w("The baseline (`benches/baseline/`) is the playback-report → presence path written as an Extism plugin usually is: "
      "std, extism-pdk 1.4.1 (`#[plugin_fn]`, `#[host_fn]` for `websocket_sendtext`), serde/serde_json, for "
      "wasm32-unknown-unknown (the pdk needs no WASI). It reads `clientid` from the config and sends the same frame on the "
      "connection the plugin would use (the logo's registered path written in), but keeps no session, cache or rate limit: it does less work per call than the "
      "plugin. *default release* = cargo's defaults (opt-level 3, no LTO, Rust's 1 MiB stack); the tuned row adds the "
      "plugin's profile, 32 KiB stack and wasm-opt.\n")
    same = ""
    fo, fb = (ours.get("scenarios", {}).get("playback_report") or {}).get("frame"), (base.get("scenarios", {}).get("playback_report") or {}).get("frame")
    if fo and fb:
        same = "byte-identical" if fo == fb else ("the same JSON" if json.loads(fo) == json.loads(fb) else "DIFFERENT")
    rows = []
    for k in SIDE:
        m = mods.get(k)
        if not m:
            continue
        pr = m.get("scenarios", {}).get("playback_report") or {}
        rows.append([m["label"], num(m["bytes"]), "%s → %s" % (m["initial_pages"], pr.get("pages", "?")), ms_or_us(m["compile"]["median"]), us(m["instantiate"]["median"]),
                     us(med(m, "empty") or 0), us(med(m, "playback_report") or 0), ratio(med(m, "playback_report"), med(ours, "playback_report")),
                     num(pr.get("alloc_bytes", 0)) + " B",
                     "%s + %s" % (num(pr["kernel_calls"]), num(pr["user_calls"])) if pr.get("counted") else ("0" if k == "floor" else "—")])
    w(table(["module", "bytes", "pages: initial → after", "compile", "instantiate", "inst + empty", "inst + playback_report", "÷ ours",
             "Go alloc/call", "host calls"], rows))
    w("")
    if same:
        w("Presence frame sent by the baseline vs ours: %s.\n" % same)

    # Waterfall
    w("## Waterfall: our tuning steps\n")
    w("Each step is a build of the plugin (`CARGO_PROFILE_RELEASE_*`, separate target dirs in the cache). On "
      "wasm32-unknown-unknown `panic = \"unwind\"` already aborts, so step 4's bytes come from LTO, one codegen unit and "
      "stripping. Step 6 swaps the bump allocator for `wee_alloc` 0.4.5 in the release build (`benches/wee_alloc/`: the plugin's modules by path, but its allocator).\n")
    rows, prev = [], None
    for k in STEPS:
        m = mods.get(k)
        if not m:
            continue
        delta = "" if prev is None or k == "step6" else "%+.1f%%" % (100.0 * (m["bytes"] - prev) / prev)
        if k != "step6":
            prev = m["bytes"]
        pr = m.get("scenarios", {}).get("playback_report") or {}
        rows.append([m["label"], num(m["bytes"]), delta, "%s → %s" % (m["initial_pages"], pr.get("pages", "?")), ms_or_us(m["compile"]["median"]),
                     us(m["instantiate"]["median"]), us(med(m, "playback_report") or 0), ratio(med(m, "playback_report"), med(ours, "playback_report"))])
    w(table(["step", "bytes", "Δ", "pages: initial → after playback_report", "compile", "instantiate", "inst + playback_report", "÷ ours"], rows))
    w("")
    s5 = os.path.join(a.out, "step5.wasm")
    if "step5" in mods and os.path.exists(s5) and open(s5, "rb").read() == open(os.path.join(a.out, "ours.wasm"), "rb").read():
        w("Step 5 is the very module measured as ours, loaded separately: its ÷ ours (%s for inst + playback_report, %s at p10) "
          "is the noise of this run.\n" % (ratio(med(mods["step5"], "playback_report"), med(ours, "playback_report")),
                                             ratio(med(mods["step5"], "playback_report", q="p10"), med(ours, "playback_report", q="p10"))))
    if a.dist and os.path.exists(a.dist):
        d = os.path.getsize(a.dist)
        same_dist = open(a.dist, "rb").read() == open(os.path.join(a.out, "ours.wasm"), "rb").read()
        w("`dist/plugin.wasm` at the time of the run: %s B (%s the module measured as ours).\n" % (num(d), "identical to" if same_dist else "differs from"))

    # Sizes
    r = sizes.analyse(a.names)
    w("## Where the bytes go\n")
    w("From a twin of the release built with the name section kept (`CARGO_PROFILE_RELEASE_STRIP=debuginfo`, wasm-opt `-g`): "
      "%s B of code against the release's %s B (the symbols change LLVM's choices slightly). Sizes are function bodies; "
      "generic code of core/alloc instantiated for the plugin is charged to core/alloc, and `FnOnce::call_once` rows are "
      "the plugin's own closures called through a function pointer (legacy symbols do not name the closure).\n"
      % (num(sum(f["bytes"] for f in r["functions"])), num(section_bytes(os.path.join(a.out, "ours.wasm"), "code"))))
    w(table(["bytes", "crate", "function"], [[num(f["bytes"]), f["crate"], "`%s`" % f["name"][:100]] for f in r["functions"][:20]]))
    w("")
    w(table(["crate / section", "functions", "bytes"], [[c["crate"], c["functions"], num(c["bytes"])] for c in r["crates"]] +
            [[o["what"], "", num(o["bytes"])] for o in r["other"]]))
    w("")
    base_sizes = sizes.analyse(os.path.join(a.out, "baseline.wasm"))
    w("Baseline (default release), per crate: " + ", ".join("%s %s B" % (c["crate"], num(c["bytes"])) for c in base_sizes["crates"][:8]) +
      "; data %s B, name section %s B.\n" % (num(sum(o["bytes"] for o in base_sizes["other"] if o["what"] == "data section")), num(base_sizes["name_section"])))

    # Parsers
    po, pm = (os.path.join(a.out, n) for n in ("parsers-own.opt.wasm", "parsers-miniserde.opt.wasm"))
    if os.path.exists(po) and os.path.exists(pm):
        w("## Input parser alone (`benches/parsers`)\n")
        w(table(["parser", "bytes (cargo)", "bytes (wasm-opt)"],
                [["own pull reader (src/json.rs)", num(os.path.getsize(os.path.join(a.out, "parsers-own.wasm"))), num(os.path.getsize(po))],
                 ["miniserde 0.1", num(os.path.getsize(os.path.join(a.out, "parsers-miniserde.wasm"))), num(os.path.getsize(pm))]]))
        w("")

    w("![bytes and per-call time](chart.svg)\n")
    errs = [(m["name"], e) for m in rt["modules"] for e in m.get("errors") or []]
    if errs:
        w("## Errors\n")
        w("\n".join("- %s: %s" % e for e in errs) + "\n")

    text = "\n".join(md)
    open(a.md, "w").write(text)
    chart(mods, a.svg)
    print(text)


def section_bytes(path, name):
    b = open(path, "rb").read()
    return sum(total for _, n, _, _, total in sizes.sections(b) if n == name)


if __name__ == "__main__":
    main()
