//! The `aaa` command with `[[radius.accounting]]` servers (a real FreeRADIUS, its `detail`
//! file read back).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure

use testkit::radius::{ADMIN, DetailRecord, FreeRadius};

mod common;
use common::aaa;

fn from(radius: &FreeRadius, addr: &str) -> Vec<DetailRecord> {
    radius
        .detail()
        .into_iter()
        .filter(|r| r.get("Calling-Station-Id") == Some(addr))
        .collect()
}

/// A RADIUS login and a local one in the shell, each logged out: a Start and a Stop each,
/// Acct-Authentic saying which mechanism; a one-shot `aaa login` sends its Start before the
/// command exits. The secret never appears in the output.
#[test]
fn the_shell_accounts_every_session() {
    let radius = FreeRadius::shared();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[radius]\nnas_identifier = \"cli-nas\"\naccounting_spool = \"{}\"\n\
         [[radius.server]]\naddress = \"{}\"\nsecret = \"{secret}\"\n\
         [[radius.accounting]]\naddress = \"{}\"\nsecret = \"{secret}\"\n",
        dir.path().join("spool").display(),
        radius.addr(),
        radius.acct_addr(),
        secret = radius.secret(),
    );
    let script = format!(
        "login {} --from 192.0.2.101\n{}\nlogout\nuser add localadmin --level admin\n\
         local-admin-pw\nexit\n",
        ADMIN.name, ADMIN.password
    );
    let out = aaa(dir.path(), &config)
        .arg("shell")
        .write_stdin(script)
        .output()
        .unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{o}\n{e}");
    assert!(!o.contains(radius.secret()) && !e.contains(radius.secret()));
    let records = from(radius, "192.0.2.101");
    let statuses: Vec<_> = records
        .iter()
        .map(|r| r.get("Acct-Status-Type").unwrap())
        .collect();
    assert_eq!(statuses, ["Start", "Stop"], "{records:#?}");
    assert_eq!(
        records[0].get("Acct-Session-Id"),
        records[1].get("Acct-Session-Id")
    );
    assert_eq!(records[1].get("Acct-Terminate-Cause"), Some("User-Request"));
    assert_eq!(records[0].get("Acct-Authentic"), Some("RADIUS"));
    assert_eq!(records[0].get("NAS-Identifier"), Some("cli-nas"));
    assert_eq!(records[0].get("User-Name"), Some(ADMIN.name));

    // Accounting without RADIUS authentication: a local login, one shot. Its Start goes out
    // before the command exits.
    let config = format!(
        "[radius]\naccounting_spool = \"{}\"\n\
         [[radius.accounting]]\naddress = \"{}\"\nsecret = \"{}\"\n",
        dir.path().join("spool").display(),
        radius.acct_addr(),
        radius.secret(),
    );
    let out = aaa(dir.path(), &config)
        .args([
            "login",
            "localadmin",
            "--from",
            "192.0.2.102",
            "--password-stdin",
        ])
        .write_stdin("local-admin-pw\n")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = from(radius, "192.0.2.102");
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].get("Acct-Status-Type"), Some("Start"));
    assert_eq!(records[0].get("Acct-Authentic"), Some("Local"));
    assert_eq!(records[0].get("User-Name"), Some("localadmin"));
}

#[test]
fn accounting_configuration_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = aaa(dir.path(), "[radius]\naccounting_interim = \"sometimes\"\n")
        .args(["show", "session"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("line 4") && e.contains("invalid duration"),
        "{e}"
    );
    let out = aaa(
        dir.path(),
        "[[radius.accounting]]\naddress = \"127.0.0.1:1813\"\nsecret = \"\"\n",
    )
    .args(["show", "session"])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("secret") && e.contains("empty"), "{e}");
}
