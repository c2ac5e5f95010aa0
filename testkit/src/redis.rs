//! Real `redis-server` processes for tests: a standalone server and a Redis Cluster, each on
//! free loopback ports in a temporary directory, never the machine's shared Redis.
//!
//! The binaries come from Debian's `redis-server` package (`apt-get install redis-server`);
//! without them every function here panics saying so — tests never skip.
//!
//! Each server runs under a small `sh` supervisor that holds the other end of a pipe from this
//! process: when the test process exits, however it exits, the supervisor kills the server and
//! removes its directory. So a server kept in a `static` (see [`RedisServer::shared`]) does not
//! outlive its test binary.
//!
//! ```no_run
//! let server = testkit::redis::RedisServer::start();
//! assert_eq!(server.cli(&["PING"]), "PONG");
//! server.stop();
//! server.restart();
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a server may take to answer its first `PING`.
const READY_DEADLINE: Duration = Duration::from_secs(5);
/// How long a cluster may take to agree on its slots.
const CLUSTER_DEADLINE: Duration = Duration::from_secs(30);
/// How long one `redis-cli` run may take.
const CLI_DEADLINE: Duration = Duration::from_secs(20);

/// The supervisor: starts the server from its config file, and on request stops (SIGKILL),
/// starts again, pauses (SIGSTOP) or resumes it. At end of input it kills the server and
/// removes the directory.
const SUPERVISOR: &str = r#"
srv="$1"; conf="$2"; dir="$3"; pid=""
start() { "$srv" "$conf" </dev/null >/dev/null 2>&1 & pid=$!; echo "started $pid"; }
start
while IFS= read -r cmd; do
  case "$cmd" in
    stop) kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; echo "stopped" ;;
    start) start ;;
    pause) kill -STOP "$pid" 2>/dev/null; echo "paused" ;;
    resume) kill -CONT "$pid" 2>/dev/null; echo "resumed" ;;
    *) echo "unknown" ;;
  esac
done
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
if [ -n "$dir" ] && [ -d "$dir" ]; then rm -rf "$dir"; fi
"#;

fn require(bin: &str) {
    match Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{bin}` is not installed: these tests need a real Redis; install it with \
             `apt-get install redis-server` (which brings redis-server, redis-cli and redis-benchmark)"
        ),
        Err(e) => panic!("cannot run `{bin}`: {e}"),
    }
}

/// Options of a standalone server.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisOptions {
    /// `appendonly yes` with `appendfsync always`: every acknowledged write survives a kill
    /// (default: no persistence at all).
    pub appendonly: bool,
    cluster: bool,
    tls: bool,
}

impl RedisOptions {
    /// `appendonly yes` with `appendfsync always`.
    pub fn persistent() -> Self {
        Self {
            appendonly: true,
            ..Self::default()
        }
    }

    /// A TLS port besides the plain one, with a certificate for `localhost` and `127.0.0.1`
    /// signed by a CA made for this server (see [`RedisServer::tls_url`],
    /// [`RedisServer::tls_ca_pem`]). Needs the `openssl` command.
    pub fn tls() -> Self {
        Self {
            tls: true,
            ..Self::default()
        }
    }
}

/// Makes a CA and a server certificate for `localhost` / `127.0.0.1` in `dir` with the
/// `openssl` command: `ca.pem`, `server.pem`, `server.key`.
fn make_certificates(dir: &Path) {
    require("openssl");
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=aaa test CA",
        ],
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    ];
    for args in steps {
        let mut cmd = Command::new("openssl");
        cmd.args(args).current_dir(dir);
        let (status, _, err) = run(cmd, None, CLI_DEADLINE);
        assert!(
            status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&err)
        );
    }
}

/// A free loopback port (and, for cluster nodes, a free bus port 10000 above it).
fn free_port(cluster: bool) -> u16 {
    for _ in 0..200 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
        let port = l.local_addr().expect("local address").port();
        if !cluster {
            return port;
        }
        if port <= 55_535 && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port found");
}

/// The start of every key name of the table of `prefix`: its hash tag and the store's layout
/// version (`{prefix}v3:`).
pub fn base(prefix: &str) -> String {
    format!("{{{prefix}}}v3:")
}

/// The name of the hash that holds the session under `key` in the table of `prefix`: bucket
/// `(first two bytes) mod 4096` (the store's layout, written out here on its own so that tests
/// check it rather than reuse it).
pub fn session_bucket(prefix: &str, key: &aaa_core::CookieHash) -> Vec<u8> {
    let &[b0, b1, ..] = key.as_bytes();
    format!("{}s:{}", base(prefix), u16::from_be_bytes([b0, b1]) % 4096).into_bytes()
}

/// The keys a table of `prefix` must hold for `sessions` (key, id, username): their session
/// buckets and their ids' buckets (the same bucket for the ids the store makes), the bucket
/// index and, if the table keeps a user index (`users`: once a create with a per-user limit
/// asked for it), their users' hashes; sorted, without repeats.
pub fn layout<'a>(
    prefix: &str,
    sessions: impl IntoIterator<Item = (aaa_core::CookieHash, u64, &'a str)>,
    users: bool,
) -> Vec<Vec<u8>> {
    let base = base(prefix);
    let mut want = vec![format!("{base}due").into_bytes()];
    for (key, id, username) in sessions {
        want.push(session_bucket(prefix, &key));
        want.push(format!("{base}s:{}", id % 4096).into_bytes());
        if users {
            want.push(format!("{base}u:{username}").into_bytes());
        }
    }
    want.sort();
    want.dedup();
    want
}

/// The name of the mark a removal leaves for the session under `key` (it expires by itself).
pub fn removal_mark(prefix: &str, key: &aaa_core::CookieHash) -> Vec<u8> {
    [
        format!("{}g:", base(prefix)).as_bytes(),
        key.as_bytes().as_slice(),
    ]
    .concat()
}

/// `keys` of a table of `prefix` without those that keep the answers of removing calls
/// (`{P}v3:r:<nonce><subject>`: their names are random), and how many of those there were.
pub fn without_answers(prefix: &str, keys: Vec<Vec<u8>>) -> (Vec<Vec<u8>>, usize) {
    let answer = format!("{}r:", base(prefix)).into_bytes();
    let (answers, rest): (Vec<_>, Vec<_>) = keys
        .into_iter()
        .partition(|k| k.len() > answer.len() + 16 && k.starts_with(&answer));
    (rest, answers.len())
}

/// A unique key prefix for one test: several tests can share one server.
pub fn unique_prefix(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tag: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(24)
        .collect();
    format!(
        "t-{tag}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Sends one command to `127.0.0.1:port` and returns the reply's payload (simple string, error
/// text prefixed with `-`, or bulk string).
fn resp_command(port: u16, args: &[&str]) -> std::io::Result<Vec<u8>> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(300))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut req = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        req.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    s.write_all(&req)?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end();
    match line.as_bytes().first() {
        Some(b'+') | Some(b'-') | Some(b':') => Ok(line.as_bytes().to_vec()),
        Some(b'$') => {
            let len: usize = line[1..].parse().map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "bad bulk length")
            })?;
            let mut buf = vec![0; len + 2];
            r.read_exact(&mut buf)?;
            buf.truncate(len);
            Ok(buf)
        }
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unexpected reply {line:?}"),
        )),
    }
}

/// Whether process `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// The last lines of a log file, for failure messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Runs `cmd` with `input` on stdin; kills it after `limit`.
fn run(mut cmd: Command, input: Option<&[u8]>, limit: Duration) -> (ExitStatus, Vec<u8>, Vec<u8>) {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn a redis tool");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(input).expect("write to redis-cli");
    }
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for a redis tool") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    (
        status,
        out_reader.join().unwrap_or_default(),
        err_reader.join().unwrap_or_default(),
    )
}

/// Quotes one argument for `redis-cli` reading commands from its input: every byte that is not
/// alphanumeric as `\xHH`, inside double quotes, so any binary key or value passes.
pub fn quote_arg(arg: &[u8]) -> String {
    let mut s = String::with_capacity(arg.len() * 4 + 2);
    s.push('"');
    for &b in arg {
        if b.is_ascii_alphanumeric() {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s.push('"');
    s
}

struct Supervisor {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pid: u32,
    running: bool,
}

impl Supervisor {
    fn send(&mut self, cmd: &str) -> String {
        let stdin = self.stdin.as_mut().expect("supervisor input open");
        writeln!(stdin, "{cmd}").expect("write to the redis supervisor");
        stdin.flush().expect("flush to the redis supervisor");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read from the redis supervisor");
        line.trim().to_owned()
    }
    fn read_started(&mut self) -> u32 {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read from the redis supervisor");
        line.trim()
            .strip_prefix("started ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("redis supervisor said {line:?}"))
    }
}

/// Why a server did not come up.
enum StartError {
    PortInUse,
    Failed(String),
}

/// A `redis-server` on a free loopback port, in its own temporary directory. Dropping it kills
/// the server and removes the directory.
pub struct RedisServer {
    port: u16,
    tls_port: Option<u16>,
    dir: PathBuf,
    options: RedisOptions,
    sup: Mutex<Supervisor>,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl RedisServer {
    /// Starts a server without persistence and waits until it answers.
    pub fn start() -> Self {
        Self::start_with(RedisOptions::default())
    }

    /// Starts a server with `options` and waits until it answers.
    pub fn start_with(options: RedisOptions) -> Self {
        require("redis-server");
        require("redis-cli");
        let mut last = String::new();
        for _ in 0..10 {
            let port = free_port(options.cluster);
            match Self::try_start(port, options) {
                Ok(server) => return server,
                Err(StartError::PortInUse) => {
                    last = format!("port {port} was taken");
                }
                Err(StartError::Failed(msg)) => panic!("{msg}"),
            }
        }
        panic!("redis-server could not start on a free port: {last}");
    }

    /// One server per test binary, started on first use. Use a [`unique_prefix`] per test.
    /// Tests that stop or restart a server need their own.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<RedisServer> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    fn try_start(port: u16, options: RedisOptions) -> Result<Self, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("aaa-redis-")
            .tempdir()
            .expect("create a temporary directory")
            .keep();
        let mut conf = format!(
            "port {port}\nbind 127.0.0.1\ndir \"{dir}\"\nlogfile \"{dir}/redis.log\"\n\
             save \"\"\ndaemonize no\nappendonly {aof}\nappendfsync always\n",
            dir = dir.display(),
            aof = if options.appendonly { "yes" } else { "no" },
        );
        let tls_port = options.tls.then(|| free_port(false));
        if let Some(tls_port) = tls_port {
            make_certificates(&dir);
            conf.push_str(&format!(
                "tls-port {tls_port}\ntls-cert-file \"{d}/server.pem\"\n\
                 tls-key-file \"{d}/server.key\"\ntls-ca-cert-file \"{d}/ca.pem\"\n\
                 tls-auth-clients no\n",
                d = dir.display()
            ));
        }
        if options.cluster {
            conf.push_str(
                "cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout 2000\n",
            );
        }
        let conf_path = dir.join("redis.conf");
        std::fs::write(&conf_path, conf).expect("write redis.conf");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("sh")
            .arg("redis-server")
            .arg(&conf_path)
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh for redis-server");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut sup = Supervisor {
            child,
            stdin,
            stdout,
            pid: 0,
            running: true,
        };
        sup.pid = sup.read_started();
        let server = Self {
            port,
            tls_port,
            dir,
            options,
            sup: Mutex::new(sup),
        };
        match server.wait_ready() {
            Ok(()) => Ok(server),
            Err(e) => Err(e), // dropping `server` kills it and removes its directory
        }
    }

    fn wait_ready(&self) -> Result<(), StartError> {
        let pid = self.sup().pid;
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(reply) = resp_command(self.port, &["PING"])
                && reply == b"+PONG"
            {
                // Make sure it is our server that answers on this port.
                let info = resp_command(self.port, &["INFO", "server"]).unwrap_or_default();
                let want = format!("process_id:{pid}\r\n");
                if String::from_utf8_lossy(&info).contains(&want) {
                    return Ok(());
                }
                return Err(StartError::PortInUse);
            }
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            if log.contains("Address already in use") {
                return Err(StartError::PortInUse);
            }
            if !alive(pid) || Instant::now() > deadline {
                return Err(StartError::Failed(format!(
                    "redis-server on port {} did not answer PING within {READY_DEADLINE:?}; \
                     its log {}:\n{}",
                    self.port,
                    self.log_path().display(),
                    log_tail(&self.log_path())
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn sup(&self) -> std::sync::MutexGuard<'_, Supervisor> {
        self.sup.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// `rediss://localhost:TLS_PORT/0`, for a server started with [`RedisOptions::tls`].
    pub fn tls_url(&self) -> Option<String> {
        self.tls_port.map(|p| format!("rediss://localhost:{p}/0"))
    }
    /// The CA certificate (PEM) that signed the server's, for a server started with
    /// [`RedisOptions::tls`].
    pub fn tls_ca_pem(&self) -> Option<Vec<u8>> {
        self.tls_port
            .map(|_| std::fs::read(self.dir.join("ca.pem")).expect("read ca.pem"))
    }
    /// The server's directory (data files, `redis.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }
    /// The options it was started with.
    pub fn options(&self) -> RedisOptions {
        self.options
    }

    /// Kills the server (SIGKILL: as a crash) and waits until its port refuses connections.
    pub fn stop(&self) {
        let mut sup = self.sup();
        if !sup.running {
            return;
        }
        let said = sup.send("stop");
        assert_eq!(said, "stopped", "redis supervisor");
        sup.running = false;
        drop(sup);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
            Duration::from_millis(100),
        )
        .is_ok()
        {
            assert!(
                Instant::now() < deadline,
                "port {} still open after the kill",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts the server again on the same port, in the same directory (stopping it first if
    /// it runs), and waits until it answers.
    pub fn restart(&self) {
        self.stop();
        let mut sup = self.sup();
        let stdin = sup.stdin.as_mut().expect("supervisor input open");
        writeln!(stdin, "start").expect("write to the redis supervisor");
        stdin.flush().expect("flush to the redis supervisor");
        sup.pid = sup.read_started();
        sup.running = true;
        drop(sup);
        match self.wait_ready() {
            Ok(()) => {}
            Err(StartError::PortInUse) => panic!(
                "redis-server could not restart: port {} was taken meanwhile",
                self.port
            ),
            Err(StartError::Failed(msg)) => panic!("{msg}"),
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        assert_eq!(self.sup().send("pause"), "paused");
    }
    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        assert_eq!(self.sup().send("resume"), "resumed");
    }

    /// Runs `redis-cli -p PORT args…` and returns its output, trimmed. Panics if redis-cli
    /// fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.arg("-p").arg(self.port.to_string()).args(args);
        let (status, out, err) = run(cmd, None, CLI_DEADLINE);
        assert!(
            status.success(),
            "redis-cli {args:?} failed: {}",
            String::from_utf8_lossy(&err)
        );
        String::from_utf8_lossy(&out).trim().to_owned()
    }

    /// Runs one command through `redis-cli -p PORT` with binary-safe arguments (fed on its
    /// input, each quoted with [`quote_arg`]) and returns its raw output.
    pub fn cli_bytes(&self, args: &[&[u8]]) -> Vec<u8> {
        let mut line = args
            .iter()
            .map(|a| quote_arg(a))
            .collect::<Vec<_>>()
            .join(" ");
        line.push('\n');
        let mut cmd = Command::new("redis-cli");
        cmd.arg("-p").arg(self.port.to_string());
        let (status, out, err) = run(cmd, Some(line.as_bytes()), CLI_DEADLINE);
        assert!(
            status.success(),
            "redis-cli failed: {}",
            String::from_utf8_lossy(&err)
        );
        out
    }

    /// One field of `INFO`, e.g. `info_field("memory", "used_memory")`.
    pub fn info_field(&self, section: &str, field: &str) -> Option<String> {
        let info = self.cli(&["INFO", section]);
        info.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let mut sup = self.sup();
        // End of input: the supervisor kills the server and removes the directory.
        drop(sup.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match sup.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = sup.child.kill();
                    let _ = sup.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

/// A Redis Cluster of masters (and, with [`start_with_replicas`](Self::start_with_replicas),
/// replicas), each a [`RedisServer`] with `cluster-enabled yes`, created with
/// `redis-cli --cluster create`.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` nodes (at least 3), creates the cluster, and waits until every node
    /// reports `cluster_state:ok`.
    pub fn start(masters: usize) -> Self {
        Self::start_with_replicas(masters, 0)
    }

    /// Starts `masters` nodes (at least 3) with `replicas` replicas each, creates the cluster,
    /// and waits until every node reports `cluster_state:ok`. A master that stops is replaced
    /// by its replica after the cluster node timeout (2 s here).
    pub fn start_with_replicas(masters: usize, replicas: usize) -> Self {
        assert!(masters >= 3, "a Redis Cluster needs at least 3 masters");
        let nodes: Vec<RedisServer> = (0..masters * (1 + replicas))
            .map(|_| {
                RedisServer::start_with(RedisOptions {
                    cluster: true,
                    ..RedisOptions::default()
                })
            })
            .collect();
        let mut cmd = Command::new("redis-cli");
        cmd.arg("--cluster").arg("create");
        for n in &nodes {
            cmd.arg(format!("127.0.0.1:{}", n.port()));
        }
        cmd.arg("--cluster-replicas")
            .arg(replicas.to_string())
            .arg("--cluster-yes");
        let (status, out, err) = run(cmd, None, CLUSTER_DEADLINE);
        assert!(
            status.success(),
            "redis-cli --cluster create failed:\n{}\n{}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&err)
        );
        let cluster = Self { nodes };
        cluster.wait_ok();
        cluster
    }

    /// One 3-master cluster per test binary, started on first use. Use a [`unique_prefix`] per
    /// test.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(|| Self::start(3))
    }

    fn wait_ok(&self) {
        let deadline = Instant::now() + CLUSTER_DEADLINE;
        let want_nodes = format!("cluster_known_nodes:{}", self.nodes.len());
        loop {
            let ok = self.nodes.iter().all(|n| {
                let info = resp_command(n.port(), &["CLUSTER", "INFO"]).unwrap_or_default();
                let info = String::from_utf8_lossy(&info);
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && info.contains(&want_nodes)
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not reach cluster_state:ok within {CLUSTER_DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,…`.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The running master that serves `slot` (as the nodes themselves report it), if any.
    pub fn master_of(&self, slot: u16) -> Option<&RedisServer> {
        self.nodes.iter().find(|n| Self::serves(n, slot))
    }

    /// Whether node `n` says it serves `slot` itself (`CLUSTER NODES`: it is `myself,master`
    /// with a range holding the slot).
    fn serves(n: &RedisServer, slot: u16) -> bool {
        let Ok(out) = resp_command(n.port(), &["CLUSTER", "NODES"]) else {
            return false;
        };
        String::from_utf8_lossy(&out).lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let myself = fields.get(2).is_some_and(|f| f.contains("myself"));
            let master = fields.get(2).is_some_and(|f| f.contains("master"));
            myself
                && master
                && fields.iter().skip(8).any(|range| {
                    let mut parts = range.splitn(2, '-');
                    let lo = parts.next().and_then(|p| p.parse::<u16>().ok());
                    let hi = parts.next().and_then(|p| p.parse::<u16>().ok()).or(lo);
                    matches!((lo, hi), (Some(lo), Some(hi)) if lo <= slot && slot <= hi)
                })
        })
    }

    /// Runs `redis-cli -c -p PORT args…` against the first node (following redirections).
    pub fn cli(&self, args: &[&str]) -> String {
        let first = self.nodes.first().expect("a cluster has nodes");
        let mut cmd = Command::new("redis-cli");
        cmd.arg("-c")
            .arg("-p")
            .arg(first.port().to_string())
            .args(args);
        let (status, out, err) = run(cmd, None, CLI_DEADLINE);
        assert!(
            status.success(),
            "redis-cli {args:?} failed: {}",
            String::from_utf8_lossy(&err)
        );
        String::from_utf8_lossy(&out).trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_is_binary_safe() {
        assert_eq!(quote_arg(b"ab1"), "\"ab1\"");
        assert_eq!(
            quote_arg(b"{p}s:\x00\xff"),
            "\"\\x7bp\\x7ds\\x3a\\x00\\xff\""
        );
    }

    #[test]
    fn server_starts_stops_restarts() {
        let s = RedisServer::start();
        assert_eq!(s.cli(&["PING"]), "PONG");
        s.cli_bytes(&[b"SET", b"k\x00\x01", b"v\r\n\"x"]);
        assert_eq!(s.cli_bytes(&[b"STRLEN", b"k\x00\x01"]), b"5\n".to_vec());
        s.stop();
        assert!(resp_command(s.port(), &["PING"]).is_err());
        s.restart();
        assert_eq!(s.cli(&["PING"]), "PONG");
        // No persistence by default: the key is gone.
        assert_eq!(s.cli(&["EXISTS", "k"]), "0");
        let dir = s.dir().to_owned();
        drop(s);
        assert!(!dir.exists(), "the directory is removed");
    }

    #[test]
    fn appendonly_survives_a_kill() {
        let s = RedisServer::start_with(RedisOptions::persistent());
        s.cli(&["SET", "k", "v"]);
        s.stop();
        s.restart();
        assert_eq!(s.cli(&["GET", "k"]), "v");
    }

    #[test]
    fn prefixes_are_unique() {
        let a = unique_prefix("x");
        let b = unique_prefix("x");
        assert_ne!(a, b);
        assert!(a.len() <= 64 && !a.contains(['{', '}']));
    }
}
