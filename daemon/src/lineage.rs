//! Processes started by `qwen-env run`, and refusing to hand keys to them or their descendants.
//!
//! An AI agent started by `run` runs as the same user and can reach the socket, so it could ask
//! for every other key (`qwen-env run --with OTHER_KEY -- env`). `run` execs the child in its own
//! process, so the pid that asked for a run *is* the child: the daemon records it (with its start
//! time, so a reused pid does not count) and refuses key-bearing requests whose caller descends
//! from a recorded process, unless the config says `allow_nesting = true`.

use std::collections::HashMap;
use std::sync::Mutex;

/// How far up the parent chain to look.
const MAX_DEPTH: usize = 64;

/// Pids that received keys through `run`, with their start times.
#[derive(Default)]
pub struct Lineage {
    launched: Mutex<HashMap<u32, u64>>,
}

impl Lineage {
    /// Records that `pid` is about to exec a child with keys.
    pub fn record(&self, pid: u32) {
        let Some(start) = stat(pid).map(|s| s.start) else { return };
        let mut launched = self.launched.lock().expect("lineage lock");
        if launched.len() > 256 {
            launched.retain(|p, t| stat(*p).is_some_and(|s| s.start == *t));
        }
        launched.insert(pid, start);
    }

    /// The recorded process that `pid` is or descends from, if any.
    pub fn launched_ancestor(&self, pid: u32) -> Option<(u32, String)> {
        let launched = self.launched.lock().expect("lineage lock");
        if launched.is_empty() {
            return None;
        }
        let mut at = pid;
        for _ in 0..MAX_DEPTH {
            let s = stat(at)?;
            if launched.get(&at) == Some(&s.start) {
                return Some((at, s.comm));
            }
            if s.ppid <= 1 {
                return None;
            }
            at = s.ppid;
        }
        None
    }
}

struct Stat {
    comm: String,
    ppid: u32,
    start: u64,
}

/// Parent pid, start time and name from `/proc/<pid>/stat` (Linux; elsewhere nothing is known
/// and nothing is refused).
fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name is in parentheses and may contain spaces or parentheses itself.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // fields[0] is field 3 (state): ppid is field 4, starttime field 22.
    Some(Stat { comm, ppid: fields.get(1)?.parse().ok()?, start: fields.get(19)?.parse().ok()? })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn finds_recorded_ancestors_only() {
        let lineage = Lineage::default();
        let me = std::process::id();
        assert!(lineage.launched_ancestor(me).is_none());
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        lineage.record(me);
        let (pid, _) = lineage.launched_ancestor(child.id()).unwrap();
        assert_eq!(pid, me);
        let _ = child.kill();
        let _ = child.wait();
        assert!(Lineage::default().launched_ancestor(1).is_none());
    }
}
