//! Where passwords come from: a terminal prompt without echo, or a line of standard input.

use std::io::{BufRead, IsTerminal as _};

use crate::error::CliError;

/// A source of passwords (and, in the shell's non-terminal mode, of command lines).
pub(crate) enum Input {
    /// Prompt on the controlling terminal, without echo.
    Terminal,
    /// Read lines (standard input when it is not a terminal, or `--password-stdin`).
    Lines(Box<dyn BufRead>),
}

impl Input {
    /// For a one-shot command: standard input if asked for, else the terminal if there is one.
    pub(crate) fn for_command(password_stdin: bool) -> Result<Self, CliError> {
        if password_stdin {
            Ok(Self::Lines(Box::new(std::io::stdin().lock())))
        } else if std::io::stdin().is_terminal() {
            Ok(Self::Terminal)
        } else {
            Err(CliError::NoTerminal)
        }
    }

    /// The next line, without its line ending; `None` at the end of the input.
    pub(crate) fn next_line(&mut self) -> Result<Option<String>, CliError> {
        match self {
            Self::Terminal => Ok(None),
            Self::Lines(r) => read_line(r.as_mut()),
        }
    }

    /// One password.
    pub(crate) fn password(&mut self, prompt: &str) -> Result<String, CliError> {
        match self {
            Self::Terminal => rpassword::prompt_password(prompt).map_err(CliError::ReadPassword),
            Self::Lines(r) => read_line(r.as_mut())?.ok_or(CliError::NoPassword),
        }
    }

    /// A new password: typed twice on a terminal, once from lines.
    pub(crate) fn new_password(&mut self, prompt: &str) -> Result<String, CliError> {
        let first = self.password(prompt)?;
        if matches!(self, Self::Terminal) {
            let again = self.password("Retype the password: ")?;
            if again != first {
                return Err(CliError::PasswordMismatch);
            }
        }
        Ok(first)
    }
}

fn read_line(r: &mut dyn BufRead) -> Result<Option<String>, CliError> {
    let mut buf = Vec::new();
    let n = r
        .read_until(b'\n', &mut buf)
        .map_err(CliError::ReadPassword)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    String::from_utf8(buf).map(Some).map_err(|_| {
        CliError::ReadPassword(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the input is not UTF-8",
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_strip_only_the_line_ending() {
        let mut i = Input::Lines(Box::new(&b" pass word \r\nsecond\nlast"[..]));
        assert_eq!(i.password("").unwrap(), " pass word ");
        assert_eq!(i.next_line().unwrap().as_deref(), Some("second"));
        assert_eq!(i.password("").unwrap(), "last");
        assert!(matches!(i.password(""), Err(CliError::NoPassword)));
        let mut bad = Input::Lines(Box::new(&b"\xff\xfe\n"[..]));
        assert!(bad.password("").is_err());
    }
}
