//! Presence updates stay within Discord's 5 per 20 s whatever the reports: a simulated
//! Navidrome (reports in order, timers fired when due) and a well-behaved Discord that
//! sometimes drops the session. Two bytes per step: `op` (low 3 bits: what; high 5:
//! seconds to wait first) and `arg`.
#![no_main]
use nd::World;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut w = World::new();
    w.discord = true;
    for s in data.chunks_exact(2) {
        let (op, arg) = (s[0], s[1]);
        w.advance((op >> 3) as i64 * 1000);
        let (track, pos) = (arg & 7, (arg >> 3) as i64 * 10);
        match op & 7 {
            0 | 1 => w.report("playing", track, pos),
            2 => w.report("starting", track, 0),
            3 => w.report("paused", track, pos),
            4 => w.report("stopped", track, pos),
            5 => w.report("expired", track, pos),
            6 => w.script(match arg % 4 {
                0 => &b"{\"op\":7,\"d\":null}"[..],
                1 => b"{\"op\":9,\"d\":false}",
                2 => b"{\"op\":9,\"d\":true}",
                _ => b"Ewebsocket: close 1006 (abnormal closure): unexpected EOF",
            }),
            _ => w.advance(arg as i64 * 1000),
        }
        w.check_rate();
    }
});
