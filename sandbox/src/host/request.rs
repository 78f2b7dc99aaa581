//! The live request: what a host (Apache, the dev server) must provide while
//! a guest serves a request ([`RequestHost`]), and the glue that checks every
//! guest argument before a host sees it.
//!
//! The guest names its request by an id; only the request the instance is
//! serving right now answers to it, any other id is `stale`. Nothing the
//! guest passes is trusted: sizes are bounded, header text has no CR, LF or
//! NUL, paths are mapped through the tenant's [`Grants`].

use std::path::Path;
use std::sync::Arc;

use crate::bindings::wasmpy::gateway::{request as wit, types as wit_types};
use crate::host::grants::Grants;
use crate::host::HostState;
use crate::pool::Pool;

/// What kind of failure a host call reports to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is over (or never was).
    Stale,
    /// An argument was refused.
    Invalid,
    /// Outside the tenant's grants.
    Denied,
    /// Over a size bound.
    TooLarge,
    /// The client went away or an I/O error happened.
    Io,
    /// The host does not provide this.
    Unsupported,
}

/// A refused or failed host call; the guest raises it as a Python exception.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct HostError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// For the person reading the traceback.
    pub message: String,
}

impl HostError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        HostError {
            kind,
            message: message.into(),
        }
    }

    /// The operation is not provided by this host.
    pub fn unsupported(what: &str) -> Self {
        HostError::new(
            ErrorKind::Unsupported,
            format!("{what} is not available in this server"),
        )
    }

    fn invalid(message: impl Into<String>) -> Self {
        HostError::new(ErrorKind::Invalid, message)
    }
}

/// The request tables (Apache `apr_table_t`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Request headers.
    HeadersIn,
    /// Response headers (sent with 2xx/3xx).
    HeadersOut,
    /// Response headers sent with every status.
    ErrHeadersOut,
    /// CGI environment.
    SubprocessEnv,
    /// Notes between modules.
    Notes,
}

impl Table {
    fn is_header(self) -> bool {
        matches!(
            self,
            Table::HeadersIn | Table::HeadersOut | Table::ErrHeadersOut
        )
    }
}

/// The entries of a table: (key, value) bytes, in order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A field value of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Absent (Python `None`).
    None,
    /// Text.
    Text(String),
    /// Integer.
    Int(i64),
    /// Floating point.
    Float(f64),
    /// Boolean.
    Flag(bool),
}

/// What a host provides for the request a guest is serving. Everything but
/// the WSGI part (`read`, `start_response`, `write`, `sendfile`, `log`) has a
/// default that answers `unsupported`.
///
/// The sandbox calls these only while the request is running, on the thread
/// that called into the sandbox, with arguments already checked: header text
/// without CR/LF/NUL, host paths inside the tenant's grants.
pub trait RequestHost {
    /// Up to `max` bytes of the body; empty at its end.
    fn read(&mut self, max: usize) -> Result<Vec<u8>, HostError>;
    /// Send the status and headers (checked by [`crate::http::check_response`]).
    fn start_response(
        &mut self,
        status: u16,
        headers: &[(String, Vec<u8>)],
    ) -> Result<(), HostError>;
    /// Send body bytes (after the headers), flushing them if asked.
    fn write(&mut self, data: &[u8], flush: bool) -> Result<(), HostError>;
    /// Send part of a file by the host; returns the bytes sent.
    fn sendfile(&mut self, file: &Path, offset: u64, length: Option<u64>)
        -> Result<u64, HostError>;
    /// Log one line (already prefixed with the tenant) at APLOG `level`.
    fn log(&mut self, level: u8, line: &str);

    /// Every entry of `table`.
    fn table_entries(&mut self, table: Table) -> Result<Entries, HostError> {
        let _ = table;
        Err(HostError::unsupported("request tables"))
    }
    /// Every value of `key` in `table`.
    fn table_get(&mut self, table: Table, key: &[u8]) -> Result<Vec<Vec<u8>>, HostError> {
        let _ = (table, key);
        Err(HostError::unsupported("request tables"))
    }
    /// Set, add, unset (`value` None with `add` false) a key of `table`.
    fn table_put(
        &mut self,
        table: Table,
        key: &[u8],
        value: Option<&[u8]>,
        add: bool,
    ) -> Result<(), HostError> {
        let _ = (table, key, value, add);
        Err(HostError::unsupported("request tables"))
    }
    /// Remove every entry of `table`.
    fn table_clear(&mut self, table: Table) -> Result<(), HostError> {
        let _ = table;
        Err(HostError::unsupported("request tables"))
    }
    /// The request's fields (docs/live-request.md); paths are host paths.
    fn fields(&mut self) -> Result<Vec<(String, Value)>, HostError> {
        Err(HostError::unsupported("the mod_python request object"))
    }
    /// Set a writable field (already checked; paths are host paths).
    fn set_field(&mut self, name: &str, value: Value) -> Result<(), HostError> {
        let _ = (name, value);
        Err(HostError::unsupported("the mod_python request object"))
    }
    /// An Apache operation by name (already checked against the known ops).
    fn call(&mut self, op: &str, args: &[String]) -> Result<Vec<String>, HostError> {
        let _ = args;
        Err(HostError::unsupported(op))
    }
}

/// Operations a guest may ask for with `call` (docs/live-request.md).
pub const OPERATIONS: &[&str] = &[
    "internal_redirect",
    "meets_conditions",
    "set_etag",
    "set_last_modified",
    "update_mtime",
    "set_content_length",
    "discard_request_body",
    "get_basic_auth_pw",
    "construct_url",
    "get_remote_host",
    "add_common_vars",
    "add_cgi_vars",
    "allow_methods",
    "get_addhandler_exts",
    "requires",
    "add_handler",
    "exists_config_define",
    "mpm_query",
    "note_basic_auth_failure",
    "flush",
    "register_cleanup",
    "add_input_filter",
    "add_output_filter",
    "register_input_filter",
    "register_output_filter",
];

/// Fields a guest may set, with the kind of value each takes.
const WRITABLE: &[(&str, Kind)] = &[
    ("status", Kind::Int),
    ("status_line", Kind::Text),
    ("content_type", Kind::Text),
    ("content_encoding", Kind::Text),
    ("handler", Kind::Text),
    ("user", Kind::Text),
    ("ap_auth_type", Kind::Text),
    ("uri", Kind::Text),
    ("args", Kind::Text),
    ("path_info", Kind::Text),
    ("filename", Kind::Path),
    ("canonical_filename", Kind::Path),
    ("no_cache", Kind::Flag),
    ("mtime", Kind::Float),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
    Path,
    Flag,
    Float,
}

/// Writable fields that may be unset (`None`).
const NULLABLE: &[&str] = &[
    "args",
    "content_type",
    "content_encoding",
    "status_line",
    "handler",
    "user",
    "ap_auth_type",
];

/// Fields whose values are host paths, shown to the guest as guest paths.
const PATH_FIELDS: &[&str] = &["filename", "canonical_filename", "document_root"];

/// Longest text of a field, table key or value, or call argument.
pub const MAX_TEXT: usize = 64 * 1024;
/// Entries a request may add to its tables.
pub const MAX_TABLE_ENTRIES: usize = 1000;
/// Bytes of text a request may add to its tables.
pub const MAX_TABLE_BYTES: usize = 1 << 20;
/// Largest single read.
pub const MAX_READ: usize = 1 << 20;
/// Most arguments of one `call`.
const MAX_ARGS: usize = 64;

/// The request an instance is serving: the host, and what the sandbox
/// counts and checks on its behalf.
pub(crate) struct ActiveRequest {
    pub id: u64,
    pub host: Box<dyn RequestHost + Send>,
    pub grants: Arc<Grants>,
    pub tenant: Arc<str>,
    /// The policy's `max_body`.
    pub max_body: u64,
    /// Body bytes read so far (including what the host read up front).
    pub body_read: u64,
    /// The body crossed `max_body` (the host answers 413 if it still can).
    pub too_large: bool,
    /// The status and headers were sent.
    pub started: bool,
    /// The guest registered a cleanup: end the request in the guest.
    pub needs_end: bool,
    table_entries: usize,
    table_bytes: usize,
    /// Keys set (not added) so far: setting one again adds no entry.
    keys_set: std::collections::HashSet<(u8, String)>,
}

impl ActiveRequest {
    /// Request `id` of `pool`'s tenant served through `host`; `body_read`
    /// bytes of its body were read before the guest was called.
    pub fn new(id: u64, host: Box<dyn RequestHost + Send>, pool: &Pool, body_read: u64) -> Self {
        ActiveRequest {
            id,
            host,
            grants: Arc::clone(&pool.grants),
            tenant: Arc::clone(&pool.name),
            max_body: pool.tenant.policy.limits.max_body_bytes,
            body_read,
            too_large: false,
            started: false,
            needs_end: false,
            table_entries: 0,
            table_bytes: 0,
            keys_set: std::collections::HashSet::new(),
        }
    }

    /// Count what a table write costs Apache's request pool: every byte,
    /// and an entry unless it replaces a key this request already set.
    fn count_table_text(
        &mut self,
        table: Table,
        key: &str,
        bytes: usize,
        add: bool,
    ) -> Result<(), HostError> {
        if add
            || self
                .keys_set
                .insert((table as u8, key.to_ascii_lowercase()))
        {
            self.table_entries += 1;
        }
        self.table_bytes += bytes;
        if self.table_entries > MAX_TABLE_ENTRIES || self.table_bytes > MAX_TABLE_BYTES {
            return Err(HostError::new(
                ErrorKind::TooLarge,
                format!(
                    "a request may add at most {MAX_TABLE_ENTRIES} table entries and {MAX_TABLE_BYTES} bytes"
                ),
            ));
        }
        Ok(())
    }
}

/// Text from the guest as bytes: Latin-1 where every character fits, else UTF-8.
fn to_bytes(text: &str) -> Vec<u8> {
    latin1_bytes(text).unwrap_or_else(|_| text.as_bytes().to_vec())
}

/// Bytes the guest sent as Latin-1 text (one character per byte).
pub(crate) fn latin1_bytes(text: &str) -> Result<Vec<u8>, HostError> {
    if text.is_ascii() {
        return Ok(text.as_bytes().to_vec());
    }
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| HostError::invalid("bytes must be sent as Latin-1 text (U+0000 to U+00FF)"))
}

/// Bytes from the host as text, Latin-1 (lossless).
pub(crate) fn to_text(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

fn check_text(what: &str, text: &str) -> Result<(), HostError> {
    if text.len() > MAX_TEXT {
        return Err(HostError::new(
            ErrorKind::TooLarge,
            format!("{what} is longer than {MAX_TEXT} bytes"),
        ));
    }
    if text.contains(['\r', '\n', '\0']) {
        return Err(HostError::invalid(format!("{what} contains CR, LF or NUL")));
    }
    Ok(())
}

fn check_key(table: Table, key: &str) -> Result<(), HostError> {
    check_text("a table key", key)?;
    if key.is_empty() {
        return Err(HostError::invalid("a table key is empty"));
    }
    if table.is_header() && !crate::http::valid_header_name(key) {
        return Err(HostError::invalid(format!(
            "{:?} is not a valid header name",
            key.chars().take(100).collect::<String>()
        )));
    }
    let outgoing = matches!(table, Table::HeadersOut | Table::ErrHeadersOut);
    if outgoing && crate::http::is_hop_by_hop(key) {
        return Err(HostError::invalid(format!(
            "hop-by-hop header {key} is the server's to send"
        )));
    }
    Ok(())
}

impl From<wit_types::TableKind> for Table {
    fn from(kind: wit_types::TableKind) -> Self {
        use wit_types::TableKind as K;
        match kind {
            K::HeadersIn => Table::HeadersIn,
            K::HeadersOut => Table::HeadersOut,
            K::ErrHeadersOut => Table::ErrHeadersOut,
            K::SubprocessEnv => Table::SubprocessEnv,
            K::Notes => Table::Notes,
        }
    }
}

impl From<HostError> for wit_types::Error {
    fn from(e: HostError) -> Self {
        use wit_types::ErrorKind as K;
        wit_types::Error {
            kind: match e.kind {
                ErrorKind::Stale => K::Stale,
                ErrorKind::Invalid => K::Invalid,
                ErrorKind::Denied => K::Denied,
                ErrorKind::TooLarge => K::TooLarge,
                ErrorKind::Io => K::Io,
                ErrorKind::Unsupported => K::Unsupported,
            },
            message: e.message,
        }
    }
}

fn to_wit_value(value: Value) -> wit_types::FieldValue {
    use wit_types::FieldValue as F;
    match value {
        Value::None => F::None,
        Value::Text(t) => F::Text(t),
        Value::Int(i) => F::Int(i),
        Value::Float(f) => F::Float(f),
        Value::Flag(b) => F::Flag(b),
    }
}

type WitResult<T> = Result<T, wit_types::Error>;

impl HostState {
    /// The running request named `id`, or `stale`.
    fn active(&mut self, id: u64) -> Result<&mut ActiveRequest, HostError> {
        match self.request.as_mut() {
            Some(active) if active.id == id => Ok(active),
            _ => Err(HostError::new(
                ErrorKind::Stale,
                "this request is over: a request object cannot be used after its request",
            )),
        }
    }

    fn read_body(&mut self, id: u64, max: u32) -> Result<Vec<u8>, HostError> {
        let active = self.active(id)?;
        if active.too_large {
            return Err(too_large(active.max_body));
        }
        let chunk = active.host.read((max as usize).clamp(1, MAX_READ))?;
        active.body_read += chunk.len() as u64;
        if active.body_read > active.max_body {
            active.too_large = true;
            return Err(too_large(active.max_body));
        }
        Ok(chunk)
    }

    fn start(
        &mut self,
        id: u64,
        status: u16,
        headers: &[(String, Vec<u8>)],
    ) -> Result<(), HostError> {
        let active = self.active(id)?;
        if active.started {
            return Err(HostError::invalid("the response headers were already sent"));
        }
        crate::http::check_response(status, headers).map_err(HostError::invalid)?;
        active.host.start_response(status, headers)?;
        active.started = true;
        Ok(())
    }

    fn put(
        &mut self,
        id: u64,
        table: Table,
        key: &str,
        value: Option<&str>,
        add: bool,
    ) -> Result<(), HostError> {
        let active = self.active(id)?;
        check_key(table, key)?;
        if let Some(value) = value {
            check_text("a table value", value)?;
            active.count_table_text(table, key, key.len() + value.len(), add)?;
        }
        active
            .host
            .table_put(table, &to_bytes(key), value.map(to_bytes).as_deref(), add)
    }

    fn checked_field(&mut self, id: u64, name: &str, value: Value) -> Result<(), HostError> {
        let active = self.active(id)?;
        let Some(&(_, kind)) = WRITABLE.iter().find(|(n, _)| *n == name) else {
            return Err(HostError::invalid(format!(
                "req.{} cannot be set",
                name.chars().take(100).collect::<String>()
            )));
        };
        let value = match (kind, value) {
            // Hosts keep these as C strings that may be absent; the others
            // (uri, path_info, filename...) must always exist.
            (_, Value::None) if NULLABLE.contains(&name) => Value::None,
            (_, Value::None) => {
                return Err(HostError::invalid(format!("req.{name} cannot be None")))
            }
            (Kind::Int, Value::Int(code)) => {
                if !(100..=599).contains(&code) {
                    return Err(HostError::invalid(format!("invalid status {code}")));
                }
                Value::Int(code)
            }
            (Kind::Text, Value::Text(text)) => {
                check_text(name, &text)?;
                Value::Text(text)
            }
            (Kind::Path, Value::Text(path)) => {
                let host = active
                    .grants
                    .to_host(&path)
                    .map_err(|e| HostError::new(ErrorKind::Denied, format!("req.{name}: {e}")))?;
                // An existing file must not lead out through a symlink.
                if host.exists() {
                    active.grants.to_host_existing(&path).map_err(|e| {
                        HostError::new(ErrorKind::Denied, format!("req.{name}: {e}"))
                    })?;
                }
                Value::Text(
                    host.to_str()
                        .ok_or_else(|| HostError::invalid("a path is not UTF-8"))?
                        .to_string(),
                )
            }
            (Kind::Flag, Value::Flag(b)) => Value::Flag(b),
            (Kind::Float, Value::Float(f)) if f.is_finite() => Value::Float(f),
            (Kind::Float, Value::Int(i)) => Value::Float(i as f64),
            _ => return Err(HostError::invalid(format!("req.{name}: wrong type"))),
        };
        active.host.set_field(name, value)
    }

    fn checked_call(
        &mut self,
        id: u64,
        op: &str,
        args: &[String],
    ) -> Result<Vec<String>, HostError> {
        let active = self.active(id)?;
        if !OPERATIONS.contains(&op) {
            return Err(HostError::unsupported(&format!(
                "operation {:?}",
                op.chars().take(100).collect::<String>()
            )));
        }
        if args.len() > MAX_ARGS {
            return Err(HostError::new(ErrorKind::TooLarge, "too many arguments"));
        }
        for arg in args {
            check_text("an argument", arg)?;
        }
        if op == "register_cleanup" {
            active.needs_end = true;
            return Ok(Vec::new());
        }
        if op == "internal_redirect" && !args.first().is_some_and(|uri| uri.starts_with('/')) {
            return Err(HostError::invalid(
                "internal_redirect needs a path starting with '/'",
            ));
        }
        if op.starts_with("add_") && op.ends_with("_filter") {
            check_filter_name(args.first().map_or("", String::as_str))?;
        }
        if op.starts_with("register_") {
            // (name, module[::object], directory): the directory is a guest
            // path; the host gets it inside the tenant's grants, or "".
            let [name, spec, dir] = args else {
                return Err(HostError::invalid(
                    "register a filter with a name, a handler and a directory",
                ));
            };
            check_filter_name(name)?;
            if spec.is_empty() || spec.len() > 1024 {
                return Err(HostError::invalid("a filter handler is 1 to 1024 bytes"));
            }
            let dir = if dir.is_empty() {
                String::new()
            } else {
                let host = active
                    .grants
                    .to_host_existing(dir)
                    .map_err(|e| HostError::new(ErrorKind::Denied, format!("{op}: {e}")))?;
                host.to_str()
                    .ok_or_else(|| HostError::invalid("a path is not UTF-8"))?
                    .to_string()
            };
            // The tenant that registers it: the host runs the filter only
            // for requests of that tenant.
            let tenant = active.tenant.to_string();
            return active
                .host
                .call(op, &[name.clone(), spec.clone(), dir, tenant]);
        }
        active.host.call(op, args)
    }
}

fn check_filter_name(name: &str) -> Result<(), HostError> {
    if crate::http::is_filter_name(name) {
        Ok(())
    } else {
        Err(HostError::invalid(
            "a filter name is 1 to 64 characters of A-Z, a-z, 0-9, '_', '-' and '.'",
        ))
    }
}

fn too_large(max: u64) -> HostError {
    HostError::new(
        ErrorKind::TooLarge,
        format!("the request body is larger than max_body ({max} bytes)"),
    )
}

impl wit::Host for HostState {
    fn read(&mut self, id: u64, max: u32) -> WitResult<Vec<u8>> {
        Ok(self.read_body(id, max)?)
    }

    fn start_response(
        &mut self,
        id: u64,
        status: u16,
        headers: Vec<(String, String)>,
    ) -> WitResult<()> {
        let headers = headers
            .into_iter()
            .map(|(name, value)| Ok((name, latin1_bytes(&value)?)))
            .collect::<Result<Vec<_>, HostError>>()?;
        Ok(self.start(id, status, &headers)?)
    }

    fn write(&mut self, id: u64, data: String, flush: bool) -> WitResult<()> {
        let bytes = latin1_bytes(&data)?;
        drop(data);
        let active = self.active(id)?;
        active.started = true;
        Ok(active.host.write(&bytes, flush)?)
    }

    fn sendfile(
        &mut self,
        id: u64,
        path: String,
        offset: u64,
        length: Option<u64>,
    ) -> WitResult<u64> {
        let active = self.active(id)?;
        let file = active
            .grants
            .to_host_existing(&path)
            .map_err(|e| HostError::new(ErrorKind::Denied, format!("sendfile: {e}")))?;
        if !file.is_file() {
            return Err(HostError::invalid(format!("sendfile: {path:?} is not a file")).into());
        }
        active.started = true;
        Ok(active.host.sendfile(&file, offset, length)?)
    }

    fn table_entries(
        &mut self,
        id: u64,
        table: wit_types::TableKind,
    ) -> WitResult<Vec<(String, String)>> {
        let active = self.active(id)?;
        let entries = active.host.table_entries(table.into())?;
        Ok(entries
            .iter()
            .map(|(k, v)| (to_text(k), to_text(v)))
            .collect())
    }

    fn table_get(
        &mut self,
        id: u64,
        table: wit_types::TableKind,
        key: String,
    ) -> WitResult<Vec<String>> {
        let active = self.active(id)?;
        check_text("a table key", &key)?;
        let values = active.host.table_get(table.into(), &to_bytes(&key))?;
        Ok(values.iter().map(|v| to_text(v)).collect())
    }

    fn table_set(
        &mut self,
        id: u64,
        table: wit_types::TableKind,
        key: String,
        value: String,
    ) -> WitResult<()> {
        Ok(self.put(id, table.into(), &key, Some(&value), false)?)
    }

    fn table_add(
        &mut self,
        id: u64,
        table: wit_types::TableKind,
        key: String,
        value: String,
    ) -> WitResult<()> {
        Ok(self.put(id, table.into(), &key, Some(&value), true)?)
    }

    fn table_unset(&mut self, id: u64, table: wit_types::TableKind, key: String) -> WitResult<()> {
        Ok(self.put(id, table.into(), &key, None, false)?)
    }

    fn table_clear(&mut self, id: u64, table: wit_types::TableKind) -> WitResult<()> {
        let active = self.active(id)?;
        Ok(active.host.table_clear(table.into())?)
    }

    fn fields(&mut self, id: u64) -> WitResult<Vec<(String, wit_types::FieldValue)>> {
        let active = self.active(id)?;
        let fields = active.host.fields()?;
        let grants = Arc::clone(&active.grants);
        Ok(fields
            .into_iter()
            .map(|(name, value)| {
                let value = match value {
                    Value::Text(path) if PATH_FIELDS.contains(&name.as_str()) => grants
                        .to_guest(Path::new(&path))
                        .map_or(Value::None, Value::Text),
                    other => other,
                };
                (name, to_wit_value(value))
            })
            .collect())
    }

    fn set_field(&mut self, id: u64, name: String, value: wit_types::FieldValue) -> WitResult<()> {
        use wit_types::FieldValue as F;
        let value = match value {
            F::None => Value::None,
            F::Text(t) => Value::Text(t),
            F::Int(i) => Value::Int(i),
            F::Float(f) => Value::Float(f),
            F::Flag(b) => Value::Flag(b),
        };
        Ok(self.checked_field(id, &name, value)?)
    }

    fn log(&mut self, id: u64, level: u8, message: String) -> WitResult<()> {
        let active = self.active(id)?;
        let level = level.min(7);
        let tenant = Arc::clone(&active.tenant);
        for line in message.chars().take(MAX_TEXT).collect::<String>().lines() {
            let line = line.replace('\0', "\\0");
            active.host.log(level, &format!("[tenant {tenant}] {line}"));
        }
        Ok(())
    }

    fn call(&mut self, id: u64, op: String, args: Vec<String>) -> WitResult<Vec<String>> {
        Ok(self.checked_call(id, &op, &args)?)
    }
}

impl wit_types::Host for HostState {}

/// A host with no client behind it (benchmarks, warm-up requests): the
/// body is empty, streaming and files are `unsupported`, logs go to `tracing`.
pub struct Detached;

impl RequestHost for Detached {
    fn read(&mut self, _max: usize) -> Result<Vec<u8>, HostError> {
        Ok(Vec::new())
    }

    fn start_response(&mut self, _: u16, _: &[(String, Vec<u8>)]) -> Result<(), HostError> {
        Err(HostError::unsupported("streaming"))
    }

    fn write(&mut self, _: &[u8], _: bool) -> Result<(), HostError> {
        Err(HostError::unsupported("streaming"))
    }

    fn sendfile(&mut self, _: &Path, _: u64, _: Option<u64>) -> Result<u64, HostError> {
        Err(HostError::unsupported("sendfile"))
    }

    fn log(&mut self, _level: u8, line: &str) {
        tracing::info!(target: "wasmpy::tenant", "{line}");
    }
}
