//! RADIUS peers for tests: a real FreeRADIUS started from a generated configuration, a
//! scriptable hostile server, and a silent socket.
//!
//! - [`FreeRadius`]: `freeradius -f` (Debian package `freeradius`, 3.2.x) in the foreground,
//!   from a minimal configuration generated in a temporary directory, listening for
//!   authentication on a free loopback UDP port, with the [test users](USERS), and for
//!   accounting on another ([`FreeRadius::acct_addr`]), where every Accounting-Request is
//!   written by the `detail` module to a file in its directory ([`FreeRadius::detail`] reads
//!   it back as [`DetailRecord`]s) and acknowledged. By default its
//!   replies (Accept, Reject, and Status-Server answers) carry a Message-Authenticator, added
//!   by the configuration (`update reply { Message-Authenticator := 0x00 }`) because FreeRADIUS
//!   3.2.1 does not add one by itself; [`FreeRadiusOptions::message_authenticator`] turns that
//!   off. [`FreeRadius::shared`] gives one server per test binary.
//! - [`HostileRadius`]: our own server on loopback, answering each request as the test
//!   scripts it ([`ReplySpec`]: wrong authenticators, missing, wrong, doubled or misplaced
//!   Message-Authenticators, wrong identifiers, bad lengths, another source port, duplicates,
//!   delays, silence), and recording every datagram with its arrival time.
//! - [`SilentRadius`]: a socket that reads and never answers.
//!
//! The hostile server encodes and signs its replies with its own code (RFC 2865 §3, RFC 3579
//! §3.2), independent of the client under test.

use std::fmt;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant as StdInstant};

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const FREERADIUS: &str = "/usr/sbin/freeradius";
const INSTALL_HINT: &str = "apt-get install freeradius freeradius-utils";
/// How long a FreeRADIUS start may take.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// A user of the generated FreeRADIUS configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestUser {
    /// The username.
    pub name: &'static str,
    /// The password.
    pub password: &'static str,
    /// The reply attributes FreeRADIUS sends on Accept, in `users`-file syntax.
    pub reply: &'static str,
}

/// `admin`: Service-Type = Administrative-User (read/write under the default mapping).
pub const ADMIN: TestUser = TestUser {
    name: "admin",
    password: "admin-password",
    reply: "Service-Type = Administrative-User",
};
/// `oper`: Service-Type = NAS-Prompt-User (read-only).
pub const OPER: TestUser = TestUser {
    name: "oper",
    password: "oper-password",
    reply: "Service-Type = NAS-Prompt-User",
};
/// `plain`: no reply attribute at all (read-only).
pub const PLAIN: TestUser = TestUser {
    name: "plain",
    password: "plain-password",
    reply: "",
};
/// `level15`: Management-Privilege-Level = 15 (RFC 5607) and Service-Type = NAS-Prompt-User.
pub const LEVEL15: TestUser = TestUser {
    name: "level15",
    password: "level15-password",
    reply: "Service-Type = NAS-Prompt-User, Management-Privilege-Level = 15",
};
/// `level1`: Management-Privilege-Level = 1.
pub const LEVEL1: TestUser = TestUser {
    name: "level1",
    password: "level1-password",
    reply: "Management-Privilege-Level = 1",
};
/// `extreme`: Extreme-CLI-Authorization = Enabled (vendor 1916, attribute 201, integer 1).
pub const EXTREME: TestUser = TestUser {
    name: "extreme",
    password: "extreme-password",
    reply: "Extreme-CLI-Authorization = Enabled",
};
/// `sixteen`: a password of exactly 16 bytes (one User-Password block, no padding).
pub const SIXTEEN: TestUser = TestUser {
    name: "sixteen",
    password: "0123456789abcdef",
    reply: "Service-Type = Administrative-User",
};
/// `long`: a password of exactly 128 bytes, the RADIUS maximum.
pub const LONG: TestUser = TestUser {
    name: "long",
    password: "Aa0!Bb1@Cc2#Dd3$Ee4%Ff5^Gg6&Hh7*Ii8(Jj9)Kk0-Ll1_Mm2+Nn3=Oo4[Pp5]Qq6{Rr7}Ss8;Tt9:Uu0,Vv1.Ww2<Xx3>Yy4/Zz5?aa6~bb7|cc8`dd9 ee0 ff12",
    reply: "Service-Type = Administrative-User",
};
/// Every user of the generated configuration.
pub const USERS: [TestUser; 8] = [ADMIN, OPER, PLAIN, LEVEL15, LEVEL1, EXTREME, SIXTEEN, LONG];

/// How to start a [`FreeRadius`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeRadiusOptions {
    /// Add a Message-Authenticator to every reply (Accept, Reject, Status-Server answer).
    /// Default `true`.
    pub message_authenticator: bool,
    /// The secret of the client 127.0.0.1.
    pub secret: String,
}

impl Default for FreeRadiusOptions {
    fn default() -> Self {
        Self {
            message_authenticator: true,
            secret: "testkit-freeradius-shared-secret".to_owned(),
        }
    }
}

/// A FreeRADIUS server of its own, in the foreground, on a free loopback port. Killed when
/// dropped — and when the test process dies, however it dies: a watchdog shell kills it when
/// its standard input (a pipe from this process) closes.
pub struct FreeRadius {
    dir: tempfile::TempDir,
    options: FreeRadiusOptions,
    port: u16,
    acct_port: u16,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// Never dropped (a `static`): the watchdog removes the directory when the process ends.
    shared: bool,
}

impl fmt::Debug for FreeRadius {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FreeRadius")
            .field("dir", &self.dir.path())
            .field("addr", &self.addr())
            .field("acct_addr", &self.acct_addr())
            .field("message_authenticator", &self.options.message_authenticator)
            .field("running", &self.child.is_some())
            .finish()
    }
}

/// A free UDP port on 127.0.0.1 (bound, then released).
fn free_udp_port() -> u16 {
    StdUdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral UDP port on 127.0.0.1")
}

impl FreeRadius {
    /// Generates the configuration and starts the server; returns once it is ready to process
    /// requests. Panics, with the end of its log, if it does not start (and names the Debian
    /// packages if FreeRADIUS is not installed).
    pub fn start(options: FreeRadiusOptions) -> Self {
        Self::start_inner(options, false)
    }

    fn start_inner(options: FreeRadiusOptions, shared: bool) -> Self {
        if !Path::new(FREERADIUS).exists() {
            panic!("FreeRADIUS is not installed ({FREERADIUS} is missing): {INSTALL_HINT}");
        }
        let dir = tempfile::Builder::new()
            .prefix("aaa-freeradius-")
            .tempdir()
            .expect("create a temporary directory for FreeRADIUS");
        let mut server = Self {
            dir,
            options,
            port: 0,
            acct_port: 0,
            child: None,
            stdin: None,
            shared,
        };
        // The port is free when picked but could be taken before FreeRADIUS binds it: retry.
        let mut last_log = String::new();
        for _ in 0..5 {
            server.port = free_udp_port();
            server.acct_port = free_udp_port();
            while server.acct_port == server.port {
                server.acct_port = free_udp_port();
            }
            server.write_config();
            match server.spawn() {
                Ok(()) => return server,
                Err(log) => last_log = log,
            }
        }
        panic!(
            "FreeRADIUS did not start in {}; end of its log:\n{}",
            server.dir.path().display(),
            tail(&last_log, 40)
        );
    }

    /// One server with the default options, shared by the tests of this test binary. It is
    /// never stopped: tests that stop or restart a server start their own.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<FreeRadius> = OnceLock::new();
        SHARED.get_or_init(|| Self::start_inner(FreeRadiusOptions::default(), true))
    }

    /// One server whose replies carry no Message-Authenticator, shared by the tests of this
    /// test binary.
    pub fn shared_without_message_authenticator() -> &'static Self {
        static SHARED: OnceLock<FreeRadius> = OnceLock::new();
        SHARED.get_or_init(|| {
            Self::start_inner(
                FreeRadiusOptions {
                    message_authenticator: false,
                    ..FreeRadiusOptions::default()
                },
                true,
            )
        })
    }

    /// The authentication address (127.0.0.1 and its port).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The accounting address (127.0.0.1 and its own port).
    pub fn acct_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.acct_port))
    }

    /// The file the `detail` module appends each Accounting-Request to (all runs).
    pub fn detail_path(&self) -> PathBuf {
        self.dir.path().join("detail")
    }

    /// The Accounting-Requests the server recorded so far (all runs), in order. A record being
    /// written right now may be missing its last attributes.
    pub fn detail(&self) -> Vec<DetailRecord> {
        parse_detail(&std::fs::read_to_string(self.detail_path()).unwrap_or_default())
    }

    /// The shared secret of the client 127.0.0.1.
    pub fn secret(&self) -> &str {
        &self.options.secret
    }

    /// The configuration directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the server has logged so far (all its runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Whether it is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server (the port stays reserved for [`restart`](Self::restart)).
    pub fn stop(&mut self) {
        // Closing the pipe makes the watchdog kill FreeRADIUS; the shell then exits.
        drop(self.stdin.take());
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = StdInstant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if StdInstant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    // The watchdog did not do it: kill FreeRADIUS by its pid, then the shell.
                    if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("freeradius.pid"))
                    {
                        let _ = Command::new("kill").args(["-9", pid.trim()]).status();
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
    }

    /// Stops the server if it runs and starts it again on the same port. Panics if it does not
    /// come back.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(log) = self.spawn() {
            panic!(
                "FreeRADIUS did not restart in {}; end of its log:\n{}",
                self.dir.path().display(),
                tail(&log, 40)
            );
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("radiusd.log")
    }

    /// Starts `freeradius -f` under the watchdog shell and waits for "Ready to process
    /// requests" in the new part of the log. `Err(log)` if it exits or the deadline passes.
    fn spawn(&mut self) -> Result<(), String> {
        let dir = self.dir.path();
        let log_path = self.log_path();
        let log_start = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        // fd 3 keeps the pipe from this process; the reader subshell kills FreeRADIUS when it
        // reaches end of file, i.e. when this process closes it or dies. For a shared server
        // (never dropped) it then removes the directory too.
        let script = r#"
dir="$1"; cleanup="$2"; shift 2
exec 3<&0
"$@" 3<&- </dev/null >>"$dir/radiusd.log" 2>&1 &
child=$!
echo "$child" >"$dir/freeradius.pid"
(
  read -r _ <&3
  kill -TERM "$child" 2>/dev/null
  if [ "$cleanup" = 1 ]; then
    while kill -0 "$child" 2>/dev/null; do sleep 0.05; done
    rm -rf "$dir"
  fi
) &
exec 3<&-
wait "$child"
"#;
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .arg("aaa-freeradius-watchdog")
            .arg(dir)
            .arg(if self.shared { "1" } else { "0" })
            .args([FREERADIUS, "-f", "-d"])
            .arg(dir)
            .args(["-l", "stdout"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run /bin/sh to start FreeRADIUS: {e}"));
        let stdin = child.stdin.take();
        let deadline = StdInstant::now() + START_DEADLINE;
        loop {
            let new_log = read_from(&log_path, log_start);
            if new_log.contains("Ready to process requests") {
                self.child = Some(child);
                self.stdin = stdin;
                return Ok(());
            }
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if exited || StdInstant::now() >= deadline {
                drop(stdin);
                let _ = child.kill();
                let _ = child.wait();
                let mut log = read_from(&log_path, log_start);
                if !exited {
                    log.push_str("\n(no \"Ready to process requests\" before the deadline)");
                }
                return Err(log);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn write_config(&self) {
        let dir = self.dir.path();
        let d = dir.display();
        std::fs::create_dir_all(dir.join("run")).expect("create the run directory");
        let ma = if self.options.message_authenticator {
            "update reply {\n\t\t\tMessage-Authenticator := 0x00\n\t\t}"
        } else {
            ""
        };
        let radiusd = format!(
            r#"# Generated by testkit::radius for one test run.
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = {d}
sbindir = /usr/sbin
logdir = {d}
raddbdir = {d}
radacctdir = {d}
name = freeradius
confdir = {d}
modconfdir = {d}
run_dir = {d}/run
db_dir = {d}
libdir = /usr/lib/freeradius
pidfile = {d}/run/freeradius.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 65536
hostname_lookups = no
log {{
	destination = stdout
	colourise = no
	auth = no
}}
security {{
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = yes
}}
proxy_requests = no
client localhost {{
	ipaddr = 127.0.0.1
	secret = "{secret}"
}}
thread pool {{
	start_servers = 4
	max_servers = 16
	min_spare_servers = 2
	max_spare_servers = 8
	max_requests_per_server = 0
}}
modules {{
	always ok {{
		rcode = ok
	}}
	pap {{
	}}
	files {{
		filename = {d}/users
	}}
	detail {{
		filename = {d}/detail
		escape_filenames = no
		permissions = 0600
		header = "%t"
	}}
}}
server default {{
	listen {{
		type = auth
		ipaddr = 127.0.0.1
		port = {port}
	}}
	listen {{
		type = acct
		ipaddr = 127.0.0.1
		port = {acct_port}
	}}
	authorize {{
		files
		pap
		Autz-Type Status-Server {{
			{ma}
			ok
		}}
	}}
	authenticate {{
		Auth-Type PAP {{
			pap
		}}
	}}
	post-auth {{
		{ma}
		Post-Auth-Type REJECT {{
			update {{
				&reply: !* ANY
			}}
			{ma}
		}}
	}}
	preacct {{
		ok
	}}
	accounting {{
		detail
	}}
}}
"#,
            secret = self.options.secret,
            port = self.port,
            acct_port = self.acct_port,
        );
        std::fs::write(dir.join("radiusd.conf"), radiusd).expect("write radiusd.conf");
        let mut users = String::from("# Generated by testkit::radius.\n");
        for u in USERS {
            users.push_str(&format!(
                "{}\tCleartext-Password := \"{}\"\n",
                u.name, u.password
            ));
            if !u.reply.is_empty() {
                users.push_str(&format!("\t{}\n", u.reply));
            }
            users.push('\n');
        }
        std::fs::write(dir.join("users"), users).expect("write the users file");
    }
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_from(path: &Path, offset: u64) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(offset)).is_err() || f.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------
// The detail file of FreeRADIUS.

/// One Accounting-Request as FreeRADIUS's `detail` module recorded it: a header line (the
/// time it arrived) and `Attribute = value` lines, values as FreeRADIUS prints them (strings
/// unquoted here; enumerations by name, e.g. `Acct-Status-Type = Stop`; dates like
/// `Nov 14 2023 22:13:20 UTC`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailRecord {
    /// The header line.
    pub header: String,
    /// The attributes, in order: (name, value).
    pub attributes: Vec<(String, String)>,
}

impl DetailRecord {
    /// The value of the first attribute `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    /// Every value of attribute `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.attributes
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// The value of `name` as an integer.
    pub fn integer(&self, name: &str) -> Option<u64> {
        self.get(name)?.parse().ok()
    }
    /// The value of a date attribute (e.g. Event-Timestamp, printed `Nov 14 2023 22:13:20
    /// UTC`) in seconds since the Unix epoch.
    pub fn unix_time(&self, name: &str) -> Option<u64> {
        parse_detail_date(self.get(name)?)
    }
}

/// Parses the text of a detail file: records separated by blank lines, each a header line and
/// tab-indented `Name = value` lines.
pub fn parse_detail(text: &str) -> Vec<DetailRecord> {
    let mut out = Vec::new();
    let mut current: Option<DetailRecord> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            out.extend(current.take());
        } else if let Some(attr) = line.strip_prefix('\t') {
            let Some(record) = current.as_mut() else {
                continue;
            };
            if let Some((name, value)) = attr.split_once(" = ") {
                record
                    .attributes
                    .push((name.trim().to_owned(), unquote(value.trim())));
            }
        } else {
            out.extend(current.take());
            current = Some(DetailRecord {
                header: line.to_owned(),
                attributes: Vec::new(),
            });
        }
    }
    out.extend(current);
    out
}

fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

/// `Nov 14 2023 22:13:20 UTC` → seconds since the epoch.
fn parse_detail_date(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace();
    let name = parts.next()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == name)?;
    let day: u64 = parts.next()?.parse().ok()?;
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|x| x.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next() != Some("UTC") {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, mo) = if month < 2 {
        (year - 1, month as i64 + 10)
    } else {
        (year, month as i64 - 2)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days)
        .ok()
        .map(|d| d * 86_400 + h * 3600 + m * 60 + s)
}

#[cfg(test)]
mod detail_tests {
    use super::*;

    #[test]
    fn parses_a_detail_file() {
        let text = "Sun Nov 29 16:13:43 2026\n\tAcct-Status-Type = Start\n\tAcct-Session-Id = \"abc-1\"\n\tUser-Name = \"a \\\"q\\\"\"\n\tEvent-Timestamp = \"Nov 14 2023 22:13:20 UTC\"\n\tTimestamp = 1795968823\n\nSun Nov 29 16:13:44 2026\n\tAcct-Status-Type = Stop\n";
        let records = parse_detail(text);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].get("Acct-Status-Type"), Some("Start"));
        assert_eq!(records[0].get("Acct-Session-Id"), Some("abc-1"));
        assert_eq!(records[0].get("User-Name"), Some("a \"q\""));
        assert_eq!(records[0].unix_time("Event-Timestamp"), Some(1_700_000_000));
        assert_eq!(records[0].integer("Timestamp"), Some(1_795_968_823));
        assert_eq!(records[1].get("Acct-Status-Type"), Some("Stop"));
        assert_eq!(parse_detail_date("Jan 1 1970 00:00:00 UTC"), Some(0));
        assert_eq!(
            parse_detail_date("Feb 29 2024 12:00:01 UTC"),
            Some(1_709_208_001)
        );
        assert_eq!(parse_detail_date("Foo 1 1970 00:00:00 UTC"), None);
    }
}

// ---------------------------------------------------------------------------------------
// The wire format, written out independently of the client under test.

type HmacMd5 = Hmac<Md5>;

fn hmac_md5(secret: &[u8], data: &[u8]) -> [u8; 16] {
    let mut mac = HmacMd5::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Splits the attributes of a packet (a whole packet) into (type, value); `None` if malformed.
pub fn parse_attributes(packet: &[u8]) -> Option<Vec<(u8, Vec<u8>)>> {
    let len = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    let mut rest = packet.get(20..len)?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let t = *rest.first()?;
        let l = usize::from(*rest.get(1)?);
        if l < 2 {
            return None;
        }
        out.push((t, rest.get(2..l)?.to_vec()));
        rest = rest.get(l..)?;
    }
    Some(out)
}

/// A datagram the hostile server (or the silent socket) received.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived (tokio's clock: virtual under a paused test clock).
    pub at: Instant,
    /// Where it came from.
    pub from: SocketAddr,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

impl Received {
    /// The code (first byte).
    pub fn code(&self) -> u8 {
        self.bytes.first().copied().unwrap_or(0)
    }
    /// The identifier.
    pub fn identifier(&self) -> u8 {
        self.bytes.get(1).copied().unwrap_or(0)
    }
    /// The Request Authenticator.
    pub fn authenticator(&self) -> [u8; 16] {
        self.bytes
            .get(4..20)
            .and_then(|a| a.try_into().ok())
            .unwrap_or([0; 16])
    }
    /// The attributes in order; empty if malformed.
    pub fn attributes(&self) -> Vec<(u8, Vec<u8>)> {
        parse_attributes(&self.bytes).unwrap_or_default()
    }
    /// The value of the first attribute of type `t`.
    pub fn attribute(&self, t: u8) -> Option<Vec<u8>> {
        self.attributes()
            .into_iter()
            .find(|(at, _)| *at == t)
            .map(|(_, v)| v)
    }
    /// The User-Password, un-hidden with `secret` (RFC 2865 §5.2), trailing NULs removed.
    pub fn user_password(&self, secret: &[u8]) -> Option<Vec<u8>> {
        let hidden = self.attribute(2)?;
        if hidden.is_empty() || hidden.len() % 16 != 0 {
            return None;
        }
        let mut prev = self.authenticator().to_vec();
        let mut out = Vec::new();
        for block in hidden.chunks(16) {
            let b = md5(&[secret, &prev]);
            out.extend(block.iter().zip(b).map(|(c, b)| c ^ b));
            prev = block.to_vec();
        }
        while out.last() == Some(&0) {
            out.pop();
        }
        Some(out)
    }
    /// Whether the request's Message-Authenticator (wherever it is) verifies with `secret`.
    pub fn message_authenticator_ok(&self, secret: &[u8]) -> bool {
        let Some(attrs) = parse_attributes(&self.bytes) else {
            return false;
        };
        let mut at = 20;
        for (t, v) in attrs {
            if t == 80 && v.len() == 16 {
                let mut zeroed = self.bytes.clone();
                zeroed[at + 2..at + 18].fill(0);
                return hmac_md5(secret, &zeroed) == v.as_slice();
            }
            at += 2 + v.len();
        }
        false
    }
}

/// Where (and whether) a reply carries a Message-Authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageAuthenticator {
    /// None.
    Absent,
    /// A correct one, first.
    First,
    /// A correct one, last (valid: its position does not matter).
    Last,
    /// One whose value is wrong.
    Wrong,
    /// Two, both with the value computed over the packet with both zeroed.
    Doubled,
    /// One of 8 bytes instead of 16.
    BadLength,
}

/// A corruption applied to a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// None.
    None,
    /// One bit of the Response Authenticator flipped.
    ResponseAuthenticator,
    /// The identifier of the request plus one (signed as such).
    Identifier,
    /// The datagram one byte shorter than its Length field.
    Truncated,
    /// Length field 4097 (the datagram padded to match).
    LengthOver4096,
    /// Length field 19.
    LengthUnder20,
    /// `n` bytes of garbage past Length (valid: they are padding).
    Padding(usize),
    /// A last attribute whose length runs past the packet (signed as such).
    BadAttributeLength,
    /// A last attribute of length 1 (signed as such).
    ZeroLengthAttribute,
}

/// One reply of the hostile server to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplySpec {
    /// Its code (2 Accept, 3 Reject, 11 Challenge, 5 Accounting-Response…).
    pub code: u8,
    /// Its attributes besides Message-Authenticator, in order.
    pub attributes: Vec<(u8, Vec<u8>)>,
    /// Its Message-Authenticator.
    pub message_authenticator: MessageAuthenticator,
    /// A corruption.
    pub tamper: Tamper,
    /// Sent this long after the request arrived.
    pub delay: Duration,
    /// Sent this many times.
    pub copies: usize,
    /// Sent from another port than the server's.
    pub from_other_port: bool,
    /// Signed with this secret instead of the server's.
    pub secret: Option<Vec<u8>>,
}

impl ReplySpec {
    /// A correct reply with `code`, a Message-Authenticator first, no attribute.
    pub fn code(code: u8) -> Self {
        Self {
            code,
            attributes: Vec::new(),
            message_authenticator: MessageAuthenticator::First,
            tamper: Tamper::None,
            delay: Duration::ZERO,
            copies: 1,
            from_other_port: false,
            secret: None,
        }
    }
    /// A correct Access-Accept.
    pub fn accept() -> Self {
        Self::code(2)
    }
    /// A correct Access-Accept with Service-Type = Administrative-User.
    pub fn accept_admin() -> Self {
        Self::accept().attribute(6, 6u32.to_be_bytes())
    }
    /// A correct Access-Reject.
    pub fn reject() -> Self {
        Self::code(3)
    }
    /// A correct Access-Challenge (with a State).
    pub fn challenge() -> Self {
        Self::code(11).attribute(24, b"state-1".to_vec())
    }
    /// Adds an attribute.
    pub fn attribute(mut self, t: u8, value: impl Into<Vec<u8>>) -> Self {
        self.attributes.push((t, value.into()));
        self
    }
    /// Sets the Message-Authenticator.
    pub fn message_authenticator(mut self, ma: MessageAuthenticator) -> Self {
        self.message_authenticator = ma;
        self
    }
    /// Sets the corruption.
    pub fn tamper(mut self, tamper: Tamper) -> Self {
        self.tamper = tamper;
        self
    }
    /// Sets the delay.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
    /// Sets the number of copies.
    pub fn copies(mut self, copies: usize) -> Self {
        self.copies = copies;
        self
    }
    /// Sends from another port.
    pub fn from_other_port(mut self) -> Self {
        self.from_other_port = true;
        self
    }
    /// Signs with another secret.
    pub fn signed_with(mut self, secret: &[u8]) -> Self {
        self.secret = Some(secret.to_vec());
        self
    }

    /// The datagram answering `request`, signed with `secret` (or the spec's own).
    pub fn encode(&self, request: &Received, secret: &[u8]) -> Vec<u8> {
        let secret = self.secret.as_deref().unwrap_or(secret);
        let identifier = match self.tamper {
            Tamper::Identifier => request.identifier().wrapping_add(1),
            _ => request.identifier(),
        };
        let mut attrs: Vec<u8> = Vec::new();
        let mut ma_offsets = Vec::new();
        let mut push_ma = |attrs: &mut Vec<u8>, len: u8| {
            ma_offsets.push((20 + attrs.len() + 2, usize::from(len)));
            attrs.push(80);
            attrs.push(len + 2);
            attrs.extend(std::iter::repeat_n(0, usize::from(len)));
        };
        use MessageAuthenticator as M;
        match self.message_authenticator {
            M::First | M::Wrong | M::Doubled => push_ma(&mut attrs, 16),
            M::BadLength => push_ma(&mut attrs, 8),
            M::Absent | M::Last => {}
        }
        for (t, v) in &self.attributes {
            attrs.push(*t);
            attrs.push(u8::try_from(v.len() + 2).expect("attribute value of at most 253 bytes"));
            attrs.extend_from_slice(v);
        }
        match self.message_authenticator {
            M::Last | M::Doubled => push_ma(&mut attrs, 16),
            _ => {}
        }
        match self.tamper {
            Tamper::BadAttributeLength => attrs.extend_from_slice(&[18, 40, b'x', b'y']),
            Tamper::ZeroLengthAttribute => attrs.extend_from_slice(&[18, 1]),
            _ => {}
        }
        let len = u16::try_from(20 + attrs.len()).expect("reply under 64 KiB");
        let mut packet = vec![self.code, identifier];
        packet.extend_from_slice(&len.to_be_bytes());
        packet.extend_from_slice(&request.authenticator());
        packet.extend_from_slice(&attrs);
        // Message-Authenticator: over the packet with the Request Authenticator in the header
        // and every Message-Authenticator zeroed.
        if !ma_offsets.is_empty() {
            let mut mac = hmac_md5(secret, &packet);
            if self.message_authenticator == M::Wrong {
                mac[0] ^= 0x80;
            }
            for &(at, len) in &ma_offsets {
                packet[at..at + len].copy_from_slice(&mac[..len]);
            }
        }
        // Response Authenticator: MD5(Code+ID+Length+RequestAuth+Attributes+Secret).
        let response = md5(&[
            &packet[..4],
            &request.authenticator(),
            &packet[20..],
            secret,
        ]);
        packet[4..20].copy_from_slice(&response);
        match self.tamper {
            Tamper::ResponseAuthenticator => packet[10] ^= 0x04,
            Tamper::Truncated => {
                packet.pop();
            }
            Tamper::LengthOver4096 => {
                packet[2..4].copy_from_slice(&4097u16.to_be_bytes());
                packet.resize(4097, 0);
            }
            Tamper::LengthUnder20 => packet[2..4].copy_from_slice(&19u16.to_be_bytes()),
            Tamper::Padding(n) => packet.extend(std::iter::repeat_n(0xa5, n)),
            _ => {}
        }
        packet
    }
}

type Responder = Box<dyn Fn(&Received) -> Vec<ReplySpec> + Send + Sync>;

struct HostileState {
    secret: Vec<u8>,
    received: Mutex<Vec<Received>>,
    responder: Mutex<Responder>,
    socket: Arc<UdpSocket>,
    other: Arc<UdpSocket>,
}

/// A RADIUS server of our own on 127.0.0.1, answering as the test scripts it. Records every
/// datagram it receives. Stops when dropped. Start it inside a tokio runtime.
pub struct HostileRadius {
    state: Arc<HostileState>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl fmt::Debug for HostileRadius {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostileRadius")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// A UDP socket on 127.0.0.1 with a receive buffer of 4 MiB (as far as `net.core.rmem_max`
/// allows): hundreds of requests sent at once must not overflow it while the server's task
/// waits for a CPU on a loaded machine.
fn bind_loopback() -> UdpSocket {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .expect("a UDP socket");
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .expect("bind a UDP socket on 127.0.0.1");
    s.set_nonblocking(true).expect("non-blocking socket");
    UdpSocket::from_std(s.into()).expect("register the socket with tokio (inside a runtime)")
}

impl HostileRadius {
    /// Starts a server with `secret` that answers nothing until told.
    pub fn start(secret: &[u8]) -> Self {
        let socket = Arc::new(bind_loopback());
        let other = Arc::new(bind_loopback());
        let addr = socket.local_addr().expect("local address");
        let state = Arc::new(HostileState {
            secret: secret.to_vec(),
            received: Mutex::new(Vec::new()),
            responder: Mutex::new(Box::new(|_| Vec::new())),
            socket,
            other,
        });
        let task = tokio::spawn(hostile_loop(state.clone()));
        Self { state, addr, task }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers every request with `replies`, in order (each with its own delay).
    pub fn set_replies(&self, replies: Vec<ReplySpec>) {
        self.set_responder(move |_| replies.clone());
    }

    /// Answers each request with what `f` says.
    pub fn set_responder(&self, f: impl Fn(&Received) -> Vec<ReplySpec> + Send + Sync + 'static) {
        *self
            .state
            .responder
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Box::new(f);
    }

    /// Answers nothing (reads and records only).
    pub fn silent(&self) {
        self.set_replies(Vec::new());
    }

    /// Every datagram received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.state
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until at least `n` datagrams have been received (panics after `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the hostile RADIUS server received {} datagrams, not {n}, in {timeout:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Sends `spec` as a reply to `request` now (ignoring its delay).
    pub async fn reply_to(&self, request: &Received, spec: &ReplySpec) {
        send_reply(&self.state, request, spec).await;
    }
}

impl Drop for HostileRadius {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn send_reply(state: &HostileState, request: &Received, spec: &ReplySpec) {
    let bytes = spec.encode(request, &state.secret);
    let socket = if spec.from_other_port {
        &state.other
    } else {
        &state.socket
    };
    for _ in 0..spec.copies {
        let _ = socket.send_to(&bytes, request.from).await;
    }
}

async fn hostile_loop(state: Arc<HostileState>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = state.socket.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let received = Received {
            at: Instant::now(),
            from,
            bytes: buf[..n].to_vec(),
        };
        state
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(received.clone());
        let specs = (state
            .responder
            .lock()
            .unwrap_or_else(PoisonError::into_inner))(&received);
        for spec in specs {
            if spec.delay.is_zero() {
                send_reply(&state, &received, &spec).await;
            } else {
                let state = state.clone();
                let received = received.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(spec.delay).await;
                    send_reply(&state, &received, &spec).await;
                });
            }
        }
    }
}

/// A UDP socket on 127.0.0.1 that reads and records every datagram and never answers: a
/// RADIUS server that is down without an ICMP error. Start it inside a tokio runtime; stops
/// when dropped.
pub struct SilentRadius {
    inner: HostileRadius,
}

impl fmt::Debug for SilentRadius {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SilentRadius")
            .field("addr", &self.inner.addr)
            .finish()
    }
}

impl SilentRadius {
    /// Binds and starts reading.
    pub fn start() -> Self {
        Self {
            inner: HostileRadius::start(b"unused"),
        }
    }
    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr()
    }
    /// Every datagram received so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.received()
    }
}
