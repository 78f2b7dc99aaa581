//! The sandbox's public request and response types, written by hand so that
//! hosts do not depend on the generated WIT bindings.

use std::path::PathBuf;

/// How a request ended; decides the status and which counter moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The application answered (whatever its status).
    Ok,
    /// No tenant of that name: 404.
    UnknownTenant,
    /// The request body is over the policy's `max_body`: 413.
    BodyTooLarge,
    /// No instance became free within the queue timeout: 503.
    QueueTimeout,
    /// The application raised: 500.
    Exception,
    /// The application ran out of memory: 500, instance recycled.
    Memory,
    /// The application could not be imported: 500.
    ImportFailed,
    /// The request ran past its deadline: 504, instance replaced.
    Timeout,
    /// The instance trapped: 500, instance replaced.
    Trap,
    /// The application's response broke HTTP rules (CR/LF in a header...): 500.
    InvalidResponse,
    /// The host could not create an instance: 500.
    HostError,
}

impl Outcome {
    /// The HTTP status a host sends for a failed outcome.
    pub fn status(self) -> u16 {
        match self {
            Outcome::Ok => 200,
            Outcome::UnknownTenant => 404,
            Outcome::BodyTooLarge => 413,
            Outcome::QueueTimeout => 503,
            Outcome::Timeout => 504,
            _ => 500,
        }
    }
}

/// A response ready to be written by the host.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code (100..=599).
    pub status: u16,
    /// Header names and values, validated: no CR, LF or NUL anywhere.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, or what is left of it when `streamed`.
    pub body: Vec<u8>,
    /// The status and headers (and part of the body) were already sent
    /// through [`crate::RequestHost`]; a failed outcome then means the host
    /// should abort the connection.
    pub streamed: bool,
    /// How the request ended.
    pub outcome: Outcome,
}

impl Response {
    /// A plain-text error response for a failed outcome.
    pub fn error(outcome: Outcome) -> Self {
        let status = outcome.status();
        let body = format!("{status} {}\n", reason_phrase(status)).into_bytes();
        let mut headers = vec![(
            "Content-Type".to_string(),
            b"text/plain; charset=utf-8".to_vec(),
        )];
        if outcome == Outcome::QueueTimeout {
            headers.push(("Retry-After".to_string(), b"1".to_vec()));
        }
        Response {
            status,
            headers,
            body,
            streamed: false,
            outcome,
        }
    }
}

/// The standard reason phrase of the statuses the sandbox produces itself.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        413 => "Content Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// One WSGI request, as a host hands it to [`crate::Sandbox::dispatch`].
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// HTTP method.
    pub method: String,
    /// Mount point of the application (WSGI SCRIPT_NAME), no trailing slash.
    pub script_name: String,
    /// Path below script_name, percent-decoded, as raw bytes.
    pub path_info: Vec<u8>,
    /// The query string (without `?`).
    pub query_string: String,
    /// The request target as the client sent it.
    pub request_uri: String,
    /// Request headers in arrival order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The start of the body (all of it when `body_complete`); the guest
    /// reads the rest through [`crate::RequestHost::read`].
    pub body: Vec<u8>,
    /// Whether `body` is the whole body.
    pub body_complete: bool,
    /// Client address.
    pub remote_addr: String,
    /// Client port.
    pub remote_port: u16,
    /// Server name.
    pub server_name: String,
    /// Server port.
    pub server_port: u16,
    /// "HTTP/1.1"...
    pub server_protocol: String,
    /// "http" or "https".
    pub url_scheme: String,
}

/// One handler of a mod_python phase directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    /// `module[::object]`.
    pub spec: String,
    /// The host directory of the `<Directory>` (or `.htaccess`) it was
    /// declared in; put on the guest's `sys.path` when inside the tenant's grants.
    pub directory: Option<PathBuf>,
    /// `| .ext` restrictions.
    pub extensions: Vec<String>,
    /// Declared by `PythonHandlerModule`: a missing object is skipped.
    pub silent: bool,
}

/// One mod_python phase of a request, as the merged configuration says.
#[derive(Debug, Clone, Default)]
pub struct PhaseCall {
    /// The directive name: "PythonHandler", "PythonAuthenHandler"...
    pub phase: String,
    /// The handlers to run, in order.
    pub handlers: Vec<Handler>,
    /// `PythonOption`s.
    pub options: Vec<(String, String)>,
    /// Other directives in effect (`req.get_config()`): PythonDebug...
    pub config: Vec<(String, String)>,
    /// `PythonImport` modules.
    pub imports: Vec<String>,
    /// Interpreter name.
    pub interpreter: String,
}

/// One call of a mod_python filter over one piece of the data passing
/// through it (the data itself is passed beside it).
#[derive(Debug, Clone)]
pub struct FilterCall {
    /// The filter's handler (`module[::object]`, where declared).
    pub handler: Handler,
    /// The filter's name.
    pub name: String,
    /// An input filter (the request body) rather than an output filter.
    pub input: bool,
    /// The end of the stream follows the piece.
    pub eos: bool,
    /// `PythonOption`s.
    pub options: Vec<(String, String)>,
    /// Other directives in effect (`req.get_config()`).
    pub config: Vec<(String, String)>,
    /// Interpreter name.
    pub interpreter: String,
}

/// What a filter did with one piece.
#[derive(Debug, Clone)]
pub struct FilterOutcome {
    /// How the call ended: anything but `Ok` means the filter is broken
    /// (its instance failed) and the stream must be aborted.
    pub outcome: Outcome,
    /// The bytes to pass on.
    pub output: Vec<u8>,
    /// The end of the stream follows `output`.
    pub closed: bool,
    /// Pass everything on unchanged from now on.
    pub disabled: bool,
    /// Send what is written now.
    pub flush: bool,
}

/// What a phase decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseOutcome {
    /// mod_python's code: 0 OK, -1 DECLINED, -2 DONE, or an HTTP status.
    pub status: i32,
    /// How the phase ended (anything but `Ok` is also counted).
    pub outcome: Outcome,
}

/// mod_python's `apache.OK`.
pub const OK: i32 = 0;
/// mod_python's `apache.DECLINED`.
pub const DECLINED: i32 = -1;
/// mod_python's `apache.DONE`.
pub const DONE: i32 = -2;

/// Numbers of one tenant, for status pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantStats {
    /// Tenant name.
    pub name: String,
    /// Generation: increases each time the tenant is (re)loaded.
    pub generation: u64,
    /// Instances serving a request now.
    pub busy: u32,
    /// Warm instances waiting for a request.
    pub idle: u32,
    /// Requests dispatched to this generation.
    pub requests: u64,
    /// Application exceptions (500).
    pub exceptions: u64,
    /// Out-of-memory failures (500).
    pub memory_errors: u64,
    /// Requests over their deadline (504).
    pub timeouts: u64,
    /// Instance traps other than timeouts (500).
    pub traps: u64,
    /// Failed imports of the application (500).
    pub import_errors: u64,
    /// Requests refused after waiting for a free instance (503).
    pub queue_timeouts: u64,
    /// Requests refused for their body size (413).
    pub too_large: u64,
    /// Invalid responses from the application (500).
    pub invalid_responses: u64,
    /// Instances replaced (limits, errors, traps).
    pub recycles: u64,
    /// Instances created.
    pub instances_created: u64,
    /// Linear memory held by the tenant's instances, in bytes.
    pub memory_bytes: u64,
}
