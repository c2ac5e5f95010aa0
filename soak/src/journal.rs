//! The journal of a worker: one line per session event it has been told of, written only after
//! the call returned. `started` lines are fsynced before the session counts as acknowledged.
//!
//! ```text
//! started <id> <cookie> <user> <read_write 0|1> <unix ms>
//! ended <id> <unix ms>          end_session returned Ok
//! cleared <id> <unix ms>        clear_session returned Ok
//! gone <id> <unix ms>           own session found gone (end_session: SessionDoesNotExist, or validation: none)
//! end-failed <id> <unix ms>     end_session failed (store error or hung): outcome unknown
//! clear-failed <id> <unix ms>   clear_session failed: outcome unknown
//! ```

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::config::unix_ms;

/// One line of a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Started {
        id: String,
        cookie: String,
        user: String,
        read_write: bool,
    },
    Ended(String),
    Cleared(String),
    Gone(String),
    EndFailed(String),
    ClearFailed(String),
}

impl Entry {
    fn to_line(&self) -> String {
        let ms = unix_ms();
        match self {
            Self::Started {
                id,
                cookie,
                user,
                read_write,
            } => format!(
                "started {id} {cookie} {user} {} {ms}\n",
                u8::from(*read_write)
            ),
            Self::Ended(id) => format!("ended {id} {ms}\n"),
            Self::Cleared(id) => format!("cleared {id} {ms}\n"),
            Self::Gone(id) => format!("gone {id} {ms}\n"),
            Self::EndFailed(id) => format!("end-failed {id} {ms}\n"),
            Self::ClearFailed(id) => format!("clear-failed {id} {ms}\n"),
        }
    }

    /// Parses one line; `None` if it is not a journal line.
    pub(crate) fn parse(line: &str) -> Option<Self> {
        let mut f = line.split(' ');
        let kind = f.next()?;
        let id = f.next()?.to_owned();
        Some(match kind {
            "started" => {
                let cookie = f.next()?.to_owned();
                let user = f.next()?.to_owned();
                let read_write = f.next()? == "1";
                Self::Started {
                    id,
                    cookie,
                    user,
                    read_write,
                }
            }
            "ended" => Self::Ended(id),
            "cleared" => Self::Cleared(id),
            "gone" => Self::Gone(id),
            "end-failed" => Self::EndFailed(id),
            "clear-failed" => Self::ClearFailed(id),
            _ => return None,
        })
    }
}

/// The append-only journal of this worker.
#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
}

impl Journal {
    pub(crate) fn create(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { file })
    }

    /// Appends `entry`; with `sync`, returns only once it is on disk.
    pub(crate) fn append(&mut self, entry: &Entry, sync: bool) -> std::io::Result<()> {
        self.file.write_all(entry.to_line().as_bytes())?;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// Reads the complete lines other processes append to a journal, as they come.
#[derive(Debug)]
pub(crate) struct Follower {
    path: PathBuf,
    offset: u64,
}

/// At most this much is read from a journal in one call.
const MAX_READ: u64 = 4 << 20;

impl Follower {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path, offset: 0 }
    }

    /// The entries of the complete lines appended since the last call (at most 4 MiB of them).
    pub(crate) fn poll(&mut self) -> Vec<Entry> {
        let Ok(mut file) = File::open(&self.path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        if file.take(MAX_READ).read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        let complete = buf.get(..=end).unwrap_or_default();
        self.offset += complete.len() as u64;
        String::from_utf8_lossy(complete)
            .lines()
            .filter_map(Entry::parse)
            .collect()
    }

    /// Every entry of the journal, from the start (for the books, once its writer has exited).
    pub(crate) fn read_all(path: &Path) -> std::io::Result<Vec<Entry>> {
        let text = std::fs::read_to_string(path)?;
        Ok(text.lines().filter_map(Entry::parse).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        let mut j = Journal::create(&path).unwrap();
        let started = Entry::Started {
            id: "0a1b".into(),
            cookie: "c".repeat(43),
            user: "admin".into(),
            read_write: true,
        };
        j.append(&started, true).unwrap();
        j.append(&Entry::Ended("0a1b".into()), false).unwrap();
        let mut f = Follower::new(path.clone());
        assert_eq!(f.poll(), vec![started.clone(), Entry::Ended("0a1b".into())]);
        assert!(f.poll().is_empty());
        // A line without its newline yet is left for the next poll.
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"cleared 0a1b 1")
            .unwrap();
        assert!(f.poll().is_empty());
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"\n")
            .unwrap();
        assert_eq!(f.poll(), vec![Entry::Cleared("0a1b".into())]);
        assert_eq!(Follower::read_all(&path).unwrap().len(), 3);
        assert_eq!(Entry::parse("bogus line"), None);
    }
}
