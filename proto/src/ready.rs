//! The daemon's startup report: one line on a descriptor the starter passed (`--ready-fd`).
//!
//! A line rather than a frame because a person may read it too (`qwen-envd` run by hand prints
//! the same outcome in words). The daemon writes it with [`Report::line`]; its foreground half
//! and the client read it back with [`Report::parse`], so the format lives here alone.

/// How startup went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The daemon is listening (its pid).
    Ready(u32),
    /// Another daemon holds the lock (its pid, as its pidfile says).
    Running(String),
    /// Startup failed, with a message that says what to do.
    Error(String),
}

impl Report {
    /// The line to send (no newline; never more than one line).
    pub fn line(&self) -> String {
        match self {
            Self::Ready(pid) => format!("ready {pid}"),
            Self::Running(holder) => format!("running {}", one_line(holder)),
            Self::Error(message) => format!("error {}", one_line(message)),
        }
    }

    /// Reads a line back; `None` for anything else (the daemon died before it reported).
    pub fn parse(line: &str) -> Option<Report> {
        let line = line.trim_end_matches(['\r', '\n']);
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "ready" => rest.trim().parse().ok().map(Report::Ready),
            "running" => Some(Report::Running(rest.trim().to_owned())),
            "error" => Some(Report::Error(rest.to_owned())),
            _ => None,
        }
    }

    /// Whether a daemon is now serving (this one or another).
    pub fn serving(&self) -> bool {
        matches!(self, Self::Ready(_) | Self::Running(_))
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_report_reads_back() {
        for r in [
            Report::Ready(42),
            Report::Running("17".into()),
            Report::Error("cannot bind: Permission denied; check XDG_RUNTIME_DIR".into()),
        ] {
            assert_eq!(Report::parse(&r.line()), Some(r.clone()), "{r:?}");
        }
        assert_eq!(Report::Error("a\nb".into()).line(), "error a b");
        assert_eq!(Report::parse(""), None);
        assert_eq!(Report::parse("ready x"), None);
        assert_eq!(Report::parse("garbage"), None);
    }
}
