//! Running guest code for a request: checking out an instance, attaching
//! the live request, bounding the call in time, and deciding what the
//! outcome was (a response, a recycled instance, a counter).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::api::{Outcome, Request, Response};
use crate::bindings;
use crate::block_on::block_on;
use crate::host::request::{ActiveRequest, RequestHost};
use crate::instance::{CreateError, Instance};
use crate::pool::{self, Counters, Pool};
use crate::{http, Inner, Sandbox};

/// A checked-out pool slot; gives the slot back (with its instance, if
/// healthy) when dropped, even after a panic.
pub(crate) struct Slot {
    pub pool: Arc<Pool>,
    pub instance: Option<Instance>,
    memory_at_checkout: usize,
}

impl Slot {
    /// Take a slot of `pool`, waiting up to its queue timeout.
    pub fn checkout(pool: &Arc<Pool>) -> Result<Slot, Outcome> {
        match pool.checkout() {
            Ok(instance) => Ok(Slot {
                pool: Arc::clone(pool),
                memory_at_checkout: instance.as_ref().map_or(0, Instance::memory_in_use),
                instance,
            }),
            Err(pool::QueueTimeout) => Err(Outcome::QueueTimeout),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut instance = self.instance.take();
        if let Some(held) = instance.as_mut() {
            // The request (all its phases, filters) is over: its locks go.
            held.store.data_mut().locks.release_all();
        }
        // Recycling waits for the end of the request: an instance a request
        // holds across calls (phases, a filter's stream) is never swapped
        // in the middle.
        if instance.as_ref().is_some_and(|i| self.pool.must_recycle(i)) {
            Counters::bump(&self.pool.counters.recycles);
            instance = None;
        }
        self.pool.checkin(instance, self.memory_at_checkout);
    }
}

/// What to run on an instance for a request.
pub(crate) enum Call<'a> {
    /// A WSGI request.
    Wsgi(&'a bindings::WsgiRequest),
    /// A mod_python phase of request `id`.
    Phase(u64, &'a bindings::PhaseCall),
    /// A filter of request `id` over one piece of data.
    Filter(u64, &'a bindings::FilterCall),
    /// Request `id` is over (no request attached).
    End(u64),
}

/// What the guest answered.
pub(crate) enum Answer {
    Wsgi(bindings::WsgiResponse),
    Phase(bindings::PhaseResult),
    Filter(bindings::FilterResult),
    End,
}

/// The end of a call: the answer (or how the call failed) and the
/// request's state (body over its limit, response started).
pub(crate) struct Ran {
    pub answer: Result<Answer, Outcome>,
    pub too_large: bool,
    pub started: bool,
    /// The guest asked for `end-request` (it registered cleanups).
    pub needs_end: bool,
}

pub(crate) fn record(counters: &Counters, outcome: Outcome) {
    let counter = match outcome {
        Outcome::Ok | Outcome::UnknownTenant => return,
        Outcome::BodyTooLarge => &counters.too_large,
        Outcome::QueueTimeout => &counters.queue_timeouts,
        Outcome::Exception => &counters.exceptions,
        Outcome::Memory => &counters.memory_errors,
        Outcome::ImportFailed => &counters.import_errors,
        Outcome::Timeout => &counters.timeouts,
        Outcome::Trap | Outcome::HostError => &counters.traps,
        Outcome::InvalidResponse => &counters.invalid_responses,
    };
    Counters::bump(counter);
}

/// The outcome a guest-reported failure stands for.
pub(crate) fn failure_outcome(
    failure: Option<bindings::wasmpy::gateway::types::Failure>,
) -> Outcome {
    use bindings::wasmpy::gateway::types::Failure;
    match failure {
        None => Outcome::Ok,
        Some(Failure::Exception) => Outcome::Exception,
        Some(Failure::Memory) => Outcome::Memory,
        Some(Failure::ImportFailed) => Outcome::ImportFailed,
    }
}

impl Sandbox {
    /// Serve one WSGI request of `tenant`, with `host` for the rest of the
    /// body, streamed output and files. Never panics on guest behaviour:
    /// every failure is a [`Response`] whose [`Outcome`] says what happened.
    pub fn dispatch(
        &self,
        tenant: &str,
        request: Request,
        host: Box<dyn RequestHost + Send>,
    ) -> Response {
        let Some(pool) = self.inner.pool(tenant) else {
            return Response::error(Outcome::UnknownTenant);
        };
        Counters::bump(&pool.counters.requests);
        let max_body = pool.tenant.policy.limits.max_body_bytes;
        if request.body.len() as u64 > max_body {
            Counters::bump(&pool.counters.too_large);
            return Response::error(Outcome::BodyTooLarge);
        }
        let mut slot = match Slot::checkout(&pool) {
            Ok(slot) => slot,
            Err(outcome) => {
                record(&pool.counters, outcome);
                return Response::error(outcome);
            }
        };
        let id = self.inner.next_request_id();
        let wsgi = to_wit(id, request);
        let active = ActiveRequest::new(id, host, &pool, wsgi.body.len() as u64);
        let ran = self.inner.run(&mut slot, Some(active), Call::Wsgi(&wsgi));
        let response = match ran.answer {
            Ok(Answer::Wsgi(answer)) => self.inner.check_answer(&pool, answer),
            Ok(_) => Response::error(Outcome::Trap),
            Err(outcome) => {
                let mut response = Response::error(outcome);
                response.streamed = ran.started;
                response
            }
        };
        // A body over max_body is a 413 whatever the application made of it,
        // unless its response is already on the wire.
        let response = if ran.too_large && !response.streamed {
            Response::error(Outcome::BodyTooLarge)
        } else {
            response
        };
        record(&pool.counters, response.outcome);
        if response.outcome == Outcome::Timeout {
            pool.penalize();
        }
        response
    }
}

fn to_wit(id: u64, r: Request) -> bindings::WsgiRequest {
    bindings::WsgiRequest {
        id,
        method: r.method,
        script_name: r.script_name,
        path_info: r.path_info,
        query_string: r.query_string,
        request_uri: r.request_uri,
        headers: r.headers,
        body: r.body,
        body_complete: r.body_complete,
        remote_addr: r.remote_addr,
        remote_port: r.remote_port,
        server_name: r.server_name,
        server_port: r.server_port,
        server_protocol: r.server_protocol,
        url_scheme: r.url_scheme,
    }
}

impl Inner {
    /// A new request id (never 0, never reused in this process).
    pub(crate) fn next_request_id(&self) -> u64 {
        self.next_request.fetch_add(1, Ordering::Relaxed)
    }

    /// Check what a WSGI application returned before it reaches a host.
    fn check_answer(&self, pool: &Pool, answer: bindings::WsgiResponse) -> Response {
        let outcome = failure_outcome(answer.failure);
        if !answer.streamed {
            if let Err(problem) = http::check_response(answer.status, &answer.headers) {
                self.log(
                    &pool.tenant.name,
                    &format!("mod_wasmpy: invalid response: {problem}"),
                );
                return Response::error(Outcome::InvalidResponse);
            }
        }
        Response {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
            streamed: answer.streamed,
            outcome,
        }
    }

    /// Run `call` on the slot's instance (creating one if it has none) with
    /// `active` attached, bounded by the tenant's request timeout. A failed
    /// instance is dropped; a healthy one stays in the slot.
    pub(crate) fn run(
        &self,
        slot: &mut Slot,
        active: Option<ActiveRequest>,
        call: Call<'_>,
    ) -> Ran {
        let _tokio = self.tokio.enter();
        block_on(self.run_async(slot, active, call), self.tokio.handle())
    }

    async fn run_async(
        &self,
        slot: &mut Slot,
        active: Option<ActiveRequest>,
        call: Call<'_>,
    ) -> Ran {
        let pool = Arc::clone(&slot.pool);
        let name = &pool.tenant.name;
        let mut instance = match slot.instance.take() {
            Some(instance) => instance,
            None => match self.create(&pool).await {
                Ok(instance) => instance,
                Err((outcome, text)) => {
                    for line in text.lines() {
                        self.log(name, line);
                    }
                    return Ran {
                        answer: Err(outcome),
                        too_large: false,
                        started: false,
                        needs_end: false,
                    };
                }
            },
        };
        let timeout = pool.tenant.policy.limits.request_timeout;
        let state = instance.store.data_mut();
        let first_check = state.clock.start(timeout, pool.penalized(), true);
        state.limiter.refused = false;
        state.request = active;
        instance.store.set_epoch_deadline(first_check);
        instance.requests += 1;
        let result = tokio::time::timeout(timeout, async {
            match call {
                Call::Wsgi(request) => instance
                    .gateway
                    .call_handle(&mut instance.store, request)
                    .await
                    .map(Answer::Wsgi),
                Call::Phase(id, phase) => instance
                    .gateway
                    .call_run_phase(&mut instance.store, id, phase)
                    .await
                    .map(Answer::Phase),
                Call::Filter(id, filter) => instance
                    .gateway
                    .call_run_filter(&mut instance.store, id, filter)
                    .await
                    .map(Answer::Filter),
                Call::End(id) => instance
                    .gateway
                    .call_end_request(&mut instance.store, id)
                    .await
                    .map(|()| Answer::End),
            }
        })
        .await;
        let state = instance.store.data_mut();
        state.clock.finish();
        let active = state.request.take();
        let (too_large, started, needs_end) = active.map_or((false, false, false), |a| {
            (a.too_large, a.started, a.needs_end)
        });
        instance.flush_log(&self.log_sink, name);
        instance.last_used = Instant::now();
        let answer = match result {
            Ok(Ok(answer)) => {
                let memory_failure = match &answer {
                    Answer::Wsgi(r) => failure_outcome(r.failure) == Outcome::Memory,
                    Answer::Phase(r) => failure_outcome(r.failure) == Outcome::Memory,
                    Answer::Filter(r) => failure_outcome(r.failure) == Outcome::Memory,
                    Answer::End => false,
                };
                if memory_failure {
                    Counters::bump(&pool.counters.recycles);
                } else {
                    slot.instance = Some(instance);
                }
                Ok(answer)
            }
            Ok(Err(error)) => {
                let outcome =
                    if error.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
                        Outcome::Timeout
                    } else if instance.store.data().limiter.refused {
                        Outcome::Memory
                    } else {
                        Outcome::Trap
                    };
                // The first line names the trap; the wasm backtrace is for debugging.
                let first = format!("{error}");
                tracing::debug!(tenant = %name, "trap: {error:?}");
                self.log(
                    name,
                    &format!(
                        "mod_wasmpy: instance replaced after {outcome:?}: {}",
                        first.lines().next().unwrap_or("")
                    ),
                );
                Counters::bump(&pool.counters.recycles);
                Err(outcome)
            }
            Err(_) => {
                self.log(name, &format!("mod_wasmpy: request exceeded request_timeout ({timeout:?}); instance replaced"));
                Counters::bump(&pool.counters.recycles);
                Err(Outcome::Timeout)
            }
        };
        Ran {
            answer,
            too_large,
            started,
            needs_end,
        }
    }

    pub(crate) async fn create(&self, pool: &Pool) -> Result<Instance, (Outcome, String)> {
        let tenant = &pool.tenant;
        if !tenant.dir.is_dir() {
            return Err((
                Outcome::UnknownTenant,
                "mod_wasmpy: tenant directory removed".into(),
            ));
        }
        while self.global.instances.load(Ordering::Relaxed) >= self.max_instances {
            if !self.evict_idle() {
                return Err((
                    Outcome::QueueTimeout,
                    format!(
                        "mod_wasmpy: all {} instances of this process are busy",
                        self.max_instances
                    ),
                ));
            }
        }
        let started = Instant::now();
        let snapshot = pool.snapshot();
        let pre = snapshot.as_deref().unwrap_or(&self.runtime.pre);
        let created = tokio::time::timeout(
            tenant.policy.limits.request_timeout,
            Instance::create(
                &self.runtime,
                pre,
                tenant,
                &pool.dirs,
                &self.log_sink,
                &self.global,
                pool.penalized(),
            ),
        )
        .await;
        Counters::bump(&pool.counters.instances_created);
        match created {
            Ok(Ok(instance)) => {
                tracing::debug!(tenant = %tenant.name, elapsed = ?started.elapsed(), "instance created");
                Ok(instance)
            }
            Ok(Err(CreateError::Import(text))) => Err((Outcome::ImportFailed, text)),
            Ok(Err(CreateError::Host(text))) => Err((Outcome::HostError, text)),
            Err(_) => Err((
                Outcome::Timeout,
                format!("importing {} took longer than request_timeout", tenant.name),
            )),
        }
    }
}
