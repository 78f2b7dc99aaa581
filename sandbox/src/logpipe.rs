//! Capture of a guest's stdout/stderr with a byte cap, so that a tenant
//! flooding its output cannot flood the host's log or memory.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

#[derive(Debug, Default)]
struct Buffer {
    data: Vec<u8>,
    dropped: u64,
}

/// A capped in-memory sink shared by a guest's stdout and stderr.
///
/// Bytes past the cap are counted and discarded; the guest never sees an
/// error, so logging cannot be used to crash or stall the application.
#[derive(Debug, Clone)]
pub struct LogPipe {
    cap: usize,
    buffer: Arc<Mutex<Buffer>>,
}

impl LogPipe {
    /// A pipe keeping at most `cap` bytes between two [`LogPipe::take`] calls.
    pub fn new(cap: usize) -> Self {
        LogPipe {
            cap,
            buffer: Arc::default(),
        }
    }

    fn push(&self, bytes: &[u8]) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.cap.saturating_sub(buffer.data.len());
        let kept = room.min(bytes.len());
        buffer.data.extend_from_slice(&bytes[..kept]);
        buffer.dropped += (bytes.len() - kept) as u64;
    }

    /// Take what was written so far, and how many bytes were dropped.
    pub fn take(&self) -> (Vec<u8>, u64) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let dropped = std::mem::take(&mut buffer.dropped);
        (std::mem::take(&mut buffer.data), dropped)
    }
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for LogPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for LogPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // What one write may carry (the cap still applies to what is kept).
        Ok(1 << 20)
    }
}

impl AsyncWrite for LogPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_cap_and_counts_the_rest() {
        let pipe = LogPipe::new(8);
        pipe.push(b"hello ");
        pipe.push(b"world");
        assert_eq!(pipe.take(), (b"hello wo".to_vec(), 3));
        assert_eq!(pipe.take(), (Vec::new(), 0));
    }
}
