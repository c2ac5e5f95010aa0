//! The accounting spool: unacknowledged records on disk, so that they survive the process.
//!
//! Layout of the spool directory (mode 0700):
//!
//! ```text
//! <spool>/p<pid>-<random>/          one directory per live process (0700), renamed into place
//!     lock                          flock'ed by its process for its whole life (0600)
//!     0000000000000007.acct         one record per file (0600), named by a sequence number
//! <spool>/corrupt/                  files that are not valid records, kept for inspection
//! ```
//!
//! Each record file is written to a temporary name, fsynced and renamed; the directory is
//! fsynced after each batch. A file is deleted when its record is acknowledged. A process
//! directory whose lock is free belongs to a process that is gone: the next process to start
//! (or the periodic scan of a running one) takes it over under that lock — moves its records
//! into its own directory, in order, and removes it — so every record is sent by exactly one
//! process. Nothing secret is written: the records hold the user name, the source address,
//! the session id and times.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use rand::TryRng as _;

use crate::RadiusError;
use crate::accounting_record::AcctRecord;

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;
const LOCK: &str = "lock";
const CORRUPT: &str = "corrupt";
const RECORD_EXT: &str = "acct";
/// Process directories are created under a name starting with this, then renamed.
const NEW_PREFIX: &str = ".new-";
/// A directory still under its creation name after this long was left by a process that died.
const LEFTOVER_AGE: std::time::Duration = std::time::Duration::from_secs(60);

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RadiusError {
    let path = path.to_path_buf();
    move |source| RadiusError::Spool {
        action,
        path,
        source,
    }
}

/// A record in this process's spool directory.
#[derive(Debug)]
pub(crate) struct Spooled {
    pub(crate) record: AcctRecord,
    pub(crate) path: PathBuf,
    pub(crate) bytes: u64,
}

/// What a scan for the records of processes that are gone found.
#[derive(Debug, Default)]
pub(crate) struct Adopted {
    /// The records taken over, in the order to send them, now in this process's directory.
    pub(crate) records: Vec<Spooled>,
    /// The errors met (each logged already).
    pub(crate) errors: u64,
}

/// This process's part of the spool (the paths; the lock is a [`SpoolLock`]).
#[derive(Debug)]
pub(crate) struct Spool {
    root: PathBuf,
    own: PathBuf,
}

/// The lock of this process's spool directory, held while the accounting lives. Dropping it
/// removes the directory if no record is left in it; otherwise the directory stays, unlocked,
/// for the next process (or the next scan) to take over.
#[derive(Debug)]
pub(crate) struct SpoolLock {
    own: PathBuf,
    _file: File,
}

impl Spool {
    /// Creates `root` if needed (0700) and this process's directory in it, locked.
    pub(crate) fn open(root: &Path) -> Result<(Self, SpoolLock), RadiusError> {
        ensure_dir(root)?;
        let tag = process_tag();
        let new = root.join(format!("{NEW_PREFIX}{tag}"));
        let own = root.join(&tag);
        create_private_dir(&new)?;
        let lock_path = new.join(LOCK);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&lock_path)
            .map_err(io_error("create the spool lock file", &lock_path))?;
        match fs4::FileExt::try_lock(&lock) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(RadiusError::Spool {
                    action: "lock",
                    path: lock_path,
                    source: io::ErrorKind::WouldBlock.into(),
                });
            }
            Err(fs4::TryLockError::Error(e)) => return Err(io_error("lock", &lock_path)(e)),
        }
        // Only now, locked, does the directory get a name other processes look at.
        fs::rename(&new, &own).map_err(io_error("name the spool directory", &own))?;
        sync_dir(root)?;
        Ok((
            Self {
                root: root.to_path_buf(),
                own: own.clone(),
            },
            SpoolLock { own, _file: lock },
        ))
    }

    /// This process's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.own
    }

    /// Writes a record's spool `text` ([`AcctRecord::to_spool_text`]) as file number `seq` of
    /// this process's directory: a temporary file (0600), fsync, rename. The directory is
    /// synced by [`sync`](Self::sync). Returns its path.
    pub(crate) fn write(&self, seq: u64, text: &str) -> Result<PathBuf, RadiusError> {
        let path = self.own.join(format!("{seq:016x}.{RECORD_EXT}"));
        let tmp = self.own.join(format!(".{seq:016x}.tmp"));
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&tmp)?;
            f.set_permissions(Permissions::from_mode(FILE_MODE))?;
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_error("write a spool file", &tmp)(e));
        }
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_error("rename a spool file", &path)(e));
        }
        Ok(path)
    }

    /// Syncs this process's directory (after a batch of writes or removals).
    pub(crate) fn sync(&self) -> Result<(), RadiusError> {
        sync_dir(&self.own)
    }

    /// Deletes an acknowledged record's file.
    pub(crate) fn remove(&self, path: &Path) -> Result<(), RadiusError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("delete a spool file", path)(e)),
        }
    }

    /// Takes over the records of processes that are gone (their directory's lock is free):
    /// moves them into this process's directory as files `next_seq`, `next_seq + 1`, …, in
    /// the order they were queued, and removes their directories. Invalid files go to the
    /// `corrupt` directory. Every error is logged and counted; none stops the scan.
    pub(crate) fn adopt_orphans(&self, next_seq: &mut u64) -> Adopted {
        let mut adopted = Adopted::default();
        let mut found: Vec<(u64, String, u64, AcctRecord, PathBuf)> = Vec::new();
        let mut done_dirs: Vec<(PathBuf, File)> = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) => {
                adopted.fail(io_error("list the spool directory", &self.root)(e));
                return adopted;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if path == self.own || name == CORRUPT || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            // A directory being created is left alone unless it is old: its process died
            // while creating it.
            let leftover = name.starts_with(NEW_PREFIX);
            if name.starts_with('.')
                && !(leftover
                    && entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > LEFTOVER_AGE)))
            {
                continue;
            }
            // A directory whose lock cannot be taken belongs to a live process.
            let Some(lock) = take_lock(&path, !leftover) else {
                continue;
            };
            if !leftover {
                self.collect(&path, &name, &mut found, &mut adopted);
            }
            done_dirs.push((path, lock));
        }
        // Nothing found, nothing moved or removed: no directory to sync.
        let moved = !found.is_empty();
        let removed = !done_dirs.is_empty();
        // Oldest first; a process's own order among records queued in the same millisecond.
        found.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
        for (_, _, _, record, from) in found {
            let to = self.own.join(format!("{:016x}.{RECORD_EXT}", *next_seq));
            match fs::rename(&from, &to) {
                Ok(()) => {
                    *next_seq = next_seq.saturating_add(1);
                    let bytes = fs::metadata(&to).map_or(0, |m| m.len());
                    adopted.records.push(Spooled {
                        record,
                        path: to,
                        bytes,
                    });
                }
                Err(e) => adopted.fail(io_error("take over a spool file", &from)(e)),
            }
        }
        if moved && let Err(e) = self.sync() {
            adopted.fail(e);
        }
        for (dir, lock) in done_dirs {
            // Still under its lock: nobody else takes it over meanwhile.
            let _ = fs::remove_file(dir.join(LOCK));
            if let Err(e) = fs::remove_dir(&dir) {
                tracing::warn!(target: "aaa::radius", dir = %dir.display(), error = %e,
                    "cannot remove the spool directory of a process that is gone");
            }
            drop(lock);
        }
        if removed && let Err(e) = sync_dir(&self.root) {
            adopted.fail(e);
        }
        adopted
    }

    /// Reads the files of an orphaned directory: records into `found`, temporary files
    /// deleted, invalid files moved to `corrupt`.
    fn collect(
        &self,
        dir: &Path,
        dir_name: &str,
        found: &mut Vec<(u64, String, u64, AcctRecord, PathBuf)>,
        adopted: &mut Adopted,
    ) {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                adopted.fail(io_error("list a spool directory", dir)(e));
                return;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name == LOCK {
                continue;
            }
            if name.starts_with('.') && name.ends_with(".tmp") {
                // Never renamed into place: its record was never counted as spooled.
                let _ = fs::remove_file(&path);
                continue;
            }
            let parsed = match name
                .strip_suffix(&format!(".{RECORD_EXT}"))
                .and_then(|stem| u64::from_str_radix(stem, 16).ok())
            {
                None => Err("not a spool file name"),
                Some(seq) => match fs::read_to_string(&path) {
                    Ok(text) => AcctRecord::from_spool_text(&text).map(|r| (seq, r)),
                    Err(_) => Err("unreadable or not UTF-8"),
                },
            };
            match parsed {
                Ok((seq, record)) => {
                    found.push((record.queued_ms, dir_name.to_owned(), seq, record, path));
                }
                Err(reason) => {
                    adopted.fail(RadiusError::SpoolCorrupt {
                        path: path.clone(),
                        reason,
                    });
                    self.quarantine(&path, dir_name, &name, adopted);
                }
            }
        }
    }

    /// Moves an invalid file to `<spool>/corrupt/<dir>-<name>`.
    fn quarantine(&self, path: &Path, dir_name: &str, name: &str, adopted: &mut Adopted) {
        let corrupt = self.root.join(CORRUPT);
        if let Err(e) = ensure_dir(&corrupt) {
            adopted.fail(e);
            return;
        }
        let to = corrupt.join(format!("{dir_name}-{name}"));
        if let Err(e) = fs::rename(path, &to) {
            adopted.fail(io_error("move a corrupt spool file", path)(e));
        }
    }
}

impl Drop for SpoolLock {
    fn drop(&mut self) {
        let empty = fs::read_dir(&self.own)
            .is_ok_and(|mut entries| entries.all(|e| e.is_ok_and(|e| e.file_name() == LOCK)));
        if empty {
            let _ = fs::remove_file(self.own.join(LOCK));
            let _ = fs::remove_dir(&self.own);
        }
    }
}

impl Adopted {
    fn fail(&mut self, error: RadiusError) {
        self.errors += 1;
        tracing::error!(target: "aaa::radius", %error, "accounting spool");
    }
}

/// The lock of the process directory `dir`, if its process is gone. A named directory whose
/// lock file is missing (its removal raced with a late write) gets a new one, created
/// exclusively, so that only one process takes it over.
fn take_lock(dir: &Path, create_missing: bool) -> Option<File> {
    let path = dir.join(LOCK);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if create_missing && e.kind() == io::ErrorKind::NotFound => OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&path)
            .ok()?,
        Err(_) => return None,
    };
    fs4::FileExt::try_lock(&file).ok()?;
    Some(file)
}

/// `p<pid>-<8 random hex digits>`.
fn process_tag() -> String {
    let mut r = [0u8; 4];
    let random = match rand::rngs::SysRng.try_fill_bytes(&mut r) {
        Ok(()) => u32::from_be_bytes(r),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
    };
    format!("p{}-{random:08x}", std::process::id())
}

/// Creates `dir` (and its parents) if missing, mode 0700; warns if it exists and others may
/// read it.
fn ensure_dir(dir: &Path) -> Result<(), RadiusError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            if m.permissions().mode() & 0o077 != 0 {
                tracing::warn!(target: "aaa::radius", dir = %dir.display(),
                    "the accounting spool directory is accessible to other users: make it 0700");
            }
            Ok(())
        }
        Ok(_) => Err(RadiusError::Spool {
            action: "use as the spool directory",
            path: dir.to_path_buf(),
            source: io::ErrorKind::NotADirectory.into(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)
                .map_err(io_error("create the spool directory", dir))?;
            fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
                .map_err(io_error("set the mode of the spool directory", dir))
        }
        Err(e) => Err(io_error("inspect the spool directory", dir)(e)),
    }
}

/// Creates `dir` (which must not exist), mode 0700 exactly.
fn create_private_dir(dir: &Path) -> Result<(), RadiusError> {
    DirBuilder::new()
        .mode(DIR_MODE)
        .create(dir)
        .map_err(io_error("create the spool directory", dir))?;
    fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
        .map_err(io_error("set the mode of the spool directory", dir))
}

fn sync_dir(dir: &Path) -> Result<(), RadiusError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync the spool directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting_record::Status;
    use std::net::{IpAddr, Ipv4Addr};

    fn record(n: u64) -> AcctRecord {
        AcctRecord {
            status: Status::Start,
            session_id: format!("{n:08x}-1"),
            username: format!("user{n}"),
            src_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            radius_authentic: false,
            event_ms: 1_000 + n,
            session_time: None,
            queued_ms: 5_000 + n,
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn write_adopt_and_clean_up() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("spool");
        let (a, a_lock) = Spool::open(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(a.dir()), 0o700);
        let mut paths = Vec::new();
        for n in 0..3 {
            let text = record(n).to_spool_text();
            let path = a.write(n, &text).unwrap();
            assert_eq!(mode(&path), 0o600);
            assert_eq!(text.len() as u64, fs::metadata(&path).unwrap().len());
            paths.push(path);
        }
        a.sync().unwrap();
        a.remove(&paths[1]).unwrap();
        a.remove(&paths[1]).unwrap(); // gone already: fine
        // A half-written file and a corrupt one.
        fs::write(a.dir().join(".0000000000000009.tmp"), "aaa-acc").unwrap();
        fs::write(a.dir().join("000000000000000a.acct"), "garbage").unwrap();

        // While `a` lives, another process does not take its records.
        let (b, b_lock) = Spool::open(&root).unwrap();
        let mut next = 0;
        let adopted = b.adopt_orphans(&mut next);
        assert!(adopted.records.is_empty());
        assert_eq!(adopted.errors, 0);

        // `a` is gone (its lock released, its records left): `b` takes them over, in order.
        let a_dir = a.dir().to_path_buf();
        drop((a, a_lock));
        assert!(a_dir.exists(), "a directory with records is kept");
        let mut next = 7;
        let adopted = b.adopt_orphans(&mut next);
        let b_records = &adopted.records;
        let users: Vec<_> = adopted
            .records
            .iter()
            .map(|s| s.record.username.clone())
            .collect();
        assert_eq!(users, ["user0", "user2"]);
        assert_eq!(next, 9);
        assert_eq!(adopted.errors, 1, "the corrupt file");
        assert!(adopted.records.iter().all(|s| s.path.starts_with(b.dir())));
        assert!(!a_dir.exists());
        assert_eq!(fs::read_dir(root.join(CORRUPT)).unwrap().count(), 1);
        for s in &adopted.records {
            assert_eq!(
                AcctRecord::from_spool_text(&fs::read_to_string(&s.path).unwrap()).unwrap(),
                s.record
            );
        }
        // A directory of a process that is gone, whose lock file is missing, is taken over
        // too (a new lock is created exclusively).
        let (c, c_lock) = Spool::open(&root).unwrap();
        c.write(0, &record(9).to_spool_text()).unwrap();
        let c_dir = c.dir().to_path_buf();
        drop((c, c_lock));
        fs::remove_file(c_dir.join(LOCK)).unwrap();
        let adopted = b.adopt_orphans(&mut next);
        assert_eq!(adopted.records.len(), 1);
        assert!(!c_dir.exists());
        // Emptied, `b`'s directory goes away with it.
        for s in b_records.iter().chain(&adopted.records) {
            b.remove(&s.path).unwrap();
        }
        let b_dir = b.dir().to_path_buf();
        drop((b, b_lock));
        assert!(!b_dir.exists());
    }

    #[test]
    fn a_file_as_spool_directory_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(matches!(Spool::open(&file), Err(RadiusError::Spool { .. })));
    }
}
