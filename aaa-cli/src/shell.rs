//! `aaa shell`: the switch CLI in one process.
//!
//! On a terminal: a prompt with history (kept in the data directory, never with cookies) and
//! completion. Otherwise: one command per line of standard input; a command that needs a
//! password reads it from the next line.

use std::borrow::Cow;
use std::io::{BufRead, IsTerminal as _, Write as _};

use clap::Parser as _;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use crate::app::{App, history_file};
use crate::cli::{SHELL_WORDS, ShellLine, split_words};
use crate::commands::{self, Ctx, ShellState};
use crate::error::{CliError, code};
use crate::input::Input;

/// Runs the shell until `exit` or the end of the input. Returns the exit code: the highest of
/// the commands' codes in non-terminal mode (so scripts see failures), 0 on a terminal.
pub(crate) async fn run(app: &App) -> u8 {
    if std::io::stdin().is_terminal() {
        interactive(app).await
    } else {
        if matches!(app.accounts.is_empty().await, Ok(true)) {
            eprintln!(
                "% no local account exists yet: create one with `user add <name> --level admin`"
            );
        }
        let input = Input::Lines(Box::new(std::io::BufReader::new(std::io::stdin())));
        scripted(app, input).await
    }
}

/// Runs one shell line; prints errors; returns the exit code of the line.
async fn line(app: &App, text: &str, input: &mut Input, state: &mut ShellState) -> u8 {
    let words = match split_words(text) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("% {e}");
            return code::USAGE;
        }
    };
    if words.is_empty() || words.first().is_some_and(|w| w.starts_with('#')) {
        return code::OK;
    }
    if words.first().is_some_and(|w| w == "help" || w == "?") {
        print_help();
        return code::OK;
    }
    let parsed = match ShellLine::try_parse_from(&words) {
        Ok(p) => p,
        Err(e) => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid command");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("% {first} (type `help`)");
            return code::USAGE;
        }
    };
    let mut out = std::io::stdout().lock();
    let result = {
        let mut ctx = Ctx {
            app,
            out: &mut out,
            input: Some(input),
            shell: Some(state),
        };
        commands::run(&mut ctx, parsed.command).await
    };
    let _ = out.flush();
    match result {
        Ok(()) => code::OK,
        Err(e) => {
            eprintln!("% {}", e.line());
            e.exit_code()
        }
    }
}

fn print_help() {
    println!(
        "Commands:
  login <name> [--from ADDR]        log in and start a session (asks for the password)
  logout                            end this shell's session
  whoami                            who is logged in here
  validate <cookie>                 show the session of a cookie
  show session [--json]             the live sessions of every process
  clear session <id>                end a session wherever it was started
  user add <name> [--level admin|user]
  user del|passwd|enable|disable|unlock <name>
  user level <name> <admin|user>
  user list [--json]
  help                              this text
  exit                              leave the shell"
    );
}

async fn scripted(app: &App, mut input: Input) -> u8 {
    let mut state = ShellState::default();
    let mut worst = code::OK;
    loop {
        let text = match input.next_line() {
            Ok(Some(t)) => t,
            Ok(None) => break,
            Err(e) => {
                eprintln!("% {}", e.line());
                return code::USAGE.max(worst);
            }
        };
        worst = worst.max(line(app, &text, &mut input, &mut state).await);
        if state.exit {
            break;
        }
    }
    end(&mut state).await;
    worst
}

async fn interactive(app: &App) -> u8 {
    let mut editor = match Editor::<ShellHelper, DefaultHistory>::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("% cannot start the line editor: {e}");
            return code::USAGE;
        }
    };
    editor.set_helper(Some(ShellHelper));
    let history = history_file();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    let mut input = Input::Terminal;
    let mut state = ShellState::default();
    offer_first_admin(app, &mut input).await;
    println!("aaa shell: type `help` for the commands, `exit` to leave.");
    loop {
        let prompt = match state.user.as_ref().filter(|u| u.has_session()) {
            Some(u) if u.read_write() => format!("{}# ", u.username()),
            Some(u) => format!("{}> ", u.username()),
            None => "aaa> ".to_owned(),
        };
        match editor.readline(&prompt) {
            Ok(text) => {
                if keep_in_history(&text) {
                    let _ = editor.add_history_entry(text.as_str());
                }
                line(app, &text, &mut input, &mut state).await;
                if state.exit {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => {}
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("% {e}");
                break;
            }
        }
    }
    if let Some(h) = &history {
        save_history(&mut editor, h);
    }
    end(&mut state).await;
    code::OK
}

/// Lines that carry a cookie are not written to the history file.
fn keep_in_history(text: &str) -> bool {
    let first = text.split_whitespace().next().unwrap_or("");
    !text.trim().is_empty() && first != "validate" && first != "logout"
}

fn save_history(editor: &mut Editor<ShellHelper, DefaultHistory>, path: &std::path::Path) {
    if let Some(dir) = path.parent()
        && std::fs::create_dir_all(dir).is_err()
    {
        return;
    }
    if editor.save_history(path).is_ok() {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

/// Leaving the shell ends its session, as leaving a switch's CLI does.
async fn end(state: &mut ShellState) {
    if let Some(user) = state.user.take()
        && user.has_session()
    {
        match user.end_session().await {
            Ok(()) => eprintln!("{} logged out", user.username()),
            Err(e) if e.is_session_does_not_exist() => {}
            Err(e) => eprintln!("% {}", CliError::from(e).line()),
        }
    }
}

/// On a terminal with no account yet, offers to create the admin account.
async fn offer_first_admin(app: &App, input: &mut Input) {
    match app.accounts.is_empty().await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            eprintln!("% {}", CliError::from(e).line());
            return;
        }
    }
    println!("No local account exists yet.");
    print!("Create an admin account now? [Y/n] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return;
    }
    if answer.trim().eq_ignore_ascii_case("n") || answer.trim().eq_ignore_ascii_case("no") {
        println!("Add one later with: user add <name> --level admin");
        return;
    }
    print!("Account name [admin]: ");
    let _ = std::io::stdout().flush();
    let mut name = String::new();
    if std::io::stdin().lock().read_line(&mut name).is_err() {
        return;
    }
    let name = match name.trim() {
        "" => "admin".to_owned(),
        n => n.to_owned(),
    };
    let result = async {
        let pw = input.new_password(&format!("Password for {name}: "))?;
        app.accounts
            .add(&name, &pw, aaa::local::Level::Admin)
            .await?;
        Ok::<(), CliError>(())
    }
    .await;
    match result {
        Ok(()) => println!("Admin account {name} created. Log in with: login {name}"),
        Err(e) => eprintln!("% {}", e.line()),
    }
}

/// Completion of the shell's command words.
struct ShellHelper;

impl Completer for ShellHelper {
    type Candidate = Pair;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = line.get(..pos).unwrap_or(line);
        let start = head.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let typed: Vec<&str> = head.split_whitespace().collect();
        let partial = head.get(start..).unwrap_or("");
        // Words before the one being completed must match a command's first words.
        let done: Vec<&str> = if partial.is_empty() {
            typed.clone()
        } else {
            typed
                .get(..typed.len().saturating_sub(1))
                .unwrap_or(&[])
                .to_vec()
        };
        let mut out: Vec<Pair> = Vec::new();
        for cmd in SHELL_WORDS {
            let words: Vec<&str> = cmd.split(' ').collect();
            if words.len() > done.len()
                && words.get(..done.len()) == Some(&done[..])
                && let Some(next) = words.get(done.len())
                && next.starts_with(partial)
                && !out.iter().any(|p| p.replacement == *next)
            {
                out.push(Pair {
                    display: (*next).to_owned(),
                    replacement: (*next).to_owned(),
                });
            }
        }
        Ok((start, out))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}
impl Highlighter for ShellHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        Cow::Borrowed(line)
    }
}
impl Validator for ShellHelper {}
impl Helper for ShellHelper {}
