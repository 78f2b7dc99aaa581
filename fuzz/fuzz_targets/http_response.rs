//! `wasmpy_http::check_response` (re-exported as `wasmpy_sandbox::http`)
//! against an independent oracle, in both directions: it accepts exactly the
//! responses with a final status from 200 to 599 (no 1xx), header names that
//! are non-empty RFC 9110 tokens and not hop-by-hop (any case), and header
//! values without CR, LF or NUL.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wasmpy_http::{check_response, valid_header_name};

#[derive(Arbitrary, Debug)]
struct Response {
    status: u16,
    headers: Vec<(Name, Vec<u8>)>,
}

/// A header name: arbitrary, or one of the interesting ones with its case
/// scrambled by a bit mask (random strings would almost never hit them).
#[derive(Arbitrary, Debug)]
enum Name {
    Raw(String),
    Known(u8, u32),
}

const INTERESTING: [&str; 16] = [
    "Connection",
    "Keep-Alive",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "TE",
    "Trailer",
    "Trailers",
    "Transfer-Encoding",
    "Upgrade",
    "Content-Length",
    "Content-Type",
    "Set-Cookie",
    "Location",
    "Transfer-Encoding ",
    "Connection:",
    "X-Upgrade",
];

impl Name {
    fn build(&self) -> String {
        match self {
            Name::Raw(name) => name.clone(),
            Name::Known(index, mask) => INTERESTING[usize::from(*index) % INTERESTING.len()]
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if mask >> (i % 32) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect(),
        }
    }
}

/// RFC 9110 §5.6.2: `token = 1*tchar`.
fn is_tchar(c: char) -> bool {
    matches!(c,
        '!' | '#' | '$' | '%' | '&' | '\'' | '*' | '+' | '-' | '.' | '^' | '_' | '`' | '|' | '~'
        | '0'..='9' | 'a'..='z' | 'A'..='Z')
}

fn oracle_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(is_tchar)
}

/// RFC 9110 §7.6.1 connection options, plus RFC 2616's "Trailers" (PEP 3333).
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "trailers"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn oracle_value(value: &[u8]) -> bool {
    !value.contains(&b'\r') && !value.contains(&b'\n') && !value.contains(&0)
}

fuzz_target!(|response: Response| {
    let status = response.status;
    let headers: Vec<(String, Vec<u8>)> = response
        .headers
        .iter()
        .map(|(name, value)| (name.build(), value.clone()))
        .collect();
    for (name, _) in &headers {
        assert_eq!(valid_header_name(name), oracle_name(name), "name {name:?}");
    }
    let expected = (200..=599).contains(&status)
        && headers
            .iter()
            .all(|(name, value)| oracle_name(name) && !hop_by_hop(name) && oracle_value(value));
    match check_response(status, &headers) {
        Ok(()) => {
            assert!(expected, "accepted: {status} {headers:?}");
            assert!((200..=599).contains(&status));
        }
        Err(message) => {
            assert!(!expected, "refused ({message}): {status} {headers:?}");
            assert!(!message.is_empty());
        }
    }
});
