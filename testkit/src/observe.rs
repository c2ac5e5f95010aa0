//! Observers and log capture for assertions on what aaa reports.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use aaa_core::{EndCause, SessionId, SessionObserver, SessionRecord};

/// One event an observer saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A session started.
    Started(SessionId),
    /// A session ended.
    Ended(SessionId, EndCause, SystemTime),
}

/// Records every session start and end.
#[derive(Debug, Default)]
pub struct RecordingObserver {
    events: Mutex<Vec<Event>>,
}

impl RecordingObserver {
    /// All events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
    /// The ends so far, as (id, cause).
    pub fn ends(&self) -> Vec<(SessionId, EndCause)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Ended(id, c, _) => Some((id, c)),
                Event::Started(_) => None,
            })
            .collect()
    }
}

impl SessionObserver for RecordingObserver {
    fn session_started(&self, record: &SessionRecord) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Event::Started(record.id));
    }
    fn session_ended(&self, record: &SessionRecord, cause: EndCause, at: SystemTime) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Event::Ended(record.id, cause, at));
    }
}

/// A buffer that collects everything `tracing` logs while the guard of [`capture_logs`] lives.
#[derive(Debug, Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// The text logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Captures every `tracing` event (all levels) of the current thread into a buffer until the
/// guard is dropped. Use it in a current-thread runtime so every task logs on this thread.
pub fn capture_logs() -> (LogBuffer, tracing::subscriber::DefaultGuard) {
    let buf = LogBuffer::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (buf, tracing::subscriber::set_default(subscriber))
}
