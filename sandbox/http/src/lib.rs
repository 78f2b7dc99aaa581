//! HTTP rules shared by the hosts (the Apache module, `wasmpy serve`) and
//! the sandbox: what may leave a guest, how paths are decoded and matched.
//! Pure functions without dependencies, so that the fuzz targets (`fuzz/`)
//! build them in seconds; re-exported as `wasmpy_sandbox::http`.

/// Is `name` a valid HTTP header name (an RFC 9110 token)?
pub fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Hop-by-hop headers (RFC 9110 7.6.1; PEP 3333 names RFC 2616's
/// "Trailers"): the host frames the connection, never the application.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// Check a guest's status and headers before they reach a host: a final
/// status from 200 to 599 (a 1xx would make the body read as the next
/// response), token header names, no hop-by-hop headers, no CR, LF or NUL
/// in values.
pub fn check_response(status: u16, headers: &[(String, Vec<u8>)]) -> Result<(), String> {
    if !(200..=599).contains(&status) {
        return Err(format!("invalid status code {status}"));
    }
    for (name, value) in headers {
        if !valid_header_name(name) {
            return Err(format!("invalid header name {name:?}"));
        }
        if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            return Err(format!(
                "hop-by-hop header {name} is not the application's to send"
            ));
        }
        if value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!("header {name} has a CR, LF or NUL in its value"));
        }
    }
    Ok(())
}

/// Decode %XX escapes of a URL path; malformed escapes are kept as they are.
pub fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Does the URL prefix (no trailing slash; "" for "/") cover `path` at a
/// segment boundary? `/app` covers `/app` and `/app/x`, not `/apple`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_escapes_and_keeps_bad_ones() {
        assert_eq!(percent_decode("/a%20b/%C3%A9"), b"/a b/\xc3\xa9");
        assert_eq!(percent_decode("/100%"), b"/100%");
        assert_eq!(percent_decode("/%zz"), b"/%zz");
        assert_eq!(percent_decode("/%4"), b"/%4");
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(prefix_matches("/app", "/app"));
        assert!(prefix_matches("/app", "/app/x"));
        assert!(!prefix_matches("/app", "/apple"));
        assert!(prefix_matches("", "/anything"));
    }

    #[test]
    fn responses_with_injected_headers_are_refused() {
        let ok = vec![("Set-Cookie".to_string(), b"a=1".to_vec())];
        assert!(check_response(200, &ok).is_ok());
        assert!(check_response(99, &ok).is_err());
        assert!(check_response(100, &ok).is_err());
        assert!(check_response(101, &ok).is_err());
        let framing = vec![("Transfer-Encoding".to_string(), b"chunked".to_vec())];
        assert!(check_response(200, &framing).is_err());
        assert!(check_response(600, &ok).is_err());
        let crlf = vec![("X".to_string(), b"a\r\nSet-Cookie: b".to_vec())];
        assert!(check_response(200, &crlf).is_err());
        let bad_name = vec![("X Y".to_string(), b"v".to_vec())];
        assert!(check_response(200, &bad_name).is_err());
    }
}
