//! The summary tables (markdown, on stdout) and the verdict.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::coordinator::{Books, FaultRecord, Options};
use crate::faults::Action;
use crate::report::{OpStats, RadiusCounters, RadiusSample, WorkerReport};

/// Everything the summary is made of.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) opts: Options,
    pub(crate) durability: String,
    pub(crate) t0_ms: u64,
    pub(crate) load_end_ms: u64,
    pub(crate) faults: Vec<FaultRecord>,
    pub(crate) reports: Vec<Option<WorkerReport>>,
    pub(crate) panics: Vec<String>,
    pub(crate) exits: Vec<String>,
    pub(crate) books: Books,
    pub(crate) radius_dead_time_ms: u64,
    pub(crate) elapsed: Duration,
    pub(crate) hash_params: String,
}

const PRIMARY: usize = 0;
const SECONDARY: usize = 1;

/// The change of a counter of `server` between the first sample at or after `a` and the last
/// at or before `b` (Unix ms); `None` without two such samples.
fn delta(
    samples: &[RadiusSample],
    server: usize,
    a: u64,
    b: u64,
    field: fn(&RadiusCounters) -> u64,
) -> Option<u64> {
    let first = samples.iter().find(|s| s.t_ms >= a)?;
    let last = samples.iter().rev().find(|s| s.t_ms <= b)?;
    if last.t_ms <= first.t_ms {
        return None;
    }
    Some(field(last.servers.get(server)?).saturating_sub(field(first.servers.get(server)?)))
}

fn replies(c: &RadiusCounters) -> u64 {
    c.replies
}

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn kinds(errors: &BTreeMap<String, u64>) -> String {
    if errors.is_empty() {
        return "—".to_owned();
    }
    errors
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// When the primary was out, from the faults carried out.
#[derive(Debug, Default, PartialEq, Eq)]
struct Windows {
    /// [from, to] (Unix ms) of each outage: stopped, or the impostor on its address.
    outages: Vec<(u64, u64)>,
    /// [from, to] of each impostor window.
    hostile: Vec<(u64, u64)>,
    /// When the primary was last back in service.
    back: u64,
}

fn windows(faults: &[FaultRecord]) -> Windows {
    let mut outages = Vec::new();
    let mut hostile = Vec::new();
    let mut stop = None;
    let mut on: Option<(u64, u64)> = None;
    let mut back = 0;
    for f in faults {
        match f.action {
            Action::PrimaryStop => stop = Some(f.end_ms),
            Action::PrimaryStart => {
                if let Some(s) = stop.take() {
                    outages.push((s, f.begin_ms));
                }
                back = back.max(f.end_ms);
            }
            Action::HostileOn => on = Some((f.begin_ms, f.end_ms)),
            Action::HostileOff => {
                if let Some((b, e)) = on.take() {
                    outages.push((b, f.begin_ms));
                    hostile.push((e, f.begin_ms));
                }
                back = back.max(f.end_ms);
            }
            Action::RedisKill | Action::RedisStart => {}
        }
    }
    Windows {
        outages,
        hostile,
        back,
    }
}

/// Prints the summary; `true` if every check passed.
pub(crate) fn print(run: &Run) -> bool {
    let mut out = String::new();
    let o = &run.opts;
    let reports: Vec<&WorkerReport> = run.reports.iter().flatten().collect();
    let _ = writeln!(
        out,
        "\n## aaa soak: {} min, {} workers × {} clients\n",
        o.minutes, o.workers, o.clients
    );
    let _ = writeln!(
        out,
        "Redis: {} · RADIUS: primary and secondary FreeRADIUS, 200 ms initial wait, 2 \
         retransmissions, 600 ms per server, dead time {} s · local accounts: argon2id {} · \
         hang bound 10 s · seed {:#x} · end to end {:.1} s\n",
        run.durability,
        run.radius_dead_time_ms / 1000,
        run.hash_params,
        o.seed,
        run.elapsed.as_secs_f64()
    );

    // Faults.
    let _ = writeln!(out, "### Faults\n");
    let _ = writeln!(out, "| # | at (s) | fault | took (s) | effect |");
    let _ = writeln!(out, "|---:|---:|---|---:|---|");
    let mut last_kill = None;
    let mut last_stop = None;
    let mut last_on = None;
    for (i, f) in run.faults.iter().enumerate() {
        let at = f.begin_ms.saturating_sub(run.t0_ms) as f64 / 1000.0;
        let took = f.end_ms.saturating_sub(f.begin_ms) as f64 / 1000.0;
        let (what, effect) = match f.action {
            Action::RedisKill => {
                last_kill = Some(f.begin_ms);
                ("Redis SIGKILL", String::new())
            }
            Action::RedisStart => (
                "Redis restarted (AOF replayed)",
                last_kill.take().map_or_else(String::new, |k| {
                    format!("down {:.1} s", f.end_ms.saturating_sub(k) as f64 / 1000.0)
                }),
            ),
            Action::PrimaryStop => {
                last_stop = Some(f.begin_ms);
                ("primary FreeRADIUS stopped", String::new())
            }
            Action::PrimaryStart => (
                "primary FreeRADIUS started",
                last_stop.take().map_or_else(String::new, |k| {
                    format!(
                        "stopped {:.1} s",
                        f.end_ms.saturating_sub(k) as f64 / 1000.0
                    )
                }),
            ),
            Action::HostileOn => {
                last_on = Some(f.end_ms);
                (
                    "impostor on the primary's address (FreeRADIUS stopped)",
                    String::new(),
                )
            }
            Action::HostileOff => (
                "impostor removed, primary FreeRADIUS started",
                format!(
                    "held {:.1} s; {} datagrams received, {} forged replies sent",
                    last_on
                        .take()
                        .map_or(0.0, |k| f.begin_ms.saturating_sub(k) as f64 / 1000.0),
                    f.impostor.map_or(0, |s| s.received),
                    f.impostor.map_or(0, |s| s.forged)
                ),
            ),
        };
        let _ = writeln!(
            out,
            "| {} | {at:.1} | {what} | {took:.1} | {effect} |",
            i + 1
        );
    }

    // Per worker.
    let _ = writeln!(out, "\n### Load per worker\n");
    let _ = writeln!(
        out,
        "| worker | calls | logins accepted (radius/local) | rejected as due | rejected, right password | sessions started | logouts | clears | errors by kind | hung | p99 ms | max ms | peak RSS MiB | RSS first → last MiB | exit |"
    );
    let _ = writeln!(
        out,
        "|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---|"
    );
    let mut all_ops: BTreeMap<String, OpStats> = BTreeMap::new();
    for (i, r) in run.reports.iter().enumerate() {
        let exit = run.exits.get(i).map_or("?", String::as_str);
        let Some(r) = r else {
            let _ = writeln!(out, "| {i} | no report | | | | | | | | | | | | | {exit} |");
            continue;
        };
        let mut merged = OpStats::default();
        for (k, v) in &r.ops {
            merged.merge(v);
            all_ops.entry(k.clone()).or_default().merge(v);
        }
        let acc = |m: &str| r.logins.accepted.get(m).copied().unwrap_or(0);
        let rss = match (r.rss_samples.first(), r.rss_samples.last()) {
            (Some(a), Some(b)) => format!("{} → {}", mib(a.1), mib(b.1)),
            _ => "—".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {rss} | {exit} |",
            r.index,
            merged.calls,
            acc("radius"),
            acc("local"),
            r.logins.rejected_expected,
            r.logins.rejected_unexpected,
            r.journal.started,
            r.journal.ended,
            r.journal.cleared,
            kinds(&merged.errors),
            r.hung(),
            merged.quantile_ms(0.99),
            ms(merged.max_us),
            mib(r.peak_rss_kib),
        );
    }

    // Per operation.
    let _ = writeln!(out, "\n### Calls by operation (all workers)\n");
    let _ = writeln!(
        out,
        "| operation | calls | ok | none | errors by kind | hung | p50 ms | p99 ms | max ms |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---|---:|---:|---:|---:|");
    for (k, v) in &all_ops {
        let _ = writeln!(
            out,
            "| {k} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {} |",
            v.calls,
            v.ok,
            v.none,
            kinds(&v.errors),
            v.hung,
            v.quantile_ms(0.5),
            v.quantile_ms(0.99),
            ms(v.max_us)
        );
    }

    // RADIUS.
    let Windows {
        outages,
        hostile,
        back,
    } = windows(&run.faults);
    let _ = writeln!(out, "\n### RADIUS\n");
    let _ = writeln!(
        out,
        "| worker | primary: requests / replies / no reply / discarded | secondary: requests / replies / no reply | forged replies taken |"
    );
    let _ = writeln!(out, "|---:|---|---|---:|");
    let mut forged_taken = 0;
    let mut discards: BTreeMap<String, u64> = BTreeMap::new();
    for r in &reports {
        let last = r.radius_samples.last();
        let c = |s: usize| {
            last.and_then(|l| l.servers.get(s))
                .copied()
                .unwrap_or_default()
        };
        let (p, s) = (c(PRIMARY), c(SECONDARY));
        let taken: u64 = hostile
            .iter()
            .filter_map(|&(a, b)| delta(&r.radius_samples, PRIMARY, a, b, replies))
            .sum();
        forged_taken += taken;
        for (k, v) in &r.radius_discards {
            *discards.entry(k.clone()).or_insert(0) += v;
        }
        let _ = writeln!(
            out,
            "| {} | {} / {} / {} / {} | {} / {} / {} | {taken} |",
            r.index,
            p.requests,
            p.replies,
            p.no_reply,
            p.discarded,
            s.requests,
            s.replies,
            s.no_reply
        );
    }
    let _ = writeln!(
        out,
        "\nDiscarded datagrams by reason (all workers): {}",
        kinds(&discards)
    );

    // Books.
    let b = &run.books;
    let _ = writeln!(out, "\n### Books\n");
    let _ = writeln!(
        out,
        "| acknowledged | logged out | cleared | end outcome unknown (still valid) | open at end | valid | lost | revived | double ends | found gone by owner | live in store | unacknowledged in store |"
    );
    let _ = writeln!(
        out,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} |",
        b.acknowledged,
        b.logged_out,
        b.cleared,
        b.unknown_outcome,
        b.unknown_valid,
        b.open,
        b.valid,
        b.lost,
        b.revived,
        b.double_ends,
        b.found_gone,
        b.in_store,
        b.unacknowledged_in_store
    );

    // Checks.
    let mut checks: Vec<(&str, bool, String)> = Vec::new();
    checks.push((
        "Redis durable (appendonly yes, appendfsync always)",
        run.durability == "appendonly yes, appendfsync always",
        run.durability.clone(),
    ));
    let count = |a: Action| run.faults.iter().filter(|f| f.action == a).count();
    checks.push((
        "every fault injected",
        count(Action::RedisKill) >= 1
            && count(Action::RedisKill) == count(Action::RedisStart)
            && count(Action::PrimaryStop) >= 1
            && count(Action::HostileOn) >= 1
            && count(Action::HostileOn) == count(Action::HostileOff),
        format!(
            "Redis kills {}, primary stops {}, impostor windows {}",
            count(Action::RedisKill),
            count(Action::PrimaryStop),
            count(Action::HostileOn)
        ),
    ));
    checks.push((
        "every worker exited 0 with a report",
        run.exits.iter().all(|e| e == "0") && reports.len() == run.reports.len(),
        run.exits.join(", "),
    ));
    checks.push((
        "no panic",
        run.panics.is_empty(),
        run.panics.first().map_or_else(
            || "0".to_owned(),
            |p| p.lines().next().unwrap_or("").to_owned(),
        ),
    ));
    let hung: u64 = reports.iter().map(|r| r.hung()).sum();
    checks.push(("no call hung past 10 s", hung == 0, hung.to_string()));
    let security: u64 = reports.iter().map(|r| r.security_failures).sum();
    let notes: Vec<&str> = reports
        .iter()
        .flat_map(|r| r.security_notes.iter().map(String::as_str))
        .take(3)
        .collect();
    checks.push((
        "no security failure (wrong accept, privilege, cookie → other session)",
        security == 0,
        if notes.is_empty() {
            "0".to_owned()
        } else {
            format!("{security}: {}", notes.join("; "))
        },
    ));
    checks.push((
        "no reply taken from the primary's address while the impostor held it",
        forged_taken == 0,
        forged_taken.to_string(),
    ));
    let impostor_heard = run
        .faults
        .iter()
        .filter(|f| f.action == Action::HostileOff)
        .all(|f| f.impostor.is_some_and(|s| s.received > 0 && s.forged > 0));
    let discarded: u64 = discards.values().sum();
    let forged: u64 = run
        .faults
        .iter()
        .filter_map(|f| f.impostor.map(|s| s.forged))
        .sum();
    checks.push((
        "the impostor was asked and its replies discarded",
        impostor_heard && discarded > 0,
        format!("{forged} forged replies sent; {discarded} datagrams discarded by the clients"),
    ));
    checks.push((
        "lost sessions = 0",
        b.lost == 0,
        if b.lost_ids.is_empty() {
            "0".to_owned()
        } else {
            format!(
                "{}: {}",
                b.lost,
                b.lost_ids
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        },
    ));
    let revived_live: u64 = reports.iter().map(|r| r.revived).sum();
    checks.push((
        "no ended session valid again (books and during the run)",
        b.revived == 0 && revived_live == 0,
        format!("books {}, during the run {revived_live}", b.revived),
    ));
    checks.push((
        "each end reported once (no session ended twice)",
        b.double_ends == 0,
        b.double_ends.to_string(),
    ));
    checks.push((
        "every session verifiable, with its user and id",
        b.unverifiable == 0 && b.mismatched == 0,
        format!(
            "unverifiable {}, mismatched {}",
            b.unverifiable, b.mismatched
        ),
    ));
    let identity: u64 = reports.iter().map(|r| r.identity_mismatches).sum();
    checks.push((
        "own sessions validate to the same Arc<ExosUser>",
        identity == 0,
        identity.to_string(),
    ));
    let peak = reports.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0);
    checks.push((
        "memory bounded (peak RSS of each worker)",
        peak > 0 && peak <= o.rss_bound_mib * 1024,
        format!("max {} MiB ≤ {} MiB", mib(peak), o.rss_bound_mib),
    ));
    // Growth: the floor of the RSS (its lowest sample, so that hashes in flight do not count)
    // over the last third of the run against the floor over the middle third.
    let growth: Vec<i64> = reports
        .iter()
        .map(|r| {
            let n = r.rss_samples.len();
            let floor = |from: usize, to: usize| {
                r.rss_samples
                    .get(from..to)
                    .and_then(|s| s.iter().map(|s| s.1).min())
                    .map_or(0, |k| i64::try_from(k).unwrap_or(i64::MAX))
            };
            floor(2 * n / 3, n) - floor(n / 3, 2 * n / 3)
        })
        .collect();
    checks.push((
        "no RSS growth (floor of the last third ≤ floor of the middle third + 32 MiB)",
        growth.iter().all(|&g| g <= 32 * 1024),
        format!(
            "{} MiB",
            growth
                .iter()
                .map(|&g| format!("{:+.1}", g as f64 / 1024.0))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ));
    let failovers: Vec<u64> = outages
        .iter()
        .map(|&(a, c)| {
            reports
                .iter()
                .filter_map(|r| delta(&r.radius_samples, SECONDARY, a, c, replies))
                .sum()
        })
        .collect();
    checks.push((
        "failover to the secondary in every outage of the primary",
        !failovers.is_empty() && failovers.iter().all(|&n| n > 0),
        format!(
            "secondary replies per outage: {}",
            failovers
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ));
    let from = back + run.radius_dead_time_ms + 1000;
    let comeback: Vec<u64> = reports
        .iter()
        .map(|r| delta(&r.radius_samples, PRIMARY, from, run.load_end_ms, replies).unwrap_or(0))
        .collect();
    checks.push((
        "every worker back on the primary after the faults",
        !comeback.is_empty() && comeback.iter().all(|&n| n > 0),
        format!(
            "primary replies per worker in the last {:.0} s: {}",
            run.load_end_ms.saturating_sub(from) as f64 / 1000.0,
            comeback
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ));
    let local: u64 = reports
        .iter()
        .map(|r| r.logins.accepted.get("local").copied().unwrap_or(0))
        .sum();
    let radius: u64 = reports
        .iter()
        .map(|r| r.logins.accepted.get("radius").copied().unwrap_or(0))
        .sum();
    checks.push((
        "work done (RADIUS and local logins, sessions, logouts, clears)",
        radius > 0 && local > 0 && b.acknowledged > 0 && b.logged_out > 0 && b.cleared > 0,
        format!(
            "{radius} RADIUS and {local} local logins, {} sessions",
            b.acknowledged
        ),
    ));

    let _ = writeln!(out, "\n### Checks\n");
    let _ = writeln!(out, "| check | result | detail |");
    let _ = writeln!(out, "|---|---|---|");
    let mut passed = true;
    for (name, ok, detail) in &checks {
        passed &= ok;
        let _ = writeln!(
            out,
            "| {name} | {} | {detail} |",
            if *ok { "PASS" } else { "**FAIL**" }
        );
    }
    let _ = writeln!(
        out,
        "\n**{}** in {:.1} s end to end.",
        if passed { "PASSED" } else { "FAILED" },
        run.elapsed.as_secs_f64()
    );
    print!("{out}");
    passed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_ms: u64, primary: u64, secondary: u64) -> RadiusSample {
        let c = |replies| RadiusCounters {
            replies,
            ..RadiusCounters::default()
        };
        RadiusSample {
            t_ms,
            servers: vec![c(primary), c(secondary)],
        }
    }

    #[test]
    fn deltas_and_windows() {
        let s = vec![
            sample(0, 0, 0),
            sample(500, 5, 0),
            sample(1000, 5, 3),
            sample(1500, 9, 3),
        ];
        assert_eq!(delta(&s, PRIMARY, 400, 1100, replies), Some(0));
        assert_eq!(delta(&s, SECONDARY, 400, 1100, replies), Some(3));
        assert_eq!(delta(&s, PRIMARY, 0, 2000, replies), Some(9));
        assert_eq!(delta(&s, PRIMARY, 1600, 2000, replies), None);
        let f = |action, begin_ms, end_ms| FaultRecord {
            action,
            begin_ms,
            end_ms,
            impostor: None,
        };
        let w = windows(&[
            f(Action::PrimaryStop, 10, 20),
            f(Action::RedisKill, 25, 26),
            f(Action::PrimaryStart, 30, 40),
            f(Action::HostileOn, 50, 60),
            f(Action::HostileOff, 70, 80),
        ]);
        assert_eq!(w.outages, vec![(20, 30), (50, 70)]);
        assert_eq!(w.hostile, vec![(60, 70)]);
        assert_eq!(w.back, 80);
    }
}
