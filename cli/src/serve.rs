//! `wasmpy serve`: a small threaded HTTP/1.1 server in front of the sandbox,
//! with the same sandbox, policies and limits as the Apache module.

use std::io::Read;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::Context;
use tiny_http::{Header, Server};
use wasmpy_sandbox::http::percent_decode;
use wasmpy_sandbox::{
    ErrorKind, HostError, Outcome, Request, RequestHost, Response, Sandbox, SandboxConfig,
};

/// Which tenant a request is for, and its SCRIPT_NAME / PATH_INFO split.
#[derive(Debug, PartialEq, Eq)]
struct Route {
    tenant: String,
    script_name: String,
    path_info: Vec<u8>,
}

/// Route by `Host: <tenant>.localhost`, else by the first path segment.
fn route(host: Option<&str>, path: &str, is_tenant: impl Fn(&str) -> bool) -> Option<Route> {
    if let Some(host) = host {
        let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
        if let Some(tenant) = name.strip_suffix(".localhost") {
            if is_tenant(tenant) {
                return Some(Route {
                    tenant: tenant.to_string(),
                    script_name: String::new(),
                    path_info: percent_decode(path),
                });
            }
        }
    }
    let rest = path.strip_prefix('/')?;
    let (first, tail) = rest
        .split_once('/')
        .map_or((rest, None), |(a, b)| (a, Some(b)));
    if !is_tenant(first) {
        return None;
    }
    Some(Route {
        tenant: first.to_string(),
        script_name: format!("/{first}"),
        path_info: tail.map_or_else(Vec::new, |t| percent_decode(&format!("/{t}"))),
    })
}

fn header<'a>(request: &'a tiny_http::Request, name: &'static str) -> Option<&'a str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str())
}

fn plain(status: u16, text: &str) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    tiny_http::Response::from_data(text.as_bytes().to_vec()).with_status_code(status)
}

/// Serve one connection's request.
fn handle(sandbox: &Sandbox, server_port: u16, mut request: tiny_http::Request) {
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let host = header(&request, "Host").map(str::to_string);
    let Some(route) = route(host.as_deref(), path, |t| sandbox.max_body(t).is_some()) else {
        let _ = request.respond(plain(404, "404 Not Found\n"));
        return;
    };
    let Some(max_body) = sandbox.max_body(&route.tenant) else {
        let _ = request.respond(plain(404, "404 Not Found\n"));
        return;
    };
    let mut body = Vec::new();
    let read = request
        .as_reader()
        .take(max_body + 1)
        .read_to_end(&mut body);
    if read.is_err() {
        let _ = request.respond(plain(400, "400 Bad Request\n"));
        return;
    }
    let remote = request.remote_addr().copied();
    let wsgi_request = Request {
        method: request.method().as_str().to_string(),
        script_name: route.script_name,
        path_info: route.path_info,
        query_string: query.to_string(),
        request_uri: url.clone(),
        headers: request
            .headers()
            .iter()
            .map(|h| {
                (
                    h.field.as_str().as_str().to_string(),
                    h.value.as_str().as_bytes().to_vec(),
                )
            })
            .collect(),
        body,
        body_complete: true,
        remote_addr: remote.map_or_else(String::new, |a| a.ip().to_string()),
        remote_port: remote.map_or(0, |a| a.port()),
        server_name: host
            .as_deref()
            .map_or("localhost", |h| h.rsplit_once(':').map_or(h, |(n, _)| n))
            .to_string(),
        server_port,
        server_protocol: format!("HTTP/{}", request.http_version()),
        url_scheme: "http".to_string(),
    };
    let live = Arc::new(Mutex::new(Live {
        request: Some(request),
        sender: None,
        responder: None,
    }));
    let response = sandbox.dispatch(
        &route.tenant,
        wsgi_request,
        Box::new(LiveHandle(Arc::clone(&live))),
    );
    let mut live = live.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(request) = live.request.take() {
        let _ = request.respond(to_tiny(response));
        return;
    }
    if response.outcome == Outcome::Ok && !response.body.is_empty() {
        let _ = live.send(response.body);
    }
    // Closing the channel ends the chunked body; a failed request ends
    // without its final chunk, so the client sees it incomplete.
    live.sender = None;
    if let Some(responder) = live.responder.take() {
        let _ = responder.join();
    }
}

/// The dev server's live request: the body was read up front; a streamed
/// response goes to the client through a bounded channel, sent chunked by
/// a responder thread.
struct Live {
    /// The request until its response is started.
    request: Option<tiny_http::Request>,
    sender: Option<SyncSender<Vec<u8>>>,
    responder: Option<JoinHandle<()>>,
}

impl Live {
    fn send(&mut self, data: Vec<u8>) -> Result<(), HostError> {
        let sender = self
            .sender
            .as_ref()
            .ok_or_else(|| HostError::new(ErrorKind::Invalid, "the response was not started"))?;
        sender
            .send(data)
            .map_err(|_| HostError::new(ErrorKind::Io, "the client went away"))
    }
}

/// The body of a streamed response, as the guest writes it.
struct ChannelReader {
    receiver: Receiver<Vec<u8>>,
    pending: std::io::Cursor<Vec<u8>>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.pending.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            match self.receiver.recv() {
                Ok(chunk) => self.pending = std::io::Cursor::new(chunk),
                Err(_) => return Ok(0),
            }
        }
    }
}

struct LiveHandle(Arc<Mutex<Live>>);

impl LiveHandle {
    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RequestHost for LiveHandle {
    fn read(&mut self, _max: usize) -> Result<Vec<u8>, HostError> {
        // The dev server reads the whole body before the call.
        Ok(Vec::new())
    }

    fn start_response(
        &mut self,
        status: u16,
        headers: &[(String, Vec<u8>)],
    ) -> Result<(), HostError> {
        let mut live = self.live();
        let request = live.request.take().ok_or_else(|| {
            HostError::new(ErrorKind::Invalid, "the response was already started")
        })?;
        let (sender, receiver) = sync_channel(4);
        let mut response = tiny_http::Response::new(
            status.into(),
            Vec::new(),
            ChannelReader {
                receiver,
                pending: std::io::Cursor::new(Vec::new()),
            },
            None,
            None,
        );
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("content-length") {
                continue;
            }
            if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_slice()) {
                response.add_header(header);
            }
        }
        live.sender = Some(sender);
        live.responder = Some(std::thread::spawn(move || {
            let _ = request.respond(response);
        }));
        Ok(())
    }

    fn write(&mut self, data: &[u8], _flush: bool) -> Result<(), HostError> {
        self.live().send(data.to_vec())
    }

    fn sendfile(
        &mut self,
        file: &Path,
        offset: u64,
        length: Option<u64>,
    ) -> Result<u64, HostError> {
        use std::io::{Seek, SeekFrom};
        let io = |e: std::io::Error| HostError::new(ErrorKind::Io, format!("sendfile: {e}"));
        let mut f = std::fs::File::open(file).map_err(io)?;
        f.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut reader = f.take(length.unwrap_or(u64::MAX));
        let mut sent = 0;
        let mut buf = vec![0; 256 * 1024];
        loop {
            let n = reader.read(&mut buf).map_err(io)?;
            if n == 0 {
                return Ok(sent);
            }
            self.live().send(buf[..n].to_vec())?;
            sent += n as u64;
        }
    }

    fn log(&mut self, _level: u8, line: &str) {
        tracing::warn!(target: "wasmpy::tenant", "{line}");
    }
}

fn to_tiny(response: Response) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let mut out = tiny_http::Response::from_data(response.body).with_status_code(response.status);
    for (name, value) in response.headers {
        // The body is complete: its length is known, whatever the app said.
        if name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        if let Ok(header) = Header::from_bytes(name.as_bytes(), value) {
            out.add_header(header);
        }
    }
    if response.outcome != Outcome::Ok {
        tracing::warn!(status = response.status, outcome = ?response.outcome, "request failed");
    }
    out
}

/// Load every valid tenant under `tenants_dir` and serve them on `listen`.
pub fn run(
    tenants_dir: &Path,
    listen: &str,
    threads: usize,
    config: SandboxConfig,
) -> anyhow::Result<()> {
    let sandbox = Arc::new(Sandbox::new(config)?);
    let tenants = wasmpy_policies::discover_tenants(tenants_dir)
        .with_context(|| format!("cannot read {}", tenants_dir.display()))?;
    for (dir, tenant) in tenants {
        match tenant {
            Ok(tenant) => {
                sandbox.add_tenant(tenant);
            }
            Err(errors) => tracing::error!("tenant {} not loaded:\n{errors}", dir.display()),
        }
    }
    let server = Arc::new(
        Server::http(listen).map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?,
    );
    let port = server.server_addr().to_ip().map_or(0, |a| a.port());
    tracing::info!(
        "wasmpy serving {} tenants on http://{listen}/",
        sandbox.tenant_names().len()
    );
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let server = Arc::clone(&server);
            let sandbox = Arc::clone(&sandbox);
            std::thread::spawn(move || {
                while let Ok(request) = server.recv() {
                    handle(&sandbox, port, request);
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_host_then_by_prefix() {
        let known = |t: &str| t == "alice";
        let by_host = route(Some("alice.localhost:8000"), "/x", known).unwrap();
        assert_eq!(
            (by_host.script_name.as_str(), by_host.path_info.as_slice()),
            ("", &b"/x"[..])
        );
        let by_path = route(Some("127.0.0.1"), "/alice/x/y", known).unwrap();
        assert_eq!(by_path.script_name, "/alice");
        assert_eq!(by_path.path_info, b"/x/y");
        assert_eq!(route(None, "/alice", known).unwrap().path_info, b"");
        assert!(route(None, "/bob/x", known).is_none());
        assert!(route(Some("bob.localhost"), "/", known).is_none());
    }
}
