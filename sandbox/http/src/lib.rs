//! HTTP rules shared by the hosts (the Apache module, `wasmpy serve`) and
//! the sandbox: what may leave a guest, how paths (URL and guest) are decoded
//! and matched, how mod_python handler lists are read.
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

/// Is `name` a hop-by-hop header (case-insensitive)?
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

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
        if is_hop_by_hop(name) {
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

/// Longest path a guest may name.
pub const MAX_GUEST_PATH: usize = 4096;

/// Is `guest` a path a guest may name: absolute, no `..` component, no
/// NUL, at most [`MAX_GUEST_PATH`] bytes?
pub fn clean_guest_path(guest: &str) -> bool {
    guest.starts_with('/')
        && guest.len() <= MAX_GUEST_PATH
        && !guest.contains('\0')
        && !guest.split('/').any(|part| part == "..")
}

/// The part of `path` below directory `root` ("" for `root` itself), on a
/// component boundary: `/app/x` is under `/app`, `/application` is not.
pub fn below<'a>(path: &'a str, root: &str) -> Option<&'a str> {
    let root = root.trim_end_matches('/');
    let rest = path.strip_prefix(root)?;
    if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix('/').map(|r| r.trim_start_matches('/'))
    }
}

/// Parse a mod_python handler directive's arguments,
/// `module[::object] ... [| .ext ...]`: the handler specs (dotted Python
/// names) and the extensions they are restricted to.
pub fn parse_handler_list(args: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let (specs, exts) = args.split_once('|').unwrap_or((args, ""));
    let specs: Vec<String> = specs.split_whitespace().map(str::to_string).collect();
    let exts: Vec<String> = exts.split_whitespace().map(str::to_string).collect();
    if specs.is_empty() {
        return Err("needs at least one handler: module[::object]".into());
    }
    let dotted = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|part| {
                !part.is_empty()
                    && !part.starts_with(|c: char| c.is_ascii_digit())
                    && part.chars().all(|c| c.is_alphanumeric() || c == '_')
            })
    };
    for spec in &specs {
        let (module, object) = spec.split_once("::").unwrap_or((spec, "handler"));
        if !dotted(module) || !dotted(object) {
            return Err(format!(
                "{spec:?} is not a handler: module[::object], e.g. mysite.handlers::handler"
            ));
        }
    }
    if let Some(bad) = exts
        .iter()
        .find(|e| e.len() < 2 || !e.starts_with('.') || e.contains(['/', '\0']))
    {
        return Err(format!("{bad:?} is not an extension such as .py"));
    }
    Ok((specs, exts))
}

/// Whether `name` may name a filter (`PythonOutputFilter handler NAME`,
/// `req.add_output_filter(NAME)`...): 1-64 characters of `[A-Za-z0-9_.-]`
/// (Apache compares filter names case-insensitively).
pub fn is_filter_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_paths() {
        assert!(clean_guest_path("/app/x.py"));
        for bad in ["app/x", "/app/../etc", "/..", "/a\0", ""] {
            assert!(!clean_guest_path(bad), "{bad:?}");
        }
        assert_eq!(below("/app/x/y", "/app"), Some("x/y"));
        assert_eq!(below("/app", "/app"), Some(""));
        assert_eq!(below("/app//x", "/app/"), Some("x"));
        assert_eq!(below("/application", "/app"), None);
        assert_eq!(below("/etc", "/app"), None);
    }

    #[test]
    fn handler_lists() {
        let (specs, exts) = parse_handler_list("a b.c::obj.meth | .py .psp").unwrap();
        assert_eq!(specs, ["a", "b.c::obj.meth"]);
        assert_eq!(exts, [".py", ".psp"]);
        for bad in [
            "", "| .py", "a::", "1a", "a b;rm", "a | py", "a::b-c", "a | ./",
        ] {
            assert!(parse_handler_list(bad).is_err(), "{bad:?}");
        }
    }

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
