//! `wasmpy_http::percent_decode` and `prefix_matches` on arbitrary
//! text (bytes decoded as lossy UTF-8).
//!
//! percent_decode: equal to an independent reference decoder; never longer
//! than its input; the identity on input without '%'; and decoding every
//! byte written as %XX (upper- and lower-case hex) gives back the bytes.
//!
//! prefix_matches: true exactly when the path starts with the prefix at a
//! segment boundary (path == prefix, or the next byte is '/'), checked for
//! every prefix of the input and for the pair (first line, rest).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmpy_http::{percent_decode, prefix_matches};

/// Reference decoder: %XX with two hex digits (either case) is one byte,
/// anything else, including a malformed escape, is kept as it is.
fn reference_decode(input: &[u8]) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::new();
    let mut rest = input;
    while let Some((&first, tail)) = rest.split_first() {
        if let [b'%', h, l, ..] = rest {
            if let (Some(h), Some(l)) = (hex(*h), hex(*l)) {
                out.push(h << 4 | l);
                rest = &rest[3..];
                continue;
            }
        }
        out.push(first);
        rest = tail;
    }
    out
}

fn encode(bytes: &[u8], upper: bool) -> String {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = String::with_capacity(3 * bytes.len());
    for &b in bytes {
        out.push('%');
        out.push(digits[usize::from(b >> 4)] as char);
        out.push(digits[usize::from(b & 15)] as char);
    }
    out
}

fn oracle_prefix(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix)
        && (path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/')
}

fn check_prefix(prefix: &str, path: &str) {
    let matched = prefix_matches(prefix, path);
    assert_eq!(
        matched,
        oracle_prefix(prefix, path),
        "prefix {prefix:?} path {path:?}"
    );
    if matched {
        assert!(path.starts_with(prefix));
        assert!(path == prefix || path.as_bytes()[prefix.len()] == b'/');
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    let decoded = percent_decode(text);
    assert_eq!(decoded, reference_decode(text.as_bytes()), "input {text:?}");
    assert!(decoded.len() <= text.len(), "input {text:?} grew");
    if !text.contains('%') {
        assert_eq!(
            decoded,
            text.as_bytes(),
            "input {text:?} changed without '%'"
        );
    }
    for bytes in [data, text.as_bytes()] {
        assert_eq!(percent_decode(&encode(bytes, true)), bytes);
        assert_eq!(percent_decode(&encode(bytes, false)), bytes);
    }

    // Every prefix of the input (quadratic: for long inputs only those
    // ending before a '/').
    let short = text.len() <= 512;
    for (k, c) in text.char_indices().chain([(text.len(), '/')]) {
        if short || c == '/' {
            check_prefix(&text[..k], text);
        }
    }
    let (prefix, path) = text.split_once('\n').unwrap_or(("", text));
    check_prefix(prefix, path);
    check_prefix(path, prefix);
});
