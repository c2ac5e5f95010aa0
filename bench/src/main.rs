//! `cargo xtask bench`: each row measured side by side with its anchor, in the same run, on this
//! machine; printed as a markdown table and written to `target/bench/report.json`.
#![forbid(unsafe_code)]
#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark that cannot run should stop loudly

mod accounting;
mod local;
mod memory;
mod radius;
mod redis;
mod report;
mod storm;
mod timing;

use std::path::PathBuf;

use report::{Better, Row};

fn main() {
    let mut out = PathBuf::from("target/bench/report.json");
    let mut quick = false;
    let mut sessions = 100_000;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = PathBuf::from(args.next().expect("--out needs a path")),
            "--quick" => quick = true,
            "--only" => {
                only = Some(
                    args.next()
                        .expect("--only needs a group: memory, redis or redis-peer"),
                )
            }
            "--sessions" => {
                sessions = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--sessions needs a number")
            }
            other => {
                eprintln!(
                    "unknown argument {other:?}; usage: aaa-bench [--out FILE] [--quick] [--sessions N] [--only memory|redis|redis-peer]"
                );
                std::process::exit(2);
            }
        }
    }
    let ops = if quick { 200_000 } else { 2_000_000 };

    let mut rows: Vec<Row> = Vec::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match only.as_deref() {
        Some("memory") => {
            rows.extend(memory::rows(sessions, ops));
            print_table(&rows);
            return;
        }
        Some("redis") => {
            rows.extend(rt.block_on(redis::rows(quick, false)));
            print_table(&rows);
            return;
        }
        Some("redis-peer") => {
            rows.extend(rt.block_on(redis::rows(quick, true)));
            print_table(&rows);
            return;
        }
        _ => {}
    }
    eprintln!("bench: memory store…");
    rows.extend(memory::rows(sessions, ops));
    eprintln!("bench: local accounts…");
    rows.extend(rt.block_on(local::rows()));
    eprintln!("bench: login timing, unknown vs known user…");
    rows.extend(rt.block_on(timing::rows(quick)));
    eprintln!("bench: validation during a login storm…");
    rows.extend(rt.block_on(storm::rows()));
    eprintln!("bench: Redis store…");
    rows.extend(rt.block_on(redis::rows(quick, false)));
    eprintln!("bench: RADIUS against FreeRADIUS…");
    rows.extend(rt.block_on(radius::rows(quick)));
    eprintln!("bench: RADIUS accounting against FreeRADIUS…");
    rows.extend(rt.block_on(accounting::rows(quick)));

    print_table(&rows);
    write_json(&rows, &out);
    let missed = rows.iter().filter(|r| !r.met()).count();
    eprintln!(
        "bench: {} rows, {} meet their target, report in {}",
        rows.len(),
        rows.len() - missed,
        out.display()
    );
}

fn print_table(rows: &[Row]) {
    println!("| row | unit | ours | anchor | ratio | target | met |");
    println!("|---|---|---:|---|---:|---|:-:|");
    for r in rows {
        let anchor = r
            .anchor
            .as_ref()
            .map_or_else(|| "—".to_owned(), |(name, v)| format!("{v:.1} ({name})"));
        let target = match r.better {
            Better::Higher => format!("≥ {}", r.target),
            Better::Lower => format!("≤ {}", r.target),
            Better::Band(low) => format!("{low}–{}", r.target),
        };
        println!(
            "| {} | {} | {:.1} | {} | {:.2} ({}) | {} | {} |",
            r.name,
            r.unit,
            r.ours,
            anchor,
            r.ratio,
            r.ratio_note,
            target,
            if r.met() { "yes" } else { "**no**" }
        );
    }
}

fn write_json(rows: &[Row], out: &PathBuf) {
    let json: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "row": r.name,
                "unit": r.unit,
                "ours": r.ours,
                "anchor": r.anchor.as_ref().map(|(n, _)| n),
                "anchor_value": r.anchor.as_ref().map(|(_, v)| v),
                "ratio": r.ratio,
                "ratio_note": r.ratio_note,
                "target": r.target,
                "better": match r.better { Better::Higher => "higher", Better::Lower => "lower", Better::Band(_) => "band" },
                "target_low": match r.better { Better::Band(low) => Some(low), _ => None },
                "met": r.met(),
            })
        })
        .collect();
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).expect("create the report directory");
    }
    std::fs::write(out, serde_json::to_string_pretty(&json).expect("json"))
        .expect("write the report");
}
