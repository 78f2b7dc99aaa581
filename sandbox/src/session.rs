//! mod_python's request model: one instance of a tenant held by a request
//! from its first Python phase to its end, so that the guest's `req` (and
//! every attribute a handler sets on it) lives across the phases.

use std::sync::Arc;

use crate::api::{
    FilterCall, FilterOutcome, Handler, Outcome, PhaseCall, PhaseOutcome, DECLINED, DONE, OK,
};
use crate::bindings;
use crate::dispatch::{failure_outcome, record, Answer, Call, Slot};
use crate::host::request::{latin1_bytes, to_text, ActiveRequest, RequestHost};
use crate::pool::Counters;
use crate::{Inner, Sandbox};

/// A request's hold on one instance of its tenant. Dropping it gives the
/// instance back, after ending the request in the guest (`end-request`) if
/// a handler registered cleanups; otherwise the guest drops the request's
/// state when the instance's next request begins.
pub struct Session {
    inner: Arc<Inner>,
    slot: Slot,
    id: u64,
    /// The guest registered cleanups for `id`: call `end-request`.
    needs_end: bool,
    /// The instance failed; later phases are refused.
    broken: bool,
}

impl Sandbox {
    /// Begin a mod_python request of `tenant`: take one of its instance
    /// slots (waiting up to its queue timeout). Fails with
    /// `UnknownTenant` or `QueueTimeout`.
    pub fn session(&self, tenant: &str) -> Result<Session, Outcome> {
        let pool = self.inner.pool(tenant).ok_or(Outcome::UnknownTenant)?;
        Counters::bump(&pool.counters.requests);
        let slot = Slot::checkout(&pool).inspect_err(|&outcome| record(&pool.counters, outcome))?;
        Ok(Session {
            id: self.inner.next_request_id(),
            inner: Arc::clone(&self.inner),
            slot,
            needs_end: false,
            broken: false,
        })
    }
}

impl Session {
    /// Whether the guest registered cleanups (they run when the session is
    /// dropped).
    pub fn has_cleanups(&self) -> bool {
        self.needs_end
    }

    /// Run one phase's handlers with `host` as the live request. A failed
    /// instance (trap, deadline, memory) answers 500 (504 for the
    /// deadline) and every later phase of the request is DECLINED.
    pub fn run_phase(
        &mut self,
        call: &PhaseCall,
        host: Box<dyn RequestHost + Send>,
    ) -> PhaseOutcome {
        if self.broken {
            return PhaseOutcome {
                status: DECLINED,
                outcome: Outcome::Ok,
            };
        }
        let pool = Arc::clone(&self.slot.pool);
        let call = self.to_wit(call);
        let active = ActiveRequest::new(self.id, host, &pool, 0);
        let ran = self
            .inner
            .run(&mut self.slot, Some(active), Call::Phase(self.id, &call));
        self.needs_end |= ran.needs_end;
        let result = match ran.answer {
            Ok(Answer::Phase(result)) => {
                let outcome = failure_outcome(result.failure);
                let status = match result.status {
                    OK | DECLINED | DONE | 100..=599 => result.status,
                    _ => 500,
                };
                PhaseOutcome { status, outcome }
            }
            Ok(_) => PhaseOutcome {
                status: 500,
                outcome: Outcome::Trap,
            },
            Err(outcome) => PhaseOutcome {
                status: i32::from(outcome.status()),
                outcome,
            },
        };
        // A failed instance is gone, and so is one recycled after the phase
        // (memory, limits): with it the request's state in the guest.
        self.broken = self.slot.instance.is_none();
        if ran.too_large && !ran.started {
            record(&pool.counters, Outcome::BodyTooLarge);
            return PhaseOutcome {
                status: 413,
                outcome: Outcome::BodyTooLarge,
            };
        }
        record(&pool.counters, result.outcome);
        if result.outcome == Outcome::Timeout {
            pool.penalize();
        }
        result
    }

    /// Run a filter over one piece of `data`, with `host` as the live
    /// request (a host refuses output and body reads during a filter: the
    /// data passes through the result). The outcome is `Ok` or
    /// `Exception` (the guest disabled the filter) when the guest answered;
    /// anything else means the instance failed and the stream must end.
    pub fn run_filter(
        &mut self,
        call: &FilterCall,
        data: &[u8],
        host: Box<dyn RequestHost + Send>,
    ) -> FilterOutcome {
        let failed = |outcome| FilterOutcome {
            outcome,
            output: Vec::new(),
            closed: false,
            disabled: false,
            flush: false,
        };
        if self.broken {
            return failed(Outcome::Trap);
        }
        let pool = Arc::clone(&self.slot.pool);
        let wit_call = bindings::FilterCall {
            handler: self.handler_to_wit(&call.handler),
            name: call.name.clone(),
            is_input: call.input,
            data: to_text(data),
            eos: call.eos,
            options: call.options.clone(),
            config: call.config.clone(),
            interpreter: call.interpreter.clone(),
        };
        let active = ActiveRequest::new(self.id, host, &pool, 0);
        let ran = self.inner.run(
            &mut self.slot,
            Some(active),
            Call::Filter(self.id, &wit_call),
        );
        self.needs_end |= ran.needs_end;
        self.broken = self.slot.instance.is_none();
        let result = match ran.answer {
            Ok(Answer::Filter(result)) => match latin1_bytes(&result.output) {
                Ok(output) => FilterOutcome {
                    outcome: failure_outcome(result.failure),
                    output,
                    closed: result.closed,
                    disabled: result.disabled,
                    flush: result.flush,
                },
                Err(_) => failed(Outcome::InvalidResponse),
            },
            Ok(_) => failed(Outcome::Trap),
            Err(outcome) => failed(outcome),
        };
        record(&pool.counters, result.outcome);
        if result.outcome == Outcome::Timeout {
            pool.penalize();
        }
        result
    }

    fn handler_to_wit(&self, h: &Handler) -> bindings::Handler {
        bindings::Handler {
            spec: h.spec.clone(),
            directory: h
                .directory
                .as_deref()
                .and_then(|d| self.slot.pool.grants.to_guest(d))
                .unwrap_or_default(),
            extensions: h.extensions.clone(),
            silent: h.silent,
        }
    }

    fn to_wit(&self, call: &PhaseCall) -> bindings::PhaseCall {
        bindings::PhaseCall {
            phase: call.phase.clone(),
            handlers: call
                .handlers
                .iter()
                .map(|h| self.handler_to_wit(h))
                .collect(),
            options: call.options.clone(),
            config: call.config.clone(),
            imports: call.imports.clone(),
            interpreter: call.interpreter.clone(),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.needs_end && self.slot.instance.is_some() {
            // Cleanups the guest registered run now; the request is over,
            // so any request call they make is `stale`.
            let _ = self.inner.run(&mut self.slot, None, Call::End(self.id));
        }
    }
}
