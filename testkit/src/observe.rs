//! Observers and log capture for assertions on what aaa reports.

use std::cell::RefCell;
use std::io;
use std::sync::{Arc, Mutex, Once, PoisonError};
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

/// A buffer that collects everything `tracing` logs on this thread while the guard of
/// [`capture_logs`] lives.
#[derive(Debug, Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// The text logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
    fn append(&self, buf: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
    }
}

thread_local! {
    static CURRENT: RefCell<Option<LogBuffer>> = const { RefCell::new(None) };
}

/// Writes to the capturing buffer of the current thread, if any.
struct ThreadWriter;

impl io::Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        CURRENT.with(|c| {
            if let Some(b) = &*c.borrow() {
                b.append(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Stops the capture of the current thread when dropped.
#[derive(Debug)]
pub struct CaptureGuard(());

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

/// Captures every `tracing` event (all levels) emitted on the current thread into a buffer until
/// the guard is dropped. Use it in a current-thread runtime so every task logs on this thread.
///
/// One global subscriber (installed on first use) writes each event to the buffer of the thread
/// that emitted it: a scoped subscriber (`set_default`) would race with other tests of the same
/// binary over tracing's per-callsite interest cache and lose events.
pub fn capture_logs() -> (LogBuffer, CaptureGuard) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| ThreadWriter)
            .finish();
        // Fails only if the binary installed its own global subscriber: then there is nothing
        // to capture into, and the test's assertions say so.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
    let buf = LogBuffer::default();
    CURRENT.with(|c| *c.borrow_mut() = Some(buf.clone()));
    (buf, CaptureGuard(()))
}
