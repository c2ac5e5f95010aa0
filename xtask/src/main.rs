//! The project's task runner (`cargo xtask <task>`, see matklad/cargo-xtask).
//!
//! - `test`: makes sure the servers the tests start exist (installs their Debian packages when
//!   missing and permitted), then runs every test of the workspace.
//! - `ci`: `cargo fmt --check`, clippy with `-D warnings`, `cargo doc` with warnings denied,
//!   then `test`. This is what `.ci/run` runs.
//! - `bench`: builds and runs the benchmarks (release), printing a markdown table and writing
//!   `target/bench/report.json`.
//! - `fuzz [--seconds N]`: runs each cargo-fuzz target of `fuzz/` for N seconds (default 60) and
//!   prints the executions and crashes of each (installs cargo-fuzz when missing and permitted).
//! - `soak [--minutes N]`: builds and runs the soak test (release) for N minutes (default 10):
//!   load from several processes against Redis and FreeRADIUS under injected faults, then the
//!   books; `ci` runs it for one minute after the tests.
//!
//! Installing packages is permitted when running as root with `apt-get` available, unless
//! `AAA_NO_INSTALL=1`; otherwise a missing package is a loud failure naming the command that
//! installs it. Tests never skip for a missing server.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// A Debian package and the binaries the project needs from it.
struct Package {
    name: &'static str,
    binaries: &'static [&'static str],
    why: &'static str,
}

/// What `cargo xtask test` needs on the machine: the servers the tests start themselves.
const TEST_PACKAGES: &[Package] = &[
    Package {
        name: "redis-server",
        binaries: &["redis-server"],
        why: "testkit starts its own Redis servers and a Redis Cluster",
    },
    Package {
        name: "redis-tools",
        binaries: &["redis-cli"],
        why: "testkit creates the Redis Cluster and inspects keys with redis-cli",
    },
    Package {
        name: "freeradius",
        binaries: &["freeradius"],
        why: "testkit starts its own FreeRADIUS servers",
    },
    Package {
        name: "openssl",
        binaries: &["openssl"],
        why: "the rediss:// test makes its own certificate authority",
    },
];

/// What `cargo xtask bench` needs on top: the reference tools the rows compare against.
const BENCH_PACKAGES: &[Package] = &[
    Package {
        name: "argon2",
        binaries: &["argon2"],
        why: "the reference argon2 CLI of the argon2id verify row",
    },
    Package {
        name: "redis-tools",
        binaries: &["redis-benchmark"],
        why: "the redis-benchmark anchor of the Redis rows",
    },
    Package {
        name: "freeradius-utils",
        binaries: &["radclient"],
        why: "the radclient anchor of the RADIUS rows",
    },
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = args.get(1..).unwrap_or_default();
    let root = project_root();
    let result = match task.as_str() {
        "test" => test(&root, rest),
        "ci" => ci(&root),
        "bench" => bench(&root, rest),
        "fuzz" => fuzz(&root, rest),
        "soak" => soak(&root, rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown task {other:?}\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <task>
  test [-- <cargo test args>]   every test (installs test servers when missing and permitted)
  ci                            fmt --check, clippy -D warnings, doc -D warnings, test, soak 1 min
  bench [--quick]               benchmarks against their anchors; target/bench/report.json
  fuzz [--seconds N]            each cargo-fuzz target for N seconds (default 60)
  soak [--minutes N]            load from several processes under faults, then the books (default 10)";

fn project_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from("xtask"), PathBuf::from);
    manifest
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run(root: &Path, mut cmd: Command, what: &str) -> Result<(), String> {
    cmd.current_dir(root);
    eprintln!("xtask: {what}");
    let started = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("{what}: could not start: {e}"))?;
    eprintln!("xtask: {what}: {:.1} s", started.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

fn on_path(binary: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .any(|dir| dir.join(binary).is_file())
}

fn install_permitted() -> bool {
    if std::env::var("AAA_NO_INSTALL").is_ok_and(|v| v == "1") {
        return false;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    root && on_path("apt-get")
}

/// Makes sure every package's binaries exist, installing the packages when permitted.
fn ensure_packages(packages: &[Package]) -> Result<(), String> {
    let missing: Vec<&Package> = packages
        .iter()
        .filter(|p| !p.binaries.iter().all(|b| on_path(b)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|p| p.name).collect();
    let install = format!("apt-get update && apt-get install -y {}", names.join(" "));
    for p in &missing {
        eprintln!(
            "xtask: missing {} ({}): {}",
            p.binaries.join(", "),
            p.name,
            p.why
        );
    }
    if !install_permitted() {
        return Err(format!(
            "required packages are missing; install them with: {install}"
        ));
    }
    eprintln!("xtask: installing: {install}");
    let status = Command::new("sh")
        .args(["-c", &format!("DEBIAN_FRONTEND=noninteractive {install}")])
        .status()
        .map_err(|e| format!("could not run apt-get: {e}"))?;
    let still: Vec<&str> = missing
        .iter()
        .flat_map(|p| p.binaries.iter().copied())
        .filter(|b| !on_path(b))
        .collect();
    if !status.success() || !still.is_empty() {
        return Err(format!(
            "installing {} failed (still missing: {}); run: {install}",
            names.join(" "),
            still.join(", ")
        ));
    }
    Ok(())
}

fn test(root: &Path, extra: &[String]) -> Result<(), String> {
    ensure_packages(TEST_PACKAGES)?;
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--all-features", "--no-fail-fast"]);
    cmd.args(extra);
    run(root, cmd, "cargo test --workspace --all-features")
}

fn ci(root: &Path) -> Result<(), String> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run(root, fmt, "cargo fmt --all --check")?;
    // The fuzz targets are a workspace of their own (cargo-fuzz's layout): checked here too, so
    // a change to the `__fuzz` entry points cannot break them unseen.
    let mut fmt = cargo();
    fmt.args(["fmt", "--manifest-path", "fuzz/Cargo.toml", "--check"]);
    run(root, fmt, "cargo fmt (fuzz targets) --check")?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]);
    run(
        root,
        clippy,
        "cargo clippy --workspace --all-targets --all-features -- -D warnings",
    )?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--manifest-path",
        "fuzz/Cargo.toml",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(root, clippy, "cargo clippy (fuzz targets) -- -D warnings")?;

    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps", "--all-features"]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    run(
        root,
        doc,
        "cargo doc --workspace --no-deps (warnings denied)",
    )?;

    test(root, &[])?;

    soak(root, &["--minutes".to_owned(), "1".to_owned()])
}

fn bench(root: &Path, extra: &[String]) -> Result<(), String> {
    ensure_packages(TEST_PACKAGES)?;
    ensure_packages(BENCH_PACKAGES)?;
    let out = root.join("target").join("bench").join("report.json");
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "aaa-bench",
        "--",
        "--out",
    ]);
    cmd.arg(&out);
    cmd.args(extra);
    run(root, cmd, "benchmarks (release)")
}

/// The value of the one flag `flag` a command takes (a whole number ≥ 1), or `default`.
fn count_flag(extra: &[String], command: &str, flag: &str, default: u64) -> Result<u64, String> {
    let mut value = default;
    let mut args = extra.iter();
    while let Some(a) = args.next() {
        if a == flag {
            value = args
                .next()
                .and_then(|n| n.parse().ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{flag} needs a whole number of at least 1"))?;
        } else {
            return Err(format!("unknown {command} argument {a:?}"));
        }
    }
    Ok(value)
}

fn soak(root: &Path, extra: &[String]) -> Result<(), String> {
    let minutes = count_flag(extra, "soak", "--minutes", 10)?;
    ensure_packages(TEST_PACKAGES)?;
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "aaa-soak",
        "--",
        "--minutes",
    ]);
    cmd.arg(minutes.to_string());
    run(root, cmd, &format!("soak for {minutes} min (release)"))
}

/// The cargo-fuzz targets of `fuzz/`.
const FUZZ_TARGETS: &[&str] = &["radius_reply", "account_file", "redis_value", "config"];

fn fuzz(root: &Path, extra: &[String]) -> Result<(), String> {
    // At least 1: 0 would make libFuzzer run without end.
    let seconds = count_flag(extra, "fuzz", "--seconds", 60)?;
    let has_cargo_fuzz = cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_cargo_fuzz {
        if !install_permitted() {
            return Err(
                "cargo-fuzz is missing; install it with: cargo install cargo-fuzz --locked".into(),
            );
        }
        let mut install = cargo();
        install.args(["install", "cargo-fuzz", "--locked"]);
        run(root, install, "cargo install cargo-fuzz")?;
    }
    let mut summary = Vec::new();
    for target in FUZZ_TARGETS {
        let mut cmd = cargo();
        cmd.current_dir(root)
            .args(["fuzz", "run", "--fuzz-dir", "fuzz", target, "--"])
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1")
            // libFuzzer needs nightly-only flags; the stable toolchain accepts them this way.
            .env("RUSTC_BOOTSTRAP", "1");
        eprintln!("xtask: fuzzing {target} for {seconds} s");
        let out = cmd.output().map_err(|e| format!("cargo fuzz: {e}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let runs = log
            .lines()
            .filter_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .filter_map(|n| n.trim().parse::<u64>().ok())
            .next_back()
            .unwrap_or(0);
        let crashed = !out.status.success();
        if crashed {
            eprintln!(
                "{}",
                log.lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        summary.push((*target, runs, crashed));
    }
    println!("| fuzz target | executions | crashes |");
    println!("|---|---:|---:|");
    for (t, runs, crashed) in &summary {
        println!("| {t} | {runs} | {} |", u8::from(*crashed));
    }
    if summary.iter().any(|(_, _, c)| *c) {
        Err(
            "a fuzz target crashed: see fuzz/artifacts/ and turn the input into a regression test"
                .into(),
        )
    } else {
        Ok(())
    }
}
