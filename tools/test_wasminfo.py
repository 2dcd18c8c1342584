#!/usr/bin/env python3
"""Tests of wasminfo.py's stack bound, on modules assembled here (stdlib only)."""
import os, sys, tempfile, unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wasminfo

SP_TOP, DATA = 4096, (1024, 100)      # the stack pointer's start; the data's place and size


def uleb(n):
    out = bytearray()
    while True:
        b = n & 0x7F; n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def sleb(n):
    out = bytearray()
    while True:
        b = n & 0x7F; n >>= 7
        done = (n == 0 and not b & 0x40) or (n == -1 and b & 0x40)
        out.append(b if done else b | 0x80)
        if done:
            return bytes(out)


def vec(items):
    return uleb(len(items)) + b"".join(items)


def section(sid, body):
    return bytes([sid]) + uleb(len(body)) + body


def frame(n, body=b"", tee=True):
    """A function body taking an `n`-byte frame around `body` (LLVM's prologue and epilogue)."""
    take = b"\x23\x00\x41" + sleb(n) + b"\x6B" + (b"\x22\x00" if tee else b"") + b"\x24\x00"
    give = b"\x20\x00\x41" + sleb(n) + b"\x6A\x24\x00"
    return take + body + give


def call(f):
    return b"\x10" + uleb(f)


def module(bodies, table=(), data=DATA):
    """Functions of type () -> () with one i32 local each; the first is exported as `run`;
    `table` lists the functions a table holds (for `call_indirect` of that type)."""
    types = section(1, vec([b"\x60\x00\x00"]))
    funcs = section(3, vec([b"\x00"] * len(bodies)))
    tab = section(4, vec([b"\x70\x00" + uleb(len(table))])) if table else b""
    glob = section(6, vec([b"\x7F\x01\x41" + sleb(SP_TOP) + b"\x0B"]))
    exp = section(7, vec([uleb(3) + b"run\x00\x00"]))
    elem = section(9, vec([b"\x00\x41\x00\x0B" + vec([uleb(f) for f in table])])) if table else b""
    code = section(10, vec([uleb(len(b) + 4) + b"\x01\x01\x7F" + b + b"\x0B" for b in bodies]))
    data = section(11, vec([b"\x00\x41" + sleb(data[0]) + b"\x0B" + uleb(data[1]) + b"\0" * data[1]]))
    return b"\0asm\1\0\0\0" + types + funcs + tab + glob + exp + elem + code + data


def parsed(wasm):
    with tempfile.NamedTemporaryFile(suffix=".wasm", delete=False) as f:
        f.write(wasm)
    try:
        return wasminfo.parse(f.name)
    finally:
        os.unlink(f.name)


def stack(bodies, table=()):
    return parsed(module(bodies, table))["stack"]


def check(wasm):
    return wasminfo.check(parsed(wasm), dict(max_wasm_bytes=1 << 20, max_initial_pages=2))


CALL_INDIRECT = b"\x41\x00\x11\x00\x00"   # table slot 0, type 0


class StackBound(unittest.TestCase):
    def test_the_deepest_chain_of_frames(self):
        # run(16) calls a(32) and b(48); a calls b: the deepest is run, a, b.
        st = stack([frame(16, call(1) + call(2)), frame(32, call(2)), frame(48)])
        self.assertEqual(st["bytes"], 96)
        self.assertEqual(st["path"], ["func[0]", "func[1]", "func[2]"])
        self.assertEqual(st["room"], SP_TOP - sum(DATA))

    def test_frames_taken_as_an_add_of_a_negative_and_aligned(self):
        take = b"\x23\x00\x41" + sleb(-64) + b"\x6A\x41" + sleb(-32) + b"\x71\x22\x00\x24\x00"
        give = b"\x20\x00\x41" + sleb(-64) + b"\x6B\x24\x00"
        self.assertEqual(stack([take + give])["bytes"], 64 + 31)

    def test_recursion_through_a_frame_has_no_bound(self):
        st = stack([frame(16, call(1)), frame(16, call(1))])
        self.assertIn("recursion", st.get("error", ""))

    def test_frameless_recursion_adds_nothing(self):
        st = stack([frame(16, call(1)), call(1) + call(2), frame(8)])
        self.assertEqual(st["bytes"], 24)
        # a and b call each other without frames, only a calls c(64); run(16) calls a,
        # then d(100), which calls b: the deepest is run, d, b, a, c.
        st = stack([frame(16, call(1) + call(4)), call(2) + call(3), call(1), frame(64), frame(100, call(2))])
        self.assertEqual(st["bytes"], 180)

    def test_a_closure_runs_once_per_chain(self):
        # run calls a parser (1) that calls the closure in the table (2), which calls the
        # parser again: the closure is not entered inside itself.
        st = stack([frame(16, call(1)), frame(32, CALL_INDIRECT), frame(64, call(1))], table=[2])
        self.assertEqual(st["bytes"], 16 + 32 + 64 + 32)

    def test_many_closures_are_bounded_without_trying_each_order(self):
        # run calls a parser that calls any of n closures, each of which calls the parser:
        # n closure calls at most, whatever their order (2^n orders).
        n = 40
        closures = [frame(64, call(1))] * n
        st = stack([frame(16, call(1)), frame(32, CALL_INDIRECT)] + closures, table=list(range(2, 2 + n)))
        self.assertEqual(st["bytes"], 16 + n * (32 + 64) + 32)

    def test_an_unknown_write_of_the_stack_pointer_has_no_bound(self):
        st = stack([b"\x41" + sleb(100) + b"\x24\x00"])
        self.assertIn("writes the stack pointer", st.get("error", ""))

    def test_an_unknown_read_of_the_stack_pointer_has_no_bound(self):
        st = stack([b"\x23\x00\x21\x00"])
        self.assertIn("reads the stack pointer", st.get("error", ""))

    def test_check_fails_when_the_chain_does_not_fit(self):
        errs = check(module([frame(SP_TOP)]))
        self.assertTrue(any("the stack may need %d bytes" % SP_TOP in e for e in errs), errs)
        self.assertFalse(any("stack" in e for e in check(module([frame(SP_TOP - sum(DATA))]))))

    def test_check_fails_on_data_in_the_first_kib(self):
        self.assertTrue(any("first 1024 bytes" in e for e in check(module([b""], data=(1000, 100)))))
        self.assertFalse(any("first 1024 bytes" in e for e in check(module([b""]))))


if __name__ == "__main__":
    unittest.main()
