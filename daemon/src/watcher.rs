//! Watching: keep every context a client asked about resolved as its files change.
//!
//! A *context* is a directory plus a host tool (`qwen-code in /work/proj`). Each resolution
//! reports the files it read or could read (settings layers, every directory of the `.env`
//! walk-up, home files, OpenClaw's files); we watch the nearest existing parent directory of each,
//! non-recursively, and filter events by path (editors and Qwen Code save by temp file + rename,
//! which a directory watch sees; `.orig`, `.corrupted` and editor temp files never match a
//! watched path). A change is hashed (a no-op rewrite does nothing) and the contexts that read the
//! file are handed back to the engine (`Engine::watch` debounces and re-assesses them); changes
//! in their findings are broadcast to `qwen-env events`. This module is the bookkeeping only: it
//! knows files and contexts, not how to resolve them.
//!
//! Correctness never depends on the watcher: the parse cache checks file metadata on every
//! request, so if the inotify limit is hit the next command still sees every change. Idle
//! contexts are dropped after [`CONTEXT_TTL`], lazily, so an idle daemon has no timers.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::Watcher as _;
use qwen_env_proto::{CallerContext, ContextInfo, EventInfo, Finding, Severity};
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, mpsc};

/// Contexts nobody asked about for this long are dropped, and so are their watches.
pub const CONTEXT_TTL: Duration = Duration::from_hours(1);
/// Default cap on watched directories (`QWEN_ENV_MAX_WATCHES` overrides it).
const DEFAULT_MAX_WATCHES: usize = 4096;

/// A file's content hash; `None` when it is missing or unreadable.
pub type Hash = Option<[u8; 32]>;

/// The watcher's shared state.
pub struct Watcher {
    inner: Mutex<Inner>,
    events: broadcast::Sender<EventInfo>,
}

/// Paths whose events matter: watched files and every path between a watched directory and a
/// watched file below it (a directory that may appear on the way).
type Relevant = Arc<std::sync::RwLock<std::collections::HashSet<PathBuf>>>;

struct Inner {
    relevant: Relevant,
    notify: Option<notify::RecommendedWatcher>,
    /// Why watching is degraded, if it is.
    note: Option<String>,
    max_dirs: usize,
    /// Directories watched now.
    dirs: BTreeSet<PathBuf>,
    /// Every file some context depends on, with its last known content hash.
    files: HashMap<PathBuf, Hash>,
    contexts: HashMap<(String, String), Context>,
    envs: Envs,
    last_expiry: Instant,
}

struct Context {
    caller: Caller,
    files: Vec<PathBuf>,
    findings: Vec<Finding>,
    last_used: Instant,
}

/// A context's caller. The environment is shared between contexts that have the same one
/// (every directory a shell visits sends the same environment): a thousand contexts hold one
/// copy, not a thousand.
struct Caller {
    cwd: String,
    argv: Vec<String>,
    env: Arc<[(String, String)]>,
}

impl Caller {
    fn is(&self, c: &CallerContext) -> bool {
        self.cwd == c.cwd && self.argv == c.argv && *self.env == *c.env
    }

    fn context(&self) -> CallerContext {
        CallerContext { cwd: self.cwd.clone(), argv: self.argv.clone(), env: self.env.to_vec() }
    }
}

/// The environments contexts hold, by hash, each stored once.
#[derive(Default)]
struct Envs(HashMap<u64, Arc<[(String, String)]>>);

impl Envs {
    fn caller(&mut self, c: &CallerContext) -> Caller {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::hash::DefaultHasher::new();
        c.env.hash(&mut h);
        let shared = self.0.entry(h.finish()).or_insert_with(|| Arc::from(c.env.as_slice()));
        // A hash collision between two environments: this one is simply not shared.
        let env = if **shared == *c.env { shared.clone() } else { Arc::from(c.env.as_slice()) };
        Caller { cwd: c.cwd.clone(), argv: c.argv.clone(), env }
    }

    /// Forgets environments no context holds any more.
    fn prune(&mut self) {
        self.0.retain(|_, e| Arc::strong_count(e) > 1);
    }
}

impl Watcher {
    /// A watcher whose raw events go to `raw`. If the OS watcher cannot start, watching is
    /// degraded (noted in `status`) and the daemon still works.
    pub fn new(raw: mpsc::UnboundedSender<PathBuf>) -> Arc<Self> {
        // Filtered on notify's own thread: a busy watched directory (a project in /tmp, say)
        // must not wake the runtime for every unrelated file.
        let relevant: Relevant = Arc::default();
        let filter = relevant.clone();
        let handler = move |res: notify::Result<notify::Event>| match res {
            // inotify also reports opens and reads; our own reads of a watched file would then
            // feed back into another change check, forever. Only writes, creates, removes and
            // renames change what a file says.
            Ok(event) if is_read_only(event.kind) => {}
            Ok(event) => {
                let relevant = filter.read().expect("relevant lock");
                for path in event.paths {
                    if relevant.contains(&path) {
                        tracing::trace!(path = %path.display(), "watched path changed");
                        let _ = raw.send(path);
                    }
                }
            }
            Err(e) => tracing::warn!(cause = %e, "file watcher error"),
        };
        let (notify, note) = match notify::recommended_watcher(handler) {
            Ok(w) => (Some(w), None),
            Err(e) => {
                tracing::warn!(cause = %e, "cannot start the file watcher");
                (
                    None,
                    Some(format!(
                        "file watching is off ({e}); changes are seen on the next command"
                    )),
                )
            }
        };
        let max_dirs = std::env::var("QWEN_ENV_MAX_WATCHES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MAX_WATCHES);
        Arc::new(Self {
            inner: Mutex::new(Inner {
                relevant,
                notify,
                note,
                max_dirs,
                dirs: BTreeSet::new(),
                files: HashMap::new(),
                contexts: HashMap::new(),
                envs: Envs::default(),
                last_expiry: Instant::now(),
            }),
            events: broadcast::channel(1024).0,
        })
    }

    /// Records that a client resolved `caller` and the result depended on `files`.
    pub fn track(
        &self,
        caller: &CallerContext,
        tool: &str,
        files: &[PathBuf],
        findings: &[Finding],
    ) {
        let mut guard = self.inner.lock().expect("watcher lock");
        let inner = &mut *guard;
        let key = (caller.cwd.clone(), tool.to_owned());
        // The hot path (every `run`): a known context asked again. Compare before cloning.
        let unchanged = match inner.contexts.get_mut(&key) {
            Some(c) if c.files == files => {
                c.last_used = Instant::now();
                if !c.caller.is(caller) {
                    c.caller = inner.envs.caller(caller);
                }
                if c.findings != findings {
                    c.findings = findings.to_vec();
                }
                true
            }
            _ => {
                let context = Context {
                    caller: inner.envs.caller(caller),
                    files: files.to_vec(),
                    findings: findings.to_vec(),
                    last_used: Instant::now(),
                };
                inner.contexts.insert(key, context);
                false
            }
        };
        let expired = inner.expire();
        if !unchanged || expired {
            inner.sync();
        }
    }

    /// Why watching is degraded, if it is.
    pub fn note(&self) -> Option<String> {
        self.inner.lock().expect("watcher lock").note.clone()
    }

    /// Watched files and contexts, for `status`.
    pub fn status(&self) -> (Vec<String>, Vec<ContextInfo>, Option<String>) {
        let inner = self.inner.lock().expect("watcher lock");
        let mut files: Vec<String> = inner.files.keys().map(|p| p.display().to_string()).collect();
        files.sort();
        let mut contexts: Vec<ContextInfo> = inner
            .contexts
            .iter()
            .map(|((cwd, tool), c)| ContextInfo {
                cwd: cwd.clone(),
                tool: tool.clone(),
                errors: count(&c.findings, Severity::Error),
                warnings: count(&c.findings, Severity::Warning),
                idle_secs: c.last_used.elapsed().as_secs(),
            })
            .collect();
        contexts.sort_by(|a, b| (&a.cwd, &a.tool).cmp(&(&b.cwd, &b.tool)));
        (files, contexts, inner.note.clone())
    }

    /// A stream of events for `qwen-env events`.
    pub fn subscribe(&self) -> broadcast::Receiver<EventInfo> {
        self.events.subscribe()
    }

    /// Broadcasts one event to every `events` stream.
    pub fn emit(&self, event: EventInfo) {
        tracing::debug!(kind = %event.kind, message = %event.message, "event");
        let _ = self.events.send(event);
    }

    /// Files whose content changed among those an event at `path` concerns: the file itself, or
    /// every watched file below a directory that appeared, vanished or was renamed.
    pub fn changed(&self, paths: &BTreeSet<PathBuf>) -> Vec<(PathBuf, Hash)> {
        let mut inner = self.inner.lock().expect("watcher lock");
        let mut changed = Vec::new();
        let mut moved = false;
        let candidates: Vec<PathBuf> = inner
            .files
            .keys()
            .filter(|f| paths.iter().any(|p| f.as_path() == p || f.starts_with(p)))
            .cloned()
            .collect();
        for file in candidates {
            moved |= !paths.contains(&file);
            let now = hash_file(&file);
            let before = inner.files.insert(file.clone(), now);
            if before != Some(now) {
                changed.push((file, now));
            }
        }
        if moved || !changed.is_empty() {
            // A directory on the way to a watched file appeared or vanished: move the watch.
            inner.sync();
        }
        changed
    }

    /// The contexts that depend on any of `files`.
    pub fn dependents(&self, files: &[PathBuf]) -> Vec<CallerContext> {
        let inner = self.inner.lock().expect("watcher lock");
        inner
            .contexts
            .values()
            .filter(|c| c.files.iter().any(|f| files.contains(f)))
            .map(|c| c.caller.context())
            .collect()
    }

    /// Updates a context after a re-resolution, without counting it as use. Returns the
    /// findings it had before, or `None` when the context is no longer known.
    pub fn refresh(
        &self,
        caller: &CallerContext,
        tool: &str,
        files: &[PathBuf],
        findings: &[Finding],
    ) -> Option<Vec<Finding>> {
        let mut inner = self.inner.lock().expect("watcher lock");
        let key = (caller.cwd.clone(), tool.to_owned());
        let c = inner.contexts.get_mut(&key)?;
        let before = std::mem::replace(&mut c.findings, findings.to_vec());
        if c.files != files {
            c.files = files.to_vec();
            inner.sync();
        }
        Some(before)
    }
}

impl Inner {
    /// Drops contexts idle for longer than [`CONTEXT_TTL`]; checked at most once a minute.
    fn expire(&mut self) -> bool {
        if self.last_expiry.elapsed() < Duration::from_mins(1) {
            return false;
        }
        self.last_expiry = Instant::now();
        let before = self.contexts.len();
        self.contexts.retain(|_, c| c.last_used.elapsed() < CONTEXT_TTL);
        self.envs.prune();
        before != self.contexts.len()
    }

    /// Makes the watched directories match what the contexts need.
    fn sync(&mut self) {
        let wanted_files: BTreeSet<PathBuf> =
            self.contexts.values().flat_map(|c| c.files.iter().cloned()).collect();
        self.files.retain(|f, _| wanted_files.contains(f));
        for f in &wanted_files {
            if !self.files.contains_key(f) {
                self.files.insert(f.clone(), hash_file(f));
            }
        }
        let wanted_dirs: BTreeSet<PathBuf> =
            wanted_files.iter().filter_map(|f| nearest_dir(f)).collect();
        {
            let mut relevant = self.relevant.write().expect("relevant lock");
            relevant.clear();
            for f in &wanted_files {
                let mut p = f.as_path();
                while !wanted_dirs.contains(p) && relevant.insert(p.to_owned()) {
                    match p.parent() {
                        Some(parent) => p = parent,
                        None => break,
                    }
                }
            }
        }
        let Some(notify) = self.notify.as_mut() else { return };
        for gone in self.dirs.difference(&wanted_dirs).cloned().collect::<Vec<_>>() {
            let _ = notify.unwatch(&gone);
            self.dirs.remove(&gone);
        }
        for dir in wanted_dirs.difference(&self.dirs.clone()) {
            if self.dirs.len() >= self.max_dirs {
                self.note = Some(limit_note());
                break;
            }
            match notify.watch(dir, notify::RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.dirs.insert(dir.clone());
                }
                Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
                    self.note = Some(limit_note());
                    break;
                }
                Err(e) => tracing::debug!(dir = %dir.display(), cause = %e, "cannot watch"),
            }
        }
        if self.note.is_some() {
            tracing::warn!(
                watched = self.dirs.len(),
                "watch limit reached; falling back to checking files on each request"
            );
        }
    }
}

fn limit_note() -> String {
    "the inotify watch limit is reached: changes are seen on the next command instead of at once; \
     raise it with `sudo sysctl fs.inotify.max_user_watches=524288` (and persist it in \
     /etc/sysctl.d/)"
        .to_owned()
}

/// An open, a read, or the close of a file that was only read.
fn is_read_only(kind: notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    matches!(kind, notify::EventKind::Access(a) if !matches!(a, AccessKind::Close(AccessMode::Write)))
}

/// The closest existing directory at or above `file`'s parent.
fn nearest_dir(file: &Path) -> Option<PathBuf> {
    let mut dir = file.parent()?;
    loop {
        if dir.is_dir() {
            return Some(dir.to_owned());
        }
        dir = dir.parent()?;
    }
}

/// The content hash of a watched file, read as the resolver reads it (regular files only, never
/// blocking, capped): a FIFO or device is `None` like a missing file, and a file over the cap
/// hashes its size, so that growing past or shrinking below the cap is still a change.
fn hash_file(path: &Path) -> Hash {
    use qwen_env_resolve::fsread::{self, ReadError};
    match fsread::read_regular(path, fsread::JSON_CAP) {
        Ok((bytes, _)) => Some(Sha256::digest(&bytes).into()),
        Err(ReadError::TooLarge { len, .. }) => {
            Some(Sha256::digest(format!("too large: {len}").as_bytes()).into())
        }
        Err(ReadError::Io(_) | ReadError::NotRegular(_)) => None,
    }
}

/// How many findings have this severity.
pub fn count(findings: &[Finding], severity: Severity) -> u32 {
    u32::try_from(findings.iter().filter(|f| f.severity == severity).count()).unwrap_or(u32::MAX)
}
