//! Processes started by `qwen-env run`, and refusing requests from them and their descendants.
//!
//! An AI agent started by `run` runs as the same user and can reach the socket, so it could ask
//! for every other key (`qwen-env run --with OTHER_KEY -- env`), change or delete keys, or stop
//! the daemon to make it forget. Two facts mark a process as one that `run` started:
//!
//! - **A record.** The daemon records the process that asked for a run, by pid *and* start time
//!   (a reused pid does not count), in a 0600 file in its runtime directory, so the record
//!   survives `qwen-env daemon restart`, a crash and `kill`.
//! - **A keeper ancestor.** On Linux the `run` process that asks is the *keeper*
//!   (client/src/exec.rs): a child subreaper named [`KEEPER_NAME`] that spawns the command and
//!   stays alive while any of the command's descendants does, so nothing it started can
//!   re-parent past it (`setsid -f`, `nohup … &`, a double fork). A live keeper among a caller's
//!   ancestors (not the caller itself: that is `run` asking for its plan) refuses it even when
//!   the record is gone (the file deleted and the daemon killed).
//!
//! A caller is refused when it is, or descends from, either; unless the config says
//! `allow_nesting = true`. Elsewhere than Linux no process tree is read and nothing is refused.
//!
//! The walk up the parent chain reads `/proc` once a level, on every guarded request: most of a
//! resolve's cost in the daemon. So a caller the walk cleared is remembered by pid and start
//! time, until the next record: a live process only ever loses ancestors (it is re-parented to
//! one of them or to init when one exits), so only a new record can turn a cleared caller into
//! a refused one. (A process that renames itself to the keeper's name without asking for a run
//! refuses only its own descendants, and they were never given a key.) Refusals are never
//! remembered, and every request still checks that the caller is the process that connected.
//!
//! A record is appended to the file in one short `write`; the file is rewritten whole (a new
//! file beside it, then `rename`) when it is missing, unreadable or mostly dead entries. Neither
//! goes through a symlink, and it is read without following one. A file that does not parse is not fatal: the lines that do
//! parse are kept, the problem is logged, and the daemon serves. The runtime directory is the
//! daemon's own (0700, checked by `paths`), so only the user can change the file; a user's process
//! that deletes it is still refused through its keeper.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub use qwen_env_proto::KEEPER_NAME;

/// The file's name in the runtime directory.
pub const FILE: &str = "lineage";
/// How far up the parent chain to look.
const MAX_DEPTH: usize = 64;
/// The file's first line; a different one is read line by line all the same.
const HEADER: &str = "qwen-env lineage 1";
/// A larger file is read up to this size (a record is about 20 bytes).
const MAX_FILE: u64 = 1 << 20;
/// Cleared callers remembered at most (then forgotten all at once).
const MAX_CLEARED: usize = 4096;

/// Processes that `run` started, persisted in the runtime directory.
pub struct Lineage {
    /// Where the records live; `None` keeps them in memory only.
    path: Option<PathBuf>,
    /// Recorded pids and their start times (clock ticks since boot).
    launched: Mutex<HashMap<u32, u64>>,
    /// Records in the file, dead ones included (changed under the `launched` lock).
    lines: AtomicUsize,
    /// Bumped (under the `launched` lock, after the insert) by every new record.
    generation: AtomicU64,
    /// Callers (pid, start time) the walk found no recorded process or keeper above, and the
    /// generation it read the records at: valid while no record has been added since.
    cleared: Mutex<HashMap<(u32, u64), u64>>,
}

impl Lineage {
    /// Reads the records at `path` (missing: none yet) and keeps only those whose process still
    /// runs. Never fails: a problem with the file is logged and what could be read is kept.
    pub fn open(path: PathBuf) -> Self {
        // A file with lines that do not parse is rewritten at the next record (not appended to).
        let (launched, clean) = match load(&path) {
            Ok((loaded, problems)) => (loaded, problems == 0),
            Err(e) => {
                tracing::error!(path = %path.display(), cause = %e,
                    "cannot read the lineage records; processes started by `qwen-env run` are \
                     still refused through their keeper, and the file is rewritten at the next run");
                (HashMap::new(), false)
            }
        };
        let lines = AtomicUsize::new(if clean { launched.len() } else { usize::MAX / 2 });
        let lineage =
            Self { path: Some(path), launched: Mutex::new(launched), lines, ..Self::in_memory() };
        let mut launched = lineage.launched.lock().expect("lineage lock");
        let before = launched.len();
        prune(&mut launched);
        if launched.len() != before {
            lineage.save(&launched);
        }
        drop(launched);
        lineage
    }

    /// Records kept in memory only (tests).
    pub fn in_memory() -> Self {
        Self {
            path: None,
            launched: Mutex::default(),
            lines: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            cleared: Mutex::default(),
        }
    }

    /// Records that `pid` receives a run plan, and writes the record before returning, so that
    /// the plan is never out before the record is in the file. The record is appended (one short
    /// `write`); the file is rewritten whole (atomically, without the dead entries) when it is
    /// missing or holds more than twice the live records plus 64. (Rewriting it each time would
    /// cost milliseconds on ext4, which flushes a file renamed over another.)
    pub fn record(&self, pid: u32) {
        let Some(start) = stat(pid).map(|s| s.start) else { return };
        let mut launched = self.launched.lock().expect("lineage lock");
        let before = launched.len();
        prune(&mut launched);
        // The same process again (a benchmark, `allow_nesting`) with nothing pruned: on disk.
        if launched.insert(pid, start) == Some(start) && launched.len() == before {
            return;
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        let Some(path) = &self.path else { return };
        let lines = self.lines.load(Ordering::Relaxed) + 1;
        if lines <= 2 * launched.len() + 64 && append(path, pid, start).is_ok() {
            self.lines.store(lines, Ordering::Relaxed);
        } else {
            self.save(&launched);
        }
    }

    /// Whether `pid` (with the start time it has now) is recorded.
    pub fn is_recorded(&self, pid: u32) -> bool {
        let launched = self.launched.lock().expect("lineage lock");
        stat(pid).is_some_and(|s| launched.get(&pid) == Some(&s.start))
    }

    /// Whether the peer that connected may make a guarded request. `peer` is its pid and the
    /// start time it had when the connection was accepted ([`start_time`]). Fails closed on
    /// Linux: a peer that was already gone at accept, or whose pid now belongs to another
    /// process, cannot be placed in the process tree and is refused like a descendant of `run`
    /// (a child can connect, exit, and leave the socket to a parent that would otherwise pass).
    pub fn check(&self, pid: u32, start_at_accept: Option<u64>) -> Result<(), (u32, String)> {
        if cfg!(target_os = "linux")
            && (start_at_accept.is_none() || start_time(pid) != start_at_accept)
        {
            return Err((pid, GONE.to_owned()));
        }
        let Some(start) = start_at_accept else {
            return self.launched_ancestor(pid).map_or(Ok(()), Err);
        };
        let key = (pid, start);
        // Read before the records the walk copies: a record added meanwhile bumps it past this.
        let generation = self.generation.load(Ordering::Acquire);
        if self.cleared.lock().expect("cleared lock").get(&key) == Some(&generation) {
            return Ok(());
        }
        self.launched_ancestor(pid).map_or(Ok(()), Err)?;
        let mut cleared = self.cleared.lock().expect("cleared lock");
        if cleared.len() >= MAX_CLEARED {
            cleared.clear();
        }
        cleared.insert(key, generation);
        Ok(())
    }

    /// The recorded process or live keeper that `pid` is or descends from, with its name.
    pub fn launched_ancestor(&self, pid: u32) -> Option<(u32, String)> {
        let launched = self.launched.lock().expect("lineage lock").clone();
        let mut at = pid;
        for _ in 0..MAX_DEPTH {
            let s = stat(at)?;
            // The caller itself may be a keeper: that is `run` asking for its plan.
            if (at != pid && s.comm == KEEPER_NAME) || launched.get(&at) == Some(&s.start) {
                return Some((at, s.comm));
            }
            if s.ppid <= 1 {
                return None;
            }
            at = s.ppid;
        }
        None
    }

    /// Writes the records atomically; a failure is logged (the records stay in memory).
    fn save(&self, launched: &HashMap<u32, u64>) {
        let Some(path) = &self.path else { return };
        self.lines.store(launched.len(), Ordering::Relaxed);
        if let Err(e) = save(path, launched) {
            tracing::error!(path = %path.display(), cause = %e,
                "cannot write the lineage records; a daemon restart would forget them (the \
                 keepers still refuse); check the runtime directory's free space and permissions");
        }
    }
}

/// The name [`Lineage::check`] gives a peer it cannot place.
const GONE: &str = "a process that has exited";

/// A process's start time (clock ticks since boot), to tell it from a later one with its pid;
/// `None` when it is gone (or, off Linux, unknown).
pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|s| s.start)
}

/// Why a caller is refused, for the user (and for the agent that asked).
pub fn refusal(pid: u32, name: &str) -> String {
    if name == GONE {
        return format!(
            "refused: the process that connected (pid {pid}) has exited or its pid now belongs to \
             another process, so qwen-env cannot tell whether `qwen-env run` started it; run the \
             command again from your own shell"
        );
    }
    format!(
        "refused: this process was started by `qwen-env run` (it is or descends from `{name}`, \
         pid {pid}), and a tool started with keys (an AI agent) may not fetch, change or delete \
         keys, probe them, or stop the daemon; run this qwen-env command from your own shell, or \
         set `allow_nesting = true` in qwen-env's config.toml to allow it"
    )
}

/// Drops records whose process has exited (or whose pid now belongs to another process).
fn prune(launched: &mut HashMap<u32, u64>) {
    launched.retain(|pid, start| stat(*pid).is_some_and(|s| s.start == *start));
}

/// Reads the file at `path`: `Ok(empty)` when there is none. Lines that do not parse are skipped
/// and counted in a warning; records from another boot are dropped.
fn load(path: &Path) -> io::Result<(HashMap<u32, u64>, usize)> {
    let file = match open_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((HashMap::new(), 0)),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("it is not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != qwen_env_proto::endpoint::euid() || meta.mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.mode() & 0o7777),
                "the lineage file is not private to you (0600); reading it, and rewriting it \
                 private at the next run");
        }
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE).read_to_end(&mut bytes)?;
    // Bytes that are not UTF-8 only spoil their own line.
    let (launched, problems) = parse(&String::from_utf8_lossy(&bytes), boot_id().as_deref());
    if problems > 0 {
        tracing::warn!(path = %path.display(), skipped = problems,
            "skipped lines of the lineage file that do not parse; kept the records that do");
    }
    Ok((launched, problems))
}

/// Parses the file's text: the records, and how many lines were skipped. `boot` is this boot's
/// id: a file written during another boot holds no live process.
fn parse(text: &str, boot: Option<&str>) -> (HashMap<u32, u64>, usize) {
    let mut launched = HashMap::new();
    let mut problems = 0;
    for (n, line) in text.lines().enumerate() {
        if n == 0 && line == HEADER {
            continue;
        }
        if let Some(id) = line.strip_prefix("boot ") {
            if boot.is_some_and(|b| b != id) {
                return (HashMap::new(), problems);
            }
            continue;
        }
        let mut words = line.split(' ');
        match (words.next().map(str::parse), words.next().map(str::parse), words.next()) {
            (Some(Ok(pid)), Some(Ok(start)), None) => {
                launched.insert(pid, start);
            }
            _ => problems += 1,
        }
    }
    (launched, problems)
}

/// The file's text for `launched`.
fn render(launched: &HashMap<u32, u64>, boot: Option<&str>) -> String {
    let mut text = format!("{HEADER}\n");
    if let Some(id) = boot {
        let _ = writeln!(text, "boot {id}");
    }
    let mut records: Vec<_> = launched.iter().collect();
    records.sort_unstable();
    for (pid, start) in records {
        let _ = writeln!(text, "{pid} {start}");
    }
    text
}

/// Writes a fresh 0600 file beside `path` (never through a symlink: `create_new` is `O_EXCL`),
/// then renames it over `path` (which replaces a symlink there instead of following it).
fn save(path: &Path, launched: &HashMap<u32, u64>) -> io::Result<()> {
    let name = path.file_name().map_or_else(|| FILE.into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    // A leftover of a crash between create and rename (remove_file does not follow symlinks).
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    }
    let mut file = opts.open(&tmp)?;
    // No fsync: the runtime directory lives as long as the boot (usually a tmpfs), and a crash of
    // the daemon alone loses nothing that `write` has returned.
    let written = file.write_all(render(launched, boot_id().as_deref()).as_bytes());
    drop(file);
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Appends one record to an existing regular file (never through a symlink, never creating it:
/// a missing file is rewritten whole, header and all).
fn append(path: &Path, pid: u32, start: u64) -> io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let mut file = opts.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    // One write: a crash leaves at worst a partial last line, which `load` skips.
    file.write_all(format!("{pid} {start}\n").as_bytes())
}

fn open_nofollow(path: &Path) -> io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: a FIFO planted under the name must not hang the daemon's start.
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    opts.open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            io::Error::other("it is a symlink; not followed")
        } else {
            e
        }
    })
}

/// This boot's id (Linux), so that records never outlive the boot they were made in.
fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_owned()).filter(|id| !id.is_empty() && !id.contains(char::is_whitespace))
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
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<Stat> {
    // The name is in parentheses and may contain spaces or parentheses itself.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let mut fields = text.get(close + 1..)?.split_whitespace();
    // After the name come field 3 (state), 4 (ppid), … 22 (starttime).
    let ppid = fields.nth(1)?.parse().ok()?;
    let start = fields.nth(17)?.parse().ok()?;
    Some(Stat { comm, ppid, start })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Child, Command};

    fn sleeper() -> Child {
        Command::new("sleep").arg("30").spawn().unwrap()
    }

    fn end(mut child: Child) {
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn stat_parses_names_with_spaces_and_parentheses() {
        let line = "42 (a) b (c)) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!((s.comm.as_str(), s.ppid, s.start), ("a) b (c)", 7, 98765));
        let me = stat(std::process::id()).unwrap();
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        assert!(parse_stat("42 (x) S 7").is_none());
    }

    #[test]
    fn finds_recorded_ancestors_only() {
        let lineage = Lineage::in_memory();
        let me = std::process::id();
        assert!(lineage.launched_ancestor(me).is_none());
        let child = sleeper();
        lineage.record(me);
        assert!(lineage.is_recorded(me));
        let (pid, _) = lineage.launched_ancestor(child.id()).unwrap();
        assert_eq!(pid, me);
        // A sibling branch (our parent) is not a descendant.
        assert!(lineage.launched_ancestor(std::os::unix::process::parent_id()).is_none());
        end(child);
        assert!(Lineage::in_memory().launched_ancestor(1).is_none());
    }

    /// A caller cleared once is cleared from memory until a record is added; the next record
    /// of one of its ancestors refuses it at once, and a caller that is gone is refused even
    /// when it was cleared.
    #[test]
    fn a_cleared_caller_is_checked_again_after_a_new_record() {
        let lineage = Lineage::in_memory();
        let child = sleeper();
        let start = start_time(child.id());
        assert_eq!(lineage.check(child.id(), start), Ok(()));
        assert_eq!(lineage.check(child.id(), start), Ok(()));
        assert_eq!(lineage.cleared.lock().unwrap().len(), 1);
        // Its parent (this test) is now a process `run` started: the memo must not clear it.
        lineage.record(std::process::id());
        let (pid, _) = lineage.check(child.id(), start).unwrap_err();
        assert_eq!(pid, std::process::id());
        assert!(lineage.check(child.id(), start).is_err(), "a refusal is never remembered");
        let other = sleeper();
        let other_start = start_time(other.id());
        assert!(lineage.check(other.id(), other_start).is_err());
        let (id, start) = (child.id(), start);
        end(child);
        // Gone (or its pid reused): refused before the memo is consulted.
        assert_eq!(lineage.check(id, start).unwrap_err().1, GONE);
        end(other);
    }

    #[test]
    fn records_survive_reopening_and_dead_or_reused_pids_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let alive = sleeper();
        let dead = sleeper();
        let dead_pid = dead.id();
        {
            let lineage = Lineage::open(path.clone());
            lineage.record(alive.id());
            lineage.record(dead_pid);
        }
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        end(dead);
        let reopened = Lineage::open(path.clone());
        assert!(reopened.is_recorded(alive.id()));
        assert!(!reopened.is_recorded(dead_pid));
        // The dead entry was pruned from the file too.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("\n{} ", alive.id())), "{text}");
        assert!(!text.contains(&format!("\n{dead_pid} ")), "{text}");

        // A live pid recorded with another start time is a reused pid: not refused.
        let child = sleeper();
        let start = stat(child.id()).unwrap().start;
        std::fs::write(&path, format!("{HEADER}\n{} {}\n", child.id(), start + 1)).unwrap();
        let lineage = Lineage::open(path.clone());
        assert!(!lineage.is_recorded(child.id()));
        assert!(lineage.launched_ancestor(child.id()).is_none());
        end(child);
        end(alive);
    }

    #[test]
    fn records_are_appended_and_a_missing_file_is_rewritten_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let (a, b, c) = (sleeper(), sleeper(), sleeper());
        let lineage = Lineage::open(path.clone());
        lineage.record(a.id());
        lineage.record(b.id());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(HEADER), "{text}");
        let start = |p: u32| stat(p).unwrap().start;
        assert!(
            text.ends_with(&format!(
                "\n{} {}\n{} {}\n",
                a.id(),
                start(a.id()),
                b.id(),
                start(b.id())
            )),
            "{text}"
        );
        // Deleted: the next record writes the whole file again, not a lone line.
        std::fs::remove_file(&path).unwrap();
        lineage.record(c.id());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(HEADER) && text.contains(&format!("\n{} ", a.id())), "{text}");
        // A dead record stays in the file until the next open drops it.
        let a_pid = a.id();
        end(a);
        let reopened = Lineage::open(path.clone());
        assert!(!reopened.is_recorded(a_pid) && reopened.is_recorded(b.id()));
        assert!(!std::fs::read_to_string(&path).unwrap().contains(&format!("\n{a_pid} ")));
        end(b);
        end(c);
    }

    #[test]
    fn a_corrupt_file_keeps_what_parses_and_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let child = sleeper();
        let start = stat(child.id()).unwrap().start;
        std::fs::write(&path, format!("garbage\n\u{0}\u{7f}x\n{} {start}\n12 nope\n", child.id()))
            .unwrap();
        let lineage = Lineage::open(path.clone());
        assert!(lineage.is_recorded(child.id()));
        // Not text at all: nothing kept, the daemon still serves, and the next record rewrites it.
        std::fs::write(&path, [0xff, 0xfe, 0x00, 0x80]).unwrap();
        let lineage = Lineage::open(path.clone());
        assert!(!lineage.is_recorded(child.id()));
        lineage.record(child.id());
        assert!(std::fs::read_to_string(&path).unwrap().starts_with(HEADER));
        // A record after bytes that are not UTF-8 still counts.
        let mut bytes = vec![0xff, b'\n'];
        bytes.extend_from_slice(format!("{} {start}\n", child.id()).as_bytes());
        std::fs::write(&path, bytes).unwrap();
        assert!(Lineage::open(path.clone()).is_recorded(child.id()));
        end(child);
    }

    #[test]
    fn another_boots_records_are_dropped() {
        let (kept, _) = parse(&format!("{HEADER}\nboot a\n10 20\n"), Some("a"));
        assert_eq!(kept.get(&10), Some(&20));
        let (gone, _) = parse(&format!("{HEADER}\nboot a\n10 20\n"), Some("b"));
        assert!(gone.is_empty());
        let (text, problems) = parse(&render(&kept, Some("a")), Some("a"));
        assert_eq!((text, problems), (kept, 0));
    }

    #[test]
    fn never_follows_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "precious\n").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let lineage = Lineage::open(path.clone());
        lineage.record(std::process::id());
        // The link was replaced by a file of our own; its target is untouched.
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
        assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        assert!(Lineage::open(path).is_recorded(std::process::id()));
        // A planted temporary-file symlink is removed, not written through.
        let tmp = dir.path().join(format!(".{FILE}.{}.tmp", std::process::id()));
        let other = dir.path().join(FILE.to_owned() + "2");
        std::os::unix::fs::symlink(&target, &tmp).unwrap();
        save(&other, &HashMap::new()).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    }

    #[test]
    fn a_live_keeper_refuses_without_any_record() {
        // A process named like the keeper, with a child: the child is refused through it.
        let keeper = Command::new("sh")
            .args(["-c", &format!("printf %s {KEEPER_NAME} > /proc/self/comm; sleep 5; :")])
            .spawn()
            .unwrap();
        let named = wait_for_name(keeper.id(), KEEPER_NAME);
        assert!(named, "the stand-in keeper did not take the name");
        let lineage = Lineage::in_memory();
        // The keeper itself asks for its plan: not refused. Its child (the `sleep`) is.
        assert!(lineage.launched_ancestor(keeper.id()).is_none());
        let children = format!("/proc/{0}/task/{0}/children", keeper.id());
        let mut child = None;
        for _ in 0..500 {
            child = std::fs::read_to_string(&children)
                .ok()
                .and_then(|t| t.split_whitespace().next().and_then(|p| p.parse::<u32>().ok()));
            if child.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let (pid, name) = lineage.launched_ancestor(child.expect("the keeper's child")).unwrap();
        assert_eq!((pid, name.as_str()), (keeper.id(), KEEPER_NAME));
        assert!(lineage.launched_ancestor(std::process::id()).is_none());
        end(keeper);
    }

    fn wait_for_name(pid: u32, name: &str) -> bool {
        for _ in 0..500 {
            if stat(pid).is_some_and(|s| s.comm == name) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn the_refusal_says_why_and_what_to_do() {
        let m = refusal(42, "qwen-env-keeper");
        assert!(m.starts_with("refused:"), "{m}");
        for part in ["qwen-env run", "pid 42", "your own shell", "allow_nesting = true"] {
            assert!(m.contains(part), "{m}");
        }
    }
}
