//! Guest and configuration arguments of the live request: guest paths (every
//! `sendfile`, `req.filename = ...` goes through them) and mod_python handler
//! lists (`PythonHandler a b::c | .py`), filter names (they become C strings
//! and Apache filter names). Checks the invariants the sandbox
//! relies on, not just the absence of panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmpy_http::{below, clean_guest_path, is_filter_name, parse_handler_list};

fuzz_target!(|data: (&str, &str)| {
    let (path, root) = data;
    if is_filter_name(path) {
        assert!(!path.is_empty() && path.len() <= 64);
        assert!(!path.contains(['\0', ' ', '/', '\n', '"']));
    }
    if clean_guest_path(path) {
        assert!(path.starts_with('/'));
        assert!(!path.split('/').any(|p| p == ".."));
        assert!(!path.contains('\0'));
    }
    if let Some(rest) = below(path, root) {
        // What is below a root never climbs out of it or restarts at `/`.
        assert!(!rest.starts_with('/'));
        assert!(path.starts_with(root.trim_end_matches('/')));
        if clean_guest_path(path) {
            assert!(!rest.split('/').any(|p| p == ".."));
        }
    }
    if let Ok((specs, exts)) = parse_handler_list(path) {
        assert!(!specs.is_empty());
        for spec in specs {
            assert!(spec
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == ':'));
        }
        for ext in exts {
            assert!(ext.starts_with('.') && !ext.contains(['/', '\0']));
        }
    }
});
