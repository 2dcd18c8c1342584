//! The JSON reader on arbitrary bytes: every entry point must return without panicking,
//! and on input that serde_json accepts it must agree with serde_json value by value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nd::json::{self, Out, Reader};
use nd::text;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let r = || Reader::new(data);
    let _ = (text(&mut r()), r().lit(b"true"), r().null(), r().raw_str());
    for frac in [0, 3, 9] {
        let _ = r().number(frac);
    }
    let _ = r().object(|_, r| r.skip());
    let _ = r().array(|r| r.skip());
    let mut skipped = r();
    let walked = skipped.skip();
    let mut v = data.to_vec();
    if let Some(n) = json::unescape(&mut v) {
        assert!(n <= data.len());
    }
    if let Some(bytes) = json::unbase64(data) {
        let mut o = Out::new();
        o.b64(&bytes);
        assert_eq!(json::unbase64(&o.buf[1..o.buf.len() - 1]).as_deref(), Some(&bytes[..]));
    }
    // One reader through calls chosen by the first bytes, as parsers chain them: no call
    // may panic whatever position an earlier (failed) one left.
    let (ops, rest) = data.split_at(data.len().min(4));
    let mut seq = Reader::new(rest);
    for &op in ops {
        match op % 8 {
            0 => drop(text(&mut seq)),
            1 => drop(seq.raw_str()),
            2 => drop(seq.null()),
            3 => drop(seq.lit(b"true")),
            4 => drop(seq.number(op as u32 / 8 % 10)),
            5 => drop(seq.skip()),
            6 => drop(seq.object(|_, r| r.skip())),
            _ => drop(seq.array(|r| r.skip())),
        }
    }
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    assert!(walked.is_some() && skipped.peek() == 0, "skip stopped at {}", skipped.i);
    let mut rd = r();
    assert!(same(data, &mut rd, &value), "reader disagrees with serde_json on {value}");
    assert_eq!(rd.peek(), 0);
});

/// Reads one value with the plugin's reader and compares it with serde_json's.
fn same(data: &[u8], r: &mut Reader, v: &Value) -> bool {
    match v {
        Value::Null => r.null(),
        Value::Bool(b) => r.lit(if *b { b"true" } else { b"false" }),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) if i.unsigned_abs() < 1 << 62 => r.number(0) == Some(i),
            (None, Some(f)) if f.abs() < 1e12 => r.number(3).is_some_and(|m| (m as f64 - (f * 1000.0).trunc()).abs() <= 1.0),
            _ => r.skip().is_some(),
        },
        Value::String(s) => text(r).as_deref() == Some(s.as_str()),
        Value::Array(a) => {
            let mut it = a.iter();
            r.array(|r| same(data, r, it.next()?).then_some(())).is_some() && it.next().is_none()
        }
        Value::Object(m) => {
            // serde_json keeps the last of repeated keys: compare only the unique ones.
            let key = |k: &[u8]| {
                let mut k = k.to_vec();
                let n = json::unescape(&mut k)?;
                k.truncate(n);
                String::from_utf8(k).ok()
            };
            let mut keys = Vec::new();
            let mut pre = Reader::new(data);
            pre.i = r.i;
            pre.object(|k, r| {
                keys.push(key(k)?);
                r.skip()
            });
            let once = |k: &String| keys.iter().filter(|x| *x == k).count() == 1;
            let ok = r.object(|k, r| match key(k)? {
                k if once(&k) => same(data, r, m.get(&k)?).then_some(()),
                k => {
                    m.contains_key(&k).then_some(())?;
                    r.skip()
                }
            });
            keys.sort();
            keys.dedup();
            ok.is_some() && keys.len() == m.len()
        }
    }
}
