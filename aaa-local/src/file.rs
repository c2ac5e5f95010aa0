//! The account file: its format (TOML, `version = 1`), reading, strict parsing with line
//! numbers, encoding, the sidecar lock file, and atomic replacement.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::password_hash::phc::PasswordHash;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::HashParams;
use crate::error::{FormatError, HashError, LocalError, TomlError};
use crate::table::{Account, AccountTable, Level};

/// The version of the account file format this library reads and writes.
pub(crate) const FORMAT_VERSION: i64 = 1;

/// The largest account file accepted, in bytes (16 MiB: some 80 000 accounts).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The largest timestamp the file holds (a TOML integer is an i64).
pub(crate) const MAX_TIMESTAMP_MS: u64 = i64::MAX.unsigned_abs();

/// Mode of the account file, its temporary files and the lock file.
const FILE_MODE: u32 = 0o600;
/// Mode of a directory created for the account file.
const DIR_MODE: u32 = 0o700;

const HEADER: &str = "\
# Local accounts of aaa (account file format version 1, see the aaa-local documentation).
# aaa rewrites this file on every change: comments are not kept.
";

/// The account file as read: the accounts, and the exact bytes (`None`: there is no file).
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) table: AccountTable,
    pub(crate) raw: Option<Vec<u8>>,
}

/// Reads and parses the account file. A missing file is an empty table.
pub(crate) fn load(path: &Path) -> Result<Loaded, LocalError> {
    match read(path)? {
        None => Ok(Loaded {
            table: AccountTable::default(),
            raw: None,
        }),
        Some(raw) => Ok(Loaded {
            table: parse(path, &raw)?,
            raw: Some(raw),
        }),
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LocalError {
    let path = path.to_path_buf();
    move |source| LocalError::Io {
        action,
        path,
        source,
    }
}

/// The bytes of the account file, `None` if it does not exist.
fn read(path: &Path) -> Result<Option<Vec<u8>>, LocalError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("open the account file", path)(e)),
    };
    let too_large = |size| LocalError::FileTooLarge {
        path: path.to_path_buf(),
        size,
        max: MAX_FILE_BYTES,
    };
    let size = file
        .metadata()
        .map_err(io_error("inspect the account file", path))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(too_large(size));
    }
    let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(io_error("read the account file", path))?;
    let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
    if len > MAX_FILE_BYTES {
        return Err(too_large(len));
    }
    Ok(Some(buf))
}

/// Line and column (from 1; the column in characters) of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

fn parse_error(path: &Path, text: &str, offset: usize, source: FormatError) -> LocalError {
    let (line, column) = position(text, offset);
    LocalError::Parse {
        path: path.to_path_buf(),
        line,
        column,
        source,
    }
}

fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> LocalError {
    let offset = e.span().map_or(0, |s| s.start);
    parse_error(path, text, offset, FormatError::Toml(TomlError::new(e)))
}

/// Only the version, read when the file does not parse, so a newer file is reported as such.
#[derive(Deserialize)]
struct Probe {
    version: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: i64,
    #[serde(default)]
    account: Vec<RawAccount>,
}

fn enabled_default() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    name: Spanned<String>,
    level: Level,
    #[serde(default = "enabled_default")]
    enabled: bool,
    #[serde(default)]
    failures: u32,
    #[serde(default)]
    locked_until_unix_ms: Option<u64>,
    hash: Spanned<String>,
}

/// Parses the account file strictly: unknown fields, bad names, duplicate names and hashes that
/// are not argon2 PHC strings within limits are errors with their line.
pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<AccountTable, LocalError> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = String::from_utf8_lossy(bytes.get(..e.valid_up_to()).unwrap_or_default());
            return Err(parse_error(path, &valid, valid.len(), FormatError::NotUtf8));
        }
    };
    // A valid file is parsed once. Only when that fails is the version probed, so that a newer
    // (or version-less) file is reported as such rather than by its first unknown key.
    let raw: RawFile = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            check_version(path, text)?;
            return Err(toml_error(path, text, &e));
        }
    };
    if raw.version != FORMAT_VERSION {
        return Err(LocalError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: raw.version,
        });
    }
    let mut seen = HashSet::new();
    let mut accounts = Vec::with_capacity(raw.account.len());
    for a in raw.account {
        let name_at = a.name.span().start;
        let hash_at = a.hash.span().start;
        let name = a.name.into_inner();
        aaa_core::validate_username(&name)
            .map_err(|e| parse_error(path, text, name_at, FormatError::InvalidName(e)))?;
        if !seen.insert(name.clone()) {
            return Err(parse_error(
                path,
                text,
                name_at,
                FormatError::DuplicateName(name),
            ));
        }
        let hash = a.hash.into_inner();
        check_hash(&hash).map_err(|e| parse_error(path, text, hash_at, e))?;
        accounts.push(Account {
            name,
            level: a.level,
            enabled: a.enabled,
            hash,
            failures: a.failures,
            locked_until_ms: a.locked_until_unix_ms.map(|ms| ms.min(MAX_TIMESTAMP_MS)),
        });
    }
    Ok(AccountTable { accounts })
}

/// The version probe, for a file that did not parse: its TOML error, a missing version, or a
/// version other than [`FORMAT_VERSION`].
fn check_version(path: &Path, text: &str) -> Result<(), LocalError> {
    let probe: Probe = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
    let version = probe
        .version
        .ok_or_else(|| parse_error(path, text, 0, FormatError::MissingVersion))?;
    if *version.get_ref() != FORMAT_VERSION {
        return Err(LocalError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: *version.get_ref(),
        });
    }
    Ok(())
}

/// Checks that `hash` is an argon2 PHC string that can be verified within our limits.
fn check_hash(hash: &str) -> Result<(), FormatError> {
    let parsed =
        PasswordHash::new(hash).map_err(|e| FormatError::InvalidHash(HashError::hash(e.into())))?;
    if ![
        argon2::ARGON2ID_IDENT,
        argon2::ARGON2I_IDENT,
        argon2::ARGON2D_IDENT,
    ]
    .contains(&parsed.algorithm)
    {
        return Err(FormatError::UnsupportedHashAlgorithm);
    }
    if let Some(v) = parsed.version {
        argon2::Version::try_from(v).map_err(|e| FormatError::InvalidHash(HashError::params(e)))?;
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(FormatError::InvalidHash(HashError::hash(
            argon2::password_hash::Error::EncodingInvalid,
        )));
    }
    let params =
        argon2::Params::try_from(&parsed).map_err(|_| FormatError::HashParamsOutOfRange)?;
    if !HashParams::new(params.m_cost(), params.t_cost(), params.p_cost()).within_limits() {
        return Err(FormatError::HashParamsOutOfRange);
    }
    Ok(())
}

#[derive(Serialize)]
struct OutFile<'a> {
    version: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    account: Vec<OutAccount<'a>>,
}

#[derive(Serialize)]
struct OutAccount<'a> {
    name: &'a str,
    level: Level,
    enabled: bool,
    failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    locked_until_unix_ms: Option<u64>,
    hash: &'a str,
}

/// The file's text for `table`.
pub(crate) fn encode(table: &AccountTable) -> Result<Vec<u8>, LocalError> {
    let out = OutFile {
        version: FORMAT_VERSION,
        account: table
            .accounts
            .iter()
            .map(|a| OutAccount {
                name: &a.name,
                level: a.level,
                enabled: a.enabled,
                failures: a.failures,
                locked_until_unix_ms: a.locked_until_ms,
                hash: &a.hash,
            })
            .collect(),
    };
    let body = toml::to_string(&out).map_err(LocalError::Encode)?;
    let mut text = String::with_capacity(HEADER.len() + body.len());
    text.push_str(HEADER);
    text.push_str(&body);
    Ok(text.into_bytes())
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `<file>.lock` next to the account file.
pub(crate) fn lock_path(path: &Path) -> Result<PathBuf, LocalError> {
    let name = path.file_name().ok_or_else(|| LocalError::InvalidPath {
        path: path.to_path_buf(),
    })?;
    let mut lock = name.to_os_string();
    lock.push(".lock");
    Ok(parent_dir(path).join(lock))
}

/// Whether the directory `dir` exists (an error if it cannot be inspected or is not a directory).
pub(crate) fn dir_exists(dir: &Path) -> Result<bool, LocalError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(true),
        Ok(_) => Err(LocalError::Io {
            action: "use the account file's directory",
            path: dir.to_path_buf(),
            source: io::ErrorKind::NotADirectory.into(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("inspect the account file's directory", dir)(e)),
    }
}

/// Creates `dir` (and missing parents) with mode 0700 if it does not exist.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), LocalError> {
    if dir_exists(dir)? {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(io_error("create the account file's directory", dir))?;
    // The mode given at creation is filtered by the umask; set it exactly.
    fs::set_permissions(dir, Permissions::from_mode(DIR_MODE)).map_err(io_error(
        "set the mode of the account file's directory",
        dir,
    ))?;
    tracing::info!(target: "aaa::local", dir = %dir.display(), "created the account file's directory");
    Ok(())
}

/// An exclusive lock on the sidecar lock file, held until dropped. It excludes other processes
/// and other open descriptions in this process (`flock`).
#[derive(Debug)]
pub(crate) struct FileLock {
    file: File,
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Closing the file releases the lock anyway; unlocking first is just explicit.
        let _ = fs4::FileExt::unlock(&self.file);
    }
}

/// Takes the exclusive lock, waiting for it. The directory must exist.
pub(crate) fn lock_exclusive(lock_path: &Path) -> Result<FileLock, LocalError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(lock_path)
        .map_err(io_error("open the lock file", lock_path))?;
    loop {
        match fs4::FileExt::lock(&file) {
            Ok(()) => return Ok(FileLock { file }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error("lock the lock file", lock_path)(e)),
        }
    }
}

/// Creates a new temporary file next to the account file, mode 0600, never reusing a name.
fn create_temp(dir: &Path, name: &std::ffi::OsStr) -> Result<(PathBuf, File), LocalError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
    for _ in 0..100 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.{n}.{nanos}.tmp", std::process::id()));
        let tmp = dir.join(tmp_name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(io_error("create a temporary file", &tmp)(e)),
        }
    }
    Err(io_error("create a temporary file", dir)(last))
}

/// Replaces the account file with `bytes` atomically: a new temporary file in the same
/// directory, fsync, rename over the file, fsync of the directory. On any failure before the
/// rename the previous file is untouched and the temporary file is removed.
///
/// `fail_before_rename` injects a failure just before the rename (tests only).
pub(crate) fn write_atomic(
    path: &Path,
    bytes: &[u8],
    fail_before_rename: bool,
) -> Result<(), LocalError> {
    let dir = parent_dir(path);
    let name = path.file_name().ok_or_else(|| LocalError::InvalidPath {
        path: path.to_path_buf(),
    })?;
    let (tmp, file) = create_temp(dir, name)?;
    let result = fill_and_rename(file, &tmp, path, bytes, fail_before_rename);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync the account file's directory", dir))
}

fn fill_and_rename(
    mut file: File,
    tmp: &Path,
    path: &Path,
    bytes: &[u8],
    fail_before_rename: bool,
) -> Result<(), LocalError> {
    file.write_all(bytes)
        .map_err(io_error("write a temporary file", tmp))?;
    // The mode given at creation is filtered by the umask; set it exactly.
    file.set_permissions(Permissions::from_mode(FILE_MODE))
        .map_err(io_error("set the mode of a temporary file", tmp))?;
    file.sync_all()
        .map_err(io_error("sync a temporary file", tmp))?;
    drop(file);
    if fail_before_rename {
        return Err(LocalError::Io {
            action: "replace the account file (injected failure)",
            path: path.to_path_buf(),
            source: io::Error::other("injected failure before rename"),
        });
    }
    fs::rename(tmp, path).map_err(io_error("replace the account file", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str =
        "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFy";

    fn parse_str(text: &str) -> Result<AccountTable, LocalError> {
        parse(Path::new("/x/accounts.toml"), text.as_bytes())
    }

    fn parse_err(text: &str) -> (usize, usize, String) {
        match parse_str(text) {
            Err(LocalError::Parse {
                line,
                column,
                source,
                ..
            }) => (line, column, source.to_string()),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn positions() {
        assert_eq!(position("abc", 0), (1, 1));
        assert_eq!(position("abc\ndef", 5), (2, 2));
        assert_eq!(position("é\nxé", 4), (2, 2));
        assert_eq!(position("é\nxé", 6), (2, 3));
        // Inside a character: its start.
        assert_eq!(position("é\nxé", 5), (2, 2));
        assert_eq!(position("abc", 99), (1, 4));
    }

    #[test]
    fn round_trip() {
        let mut t = AccountTable::default();
        t.accounts
            .push(Account::new("admin".into(), Level::Admin, HASH.into()));
        let mut u = Account::new("bob \"the\" user".into(), Level::User, HASH.into());
        u.enabled = false;
        u.failures = 3;
        u.locked_until_ms = Some(1_700_000_000_000);
        t.accounts.push(u);
        let bytes = encode(&t).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("# Local accounts of aaa"));
        assert!(text.contains("version = 1"));
        assert!(text.contains("[[account]]"));
        assert_eq!(parse(Path::new("f"), &bytes).unwrap(), t);
        // An empty table round-trips too.
        let empty = encode(&AccountTable::default()).unwrap();
        assert_eq!(
            parse(Path::new("f"), &empty).unwrap(),
            AccountTable::default()
        );
    }

    #[test]
    fn defaults_of_optional_fields() {
        let t = parse_str(&format!(
            "version = 1\n[[account]]\nname = \"a\"\nlevel = \"user\"\nhash = \"{HASH}\"\n"
        ))
        .unwrap();
        let a = &t.accounts[0];
        assert!(a.enabled);
        assert_eq!(a.failures, 0);
        assert_eq!(a.locked_until_ms, None);
    }

    #[test]
    fn malformed_files_name_the_line() {
        let acct = |extra: &str| {
            format!(
                "version = 1\n\n[[account]]\nname = \"a\"\nlevel = \"admin\"\nhash = \"{HASH}\"\n{extra}"
            )
        };
        // Syntax error on line 7.
        let (line, _, msg) = parse_err(&acct("enabled = \n"));
        assert_eq!(line, 7, "{msg}");
        // Unknown field.
        let (line, _, msg) = parse_err(&acct("colour = \"red\"\n"));
        assert!(msg.contains("colour"), "{msg}");
        assert!(line >= 3, "{line}");
        // Unknown level.
        let (line, _, msg) = parse_err(&acct("").replace("\"admin\"", "\"root\""));
        assert_eq!(line, 5, "{msg}");
        // Bad hash: the line of the hash, and the message does not quote it.
        let bad = acct("").replace(HASH, "$argon2id$v=19$m=256,t=1,p=1$bad");
        let (line, column, msg) = parse_err(&bad);
        assert_eq!((line, column), (6, 8), "{msg}");
        assert!(!msg.contains("argon2id$"), "{msg}");
        // Not argon2.
        let (line, _, msg) = parse_err(&acct("").replace("argon2id", "scrypt"));
        assert_eq!(line, 6, "{msg}");
        // Parameters beyond the limits.
        let (line, _, msg) = parse_err(&acct("").replace("m=256", "m=4194304"));
        assert_eq!(line, 6, "{msg}");
        // Invalid name.
        let (line, _, _) = parse_err(&acct("").replace("name = \"a\"", "name = \"\""));
        assert_eq!(line, 4);
        // Duplicate name: the line of the second one.
        let dup = format!(
            "{}[[account]]\nname = \"a\"\nlevel = \"user\"\nhash = \"{HASH}\"\n",
            acct("")
        );
        let (line, _, msg) = parse_err(&dup);
        assert_eq!(line, 8, "{msg}");
        assert!(msg.contains("duplicate"), "{msg}");
        // Missing version.
        let (line, _, msg) = parse_err("[[account]]\n");
        assert_eq!(line, 1);
        assert!(msg.contains("version"), "{msg}");
        // Empty file: missing version too (never silently "no accounts").
        parse_err("");
        // Not UTF-8, on line 2.
        match parse(Path::new("f"), b"version = 1\n\xff\n") {
            Err(LocalError::Parse {
                line: 2, column: 1, ..
            }) => {}
            other => panic!("{other:?}"),
        }
        // A newer version is reported as such.
        assert!(matches!(
            parse_str("version = 2\n[whatever]\n"),
            Err(LocalError::UnsupportedVersion { found: 2, .. })
        ));
        // A version that is not an integer.
        parse_err("version = \"1\"\n");
    }

    #[test]
    fn lock_path_is_a_sidecar() {
        assert_eq!(
            lock_path(Path::new("/etc/aaa/accounts.toml")).unwrap(),
            Path::new("/etc/aaa/accounts.toml.lock")
        );
        assert_eq!(
            lock_path(Path::new("a.toml")).unwrap(),
            Path::new("./a.toml.lock")
        );
        assert!(matches!(
            lock_path(Path::new("/")),
            Err(LocalError::InvalidPath { .. })
        ));
    }
}
