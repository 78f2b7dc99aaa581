//! The tenant's private state capability: locks that hold across the
//! tenant's instances and Apache children (mod_python's session locks).
//!
//! The state *directory* is a plain WASI preopen (`instance.rs`); this
//! module only serves the `state` interface's locks. A lock is an `flock`
//! on one of [`LOCK_FILES`] files in the tenant's `locks/` directory, which
//! the guest cannot see or write. Keys hash onto those files, so a hostile
//! tenant cannot fill the disk with lock files; two keys on the same file
//! merely wait for each other, as mod_python's global locks do.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bindings::wasmpy::gateway::{state as wit, types as wit_types};
use crate::host::request::{ErrorKind, HostError};
use crate::host::HostState;

/// Lock files per tenant; keys hash onto them.
pub const LOCK_FILES: u64 = 256;
/// Longest lock key, in bytes.
const MAX_KEY: usize = 1024;
/// Most distinct lock files one instance may hold at once.
const MAX_HELD: usize = 32;

/// The locks one instance holds, and where its tenant's lock files are.
#[derive(Debug, Default)]
pub struct StateLocks {
    /// `<state-dir>/<tenant>/locks`; `None`: the tenant has no state directory.
    dir: Option<PathBuf>,
    /// Lock file index -> (open lock file, holds of all its keys).
    held: HashMap<u64, (File, u32)>,
    /// Holds per key (unlocking a key not held is a no-op, even when
    /// another key on the same file is held).
    keys: HashMap<String, u32>,
}

/// FNV-1a: stable across processes, so every child maps a key to the same file.
fn bucket(key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash % LOCK_FILES
}

impl StateLocks {
    /// Locks kept in `dir` (created on first use).
    pub fn new(dir: Option<&Path>) -> Self {
        StateLocks {
            dir: dir.map(Path::to_path_buf),
            held: HashMap::new(),
            keys: HashMap::new(),
        }
    }

    /// Take the lock for `key`, polling until `deadline`.
    pub fn lock(&mut self, key: &str, deadline: Instant) -> Result<(), HostError> {
        check_key(key)?;
        let index = bucket(key);
        if let Some((_, holds)) = self.held.get_mut(&index) {
            *holds += 1;
            *self.keys.entry(key.to_string()).or_insert(0) += 1;
            return Ok(());
        }
        if self.held.len() >= MAX_HELD {
            return Err(HostError::new(
                ErrorKind::TooLarge,
                format!("an instance may hold at most {MAX_HELD} locks at once"),
            ));
        }
        let dir = self.dir.as_ref().ok_or_else(|| {
            HostError::new(ErrorKind::Unsupported, "this tenant has no state directory")
        })?;
        std::fs::create_dir_all(dir).map_err(io("cannot create the lock directory"))?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(dir.join(format!("lock-{index:03}")))
            .map_err(io("cannot open a lock file"))?;
        let mut pause = Duration::from_micros(200);
        loop {
            // SAFETY: a plain system call on a descriptor we own.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK)
                && err.kind() != std::io::ErrorKind::Interrupted
            {
                return Err(io("cannot take a lock")(err));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(HostError::new(
                    ErrorKind::Io,
                    format!("timed out waiting for the lock {:?}", short(key)),
                ));
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(10));
        }
        self.held.insert(index, (file, 1));
        self.keys.insert(key.to_string(), 1);
        Ok(())
    }

    /// Release one hold of the lock for `key`.
    pub fn unlock(&mut self, key: &str) -> Result<(), HostError> {
        check_key(key)?;
        let Some(key_holds) = self.keys.get_mut(key) else {
            return Ok(());
        };
        *key_holds -= 1;
        if *key_holds == 0 {
            self.keys.remove(key);
        }
        let index = bucket(key);
        if let Some((_, holds)) = self.held.get_mut(&index) {
            *holds -= 1;
            if *holds == 0 {
                // Closing the file releases the flock.
                self.held.remove(&index);
            }
        }
        Ok(())
    }

    /// Release every lock (the request ended).
    pub fn release_all(&mut self) {
        self.held.clear();
        self.keys.clear();
    }

    /// Locks held right now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.len()
    }
}

fn check_key(key: &str) -> Result<(), HostError> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(HostError::new(
            ErrorKind::Invalid,
            format!("a lock key is 1 to {MAX_KEY} bytes"),
        ));
    }
    Ok(())
}

fn short(key: &str) -> String {
    key.chars().take(64).collect()
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> HostError {
    move |e| HostError::new(ErrorKind::Io, format!("{what}: {e}"))
}

impl wit::Host for HostState {
    fn lock(&mut self, key: String) -> Result<(), wit_types::Error> {
        if self.request.is_none() {
            return Err(
                HostError::new(ErrorKind::Stale, "locks are taken during a request").into(),
            );
        }
        let deadline = self.clock.deadline();
        Ok(self.locks.lock(&key, deadline)?)
    }

    fn unlock(&mut self, key: String) -> Result<(), wit_types::Error> {
        Ok(self.locks.unlock(&key)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wasmpy-locks-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_lock_excludes_another_holder_until_released() {
        let dir = scratch("exclude");
        let mut a = StateLocks::new(Some(&dir));
        let mut b = StateLocks::new(Some(&dir));
        let soon = || Instant::now() + Duration::from_millis(50);
        a.lock("session-1", soon()).unwrap();
        // Re-entrant for its holder.
        a.lock("session-1", soon()).unwrap();
        let refused = b.lock("session-1", soon()).unwrap_err();
        assert_eq!(refused.kind, ErrorKind::Io, "{refused}");
        a.unlock("session-1").unwrap();
        assert!(b.lock("session-1", soon()).is_err(), "still held once");
        a.unlock("session-1").unwrap();
        b.lock("session-1", soon()).unwrap();
        // Unlocking a key not held releases nothing.
        b.unlock("session-2").unwrap();
        assert!(a.lock("session-1", soon()).is_err());
        b.release_all();
        a.lock("session-1", soon()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn keys_are_bounded_and_map_onto_a_fixed_set_of_files() {
        let dir = scratch("bounded");
        let mut a = StateLocks::new(Some(&dir));
        let far = Instant::now() + Duration::from_secs(5);
        assert_eq!(a.lock("", far).unwrap_err().kind, ErrorKind::Invalid);
        assert_eq!(
            a.lock(&"k".repeat(MAX_KEY + 1), far).unwrap_err().kind,
            ErrorKind::Invalid
        );
        let mut refused = None;
        for i in 0..1000 {
            if let Err(e) = a.lock(&format!("key-{i}"), far) {
                refused = Some(e);
                break;
            }
        }
        assert_eq!(refused.unwrap().kind, ErrorKind::TooLarge);
        a.release_all();
        assert_eq!(a.held(), 0);
        assert!(std::fs::read_dir(&dir).unwrap().count() as u64 <= LOCK_FILES);
        assert!(StateLocks::new(None).lock("x", far).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
