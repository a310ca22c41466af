//! The messages: handshake, [`Request`] and [`Response`], and the data they carry.
//!
//! Append-only: see the compatibility rules in the crate docs. Each `Request` variant's doc names
//! the `Response` it gets; any request can also get [`Response::Error`].

use serde::{Deserialize, Serialize};

use crate::SecretValue;

/// First frame from the client. Never changes layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The client's [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The client's crate version, for messages.
    pub client_version: String,
}

/// The daemon's answer to [`Hello`]. Never changes layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The daemon's [`crate::PROTOCOL_VERSION`]. If it differs, the client sends only
    /// `Request::Shutdown`.
    pub protocol: u32,
    /// The daemon's crate version.
    pub daemon_version: String,
    /// The daemon's process id.
    pub pid: u32,
}

/// A request from the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Ask the daemon to exit. Answered by [`Response::ShuttingDown`]. Index 0 forever.
    Shutdown,
    /// Daemon state. Answered by [`Response::Status`].
    Status,
    /// List stored keys (metadata only). Answered by [`Response::Keys`].
    KeyList,
    /// Delete a stored key. Answered by [`Response::Removed`].
    KeyRemove {
        /// The key's name.
        name: String,
    },
    /// What `qwen-env run` must give the child. Answered by [`Response::Run`].
    Run(RunRequest),
    /// Resolve the caller's configuration (`explain`, `doctor`). Answered by [`Response::Resolved`].
    Resolve(ResolveRequest),
    /// Stream what the daemon notices (`qwen-env events`). Answered by a [`Response::Event`] for
    /// each change until the client disconnects.
    Events,
    /// Move literal keys from the caller's files into the keychain (`qwen-env key import`).
    /// Answered by [`Response::Imported`].
    KeyImport(ImportRequest),
    /// `doctor --verify`: resolve, then probe the endpoint with the key and wait for fresh
    /// results. Answered by [`Response::Resolved`].
    Verify(ResolveRequest),
    /// `key set` with verification: store the key, then (when `verify`) probe it at the catalogue
    /// families it can belong to and compare with the caller's settings. Answered by
    /// [`Response::KeyVerified`].
    KeySetVerified {
        /// The variable the key feeds.
        name: String,
        /// The key itself.
        value: SecretValue,
        /// Where the caller stands, to say what "your settings" use.
        caller: CallerContext,
        /// Probe the key (`false`: `key set --no-verify`, store only).
        verify: bool,
    },
    /// `qwen-env trust`: trust, list or revoke a directory's own files. Answered by
    /// [`Response::Trust`].
    Trust(TrustRequest),
    /// `qwen-env key migrate --from BACKEND [NAME...]`: move keys from another keychain backend
    /// into the one the daemon uses. Answered by [`Response::Migrated`].
    KeyMigrate {
        /// The backend to move them from (`keyutils`, `secret-service`).
        from: String,
        /// The keys to move; empty: every key `key ls` lists.
        names: Vec<String>,
    },
    /// Names for shell completion (`qwen-env __complete`): from the daemon's index and config
    /// only, never the keychain, so it is fast and cannot prompt. Answered by
    /// [`Response::Names`].
    Names(NameKind),
}

/// What `Request::Names` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NameKind {
    /// Stored keys' names.
    Keys,
    /// The config's profiles.
    Profiles,
}

/// Parameters of `Request::Trust`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustRequest {
    /// The directory (`cwd`) and the caller's environment it resolves with.
    pub caller: CallerContext,
    /// What to do.
    pub action: TrustAction,
}

/// What `qwen-env trust` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrustAction {
    /// Trust the directory's own files (workspace settings, project `.env`) as they are now.
    Grant,
    /// List every trusted file.
    List,
    /// Forget every trusted file in or below the directory.
    Revoke,
}

/// One trusted project file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustEntry {
    /// Its absolute path.
    pub path: String,
    /// `sha256:` + 12 hex digits of the trusted content.
    pub fingerprint: String,
    /// When it was trusted (Unix seconds).
    pub at: u64,
    /// Whether the file still has that content (the trust holds).
    pub current: bool,
}

/// Parameters of `Request::KeyImport`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ImportRequest {
    /// Who asks and where: without `paths`, the files its resolution reads are searched.
    pub caller: CallerContext,
    /// Only these files (absolute paths).
    pub paths: Vec<String>,
    /// Remove each imported literal from its file (a backup is kept under the state directory).
    pub scrub: bool,
    /// Replace a different value already in the keychain.
    pub force: bool,
}

/// What `key import` did with one literal key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportItem {
    /// The variable it feeds (the keychain entry).
    pub name: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// Masked display.
    pub masked: String,
    /// Where it was found.
    pub location: String,
    /// Whether it is in the keychain now.
    pub stored: bool,
    /// Whether it was removed from its file.
    pub scrubbed: bool,
    /// What happened, for people (and why, when nothing did).
    pub note: String,
}

/// What `key migrate` did with one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateItem {
    /// The key's name.
    pub name: String,
    /// The fingerprint of the value found in the backend it came from.
    pub fingerprint: String,
    /// Whether the daemon's backend holds it now and the old copy is gone.
    pub moved: bool,
    /// What happened, for people (and what to do, when nothing did).
    pub note: String,
}

/// A response from the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Response for `Request::Shutdown`: the daemon exits after sending it.
    ShuttingDown,
    /// The request failed. Possible for any request.
    Error {
        /// What kind of failure, for the client's exit code and hint.
        code: ErrorCode,
        /// A message for the user that says what to do. Never holds a secret.
        message: String,
    },
    /// Response for `Request::Status`.
    Status(StatusInfo),
    /// Response for `Request::KeyList`.
    Keys(Vec<KeyInfo>),
    /// Response for `Request::KeyRemove`.
    Removed {
        /// The removed key's name.
        name: String,
    },
    /// Response for `Request::Run`.
    Run(RunPlan),
    /// Response for `Request::Resolve` and `Request::Verify`.
    Resolved(Box<Resolution>),
    /// One of the stream of responses to `Request::Events`.
    Event(EventInfo),
    /// Response for `Request::KeyImport`: one item per literal found.
    Imported(Vec<ImportItem>),
    /// Response for `Request::KeySetVerified`.
    KeyVerified {
        /// The stored key's metadata (with the detected family and region).
        info: KeyInfo,
        /// Where the key works and what the caller's settings use, in words.
        notes: Vec<String>,
        /// Problems the probes found (`key-rejected`, `key-region-mismatch`, …).
        findings: Vec<Finding>,
    },
    /// Response for `Request::Trust`: what was trusted, listed or revoked.
    Trust(Vec<TrustEntry>),
    /// Response for `Request::KeyMigrate`: one item per key found in the other backend.
    Migrated(Vec<MigrateItem>),
    /// Response for `Request::Names`, sorted.
    Names(Vec<String>),
}

/// Something the daemon noticed: a watched file changed, or a context's findings changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInfo {
    /// When (Unix seconds).
    pub time: u64,
    /// `file-changed`, `file-removed`, `findings-changed`, `watch-limit`.
    pub kind: String,
    /// The file concerned, if any.
    pub path: Option<String>,
    /// The context concerned (`<tool> in <cwd>`), if any.
    pub context: Option<String>,
    /// One line for people.
    pub message: String,
    /// For `findings-changed`: the context's findings now.
    pub findings: Vec<Finding>,
}

/// A directory and command the daemon keeps resolved and watched because a client asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextInfo {
    /// The directory.
    pub cwd: String,
    /// `qwen-code`, `openclaw` or `generic`.
    pub tool: String,
    /// Findings of severity error at the last resolution.
    pub errors: u32,
    /// Findings of severity warning at the last resolution.
    pub warnings: u32,
    /// Seconds since a client last asked about it.
    pub idle_secs: u64,
}

/// Kinds of failure carried by [`Response::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The request itself is invalid (bad name, bad path).
    BadRequest,
    /// The named key or object does not exist.
    NotFound,
    /// The keychain failed, timed out or is locked.
    Keychain,
    /// The daemon refuses this caller or this request.
    Refused,
    /// A bug or an unexpected I/O failure in the daemon.
    Internal,
}

/// What the daemon reports about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// Daemon process id.
    pub pid: u32,
    /// Daemon crate version.
    pub daemon_version: String,
    /// Daemon protocol version.
    pub protocol: u32,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// Path of the socket it listens on.
    pub socket: String,
    /// Path of its log file.
    pub log_file: String,
    /// The keychain backend in use.
    pub keychain: KeychainInfo,
    /// Connections accepted since start.
    pub connections: u64,
    /// Files watched for changes.
    pub watched: Vec<String>,
    /// Contexts kept resolved.
    pub contexts: Vec<ContextInfo>,
    /// Why watching is degraded (e.g. the inotify limit), if it is.
    pub watch_note: Option<String>,
}

/// The keychain backend the daemon uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeychainInfo {
    /// `secret-service`, `keyutils`, `macos` or `windows`.
    pub backend: String,
    /// Whether keys survive a reboot.
    pub durable: bool,
    /// Why this backend was chosen, or what to know about it.
    pub note: Option<String>,
}

/// Metadata of a stored key. Never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The variable the key feeds.
    pub name: String,
    /// `sha256:` + the first 12 hex digits of SHA-256 of the key.
    pub fingerprint: String,
    /// Masked display, e.g. `sk-…a289`.
    pub masked: String,
    /// Keychain backend that holds it.
    pub backend: String,
    /// When it was first stored (Unix seconds).
    pub created: u64,
    /// When its value last changed (Unix seconds).
    pub changed: u64,
    /// Whether the keychain still holds it (kernel keyutils forgets keys at reboot).
    pub present: bool,
    /// Catalogue family detected by the last probe that accepted it (`dashscope`, `coding-plan`).
    pub family: Option<String>,
    /// Region of that family's endpoint (`ap-southeast-1`).
    pub region: Option<String>,
    /// The last probe's result in words (`valid at …`, `rejected (HTTP 401) by …`).
    pub probe: Option<String>,
    /// When it was last probed (Unix seconds; 0 = never).
    pub probed: u64,
}

/// The caller's situation, sent with every request that resolves. The daemon uses it for that
/// one request and never applies it to its own environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct CallerContext {
    /// The caller's working directory (absolute).
    pub cwd: String,
    /// The target command and its arguments; empty means "no command given".
    pub argv: Vec<String>,
    /// The caller's exported environment.
    pub env: Vec<(String, String)>,
}

/// Parameters of `Request::Run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RunRequest {
    /// Who asks, where, for which command.
    pub caller: CallerContext,
    /// Keychain entries to inject in addition to what the resolution reads (`--with`).
    pub with: Vec<String>,
    /// A profile from the config naming a set of keys (`--profile`).
    pub profile: Option<String>,
    /// Run Qwen Code hermetically (`--bare`).
    pub bare: bool,
}

/// Parameters of `Request::Resolve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResolveRequest {
    /// Who asks, where, for which command.
    pub caller: CallerContext,
    /// Resolve as the host tool would today, without the keychain overlay of `run`.
    pub as_is: bool,
    /// Keys named by `--with`, as for `run`.
    pub with: Vec<String>,
    /// Profile, as for `run`.
    pub profile: Option<String>,
    /// Variables to explain in addition to the four fields.
    pub variables: Vec<String>,
}

/// What `run` does to the child: the daemon decides, the client applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RunPlan {
    /// Secrets to set in the child's environment.
    pub secrets: Vec<(String, SecretValue)>,
    /// Non-secret variables to set (e.g. `OPENAI_BASE_URL` under `--bare`).
    pub vars: Vec<(String, String)>,
    /// Variables to remove from the child's environment.
    pub unset: Vec<String>,
    /// Arguments to insert after the program name (e.g. `--bare`).
    pub extra_args: Vec<String>,
    /// Problems found; the client prints errors and warnings before exec.
    pub findings: Vec<Finding>,
    /// What `run` changed, in words (e.g. a stale exported key replaced), for stderr.
    pub notes: Vec<String>,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    /// The request will fail.
    Error,
    /// Likely wrong or fragile.
    Warning,
    /// Worth knowing.
    Info,
}

impl Severity {
    /// The lower-case name used in output and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }
}

/// One problem, with the exact change that fixes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable kebab-case code (DESIGN.md section 7). Never renamed.
    pub code: String,
    /// How bad it is.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// The exact change to make.
    pub fix: String,
    /// `file:line:col` or a variable name.
    pub location: Option<String>,
    /// For probes: status code and endpoint.
    pub evidence: Option<String>,
}

/// One resolved field (auth type, model, base URL, API key, or a variable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Field {
    /// The value; for secrets the masked display (`sk-…a289`), never the secret.
    pub value: Option<String>,
    /// Where the value comes from (`~/.qwen/settings.json:12:5 modelProviders.openai[0].baseUrl`,
    /// `env OPENAI_API_KEY`, `flag --model`, `keychain DASHSCOPE_API_KEY`, `default`).
    pub source: Option<String>,
    /// For secrets: the variable that carries it.
    pub variable: Option<String>,
    /// For secrets: the fingerprint.
    pub fingerprint: Option<String>,
    /// Candidates this value beat, highest priority first.
    pub shadowed: Vec<Shadowed>,
}

/// A candidate value that lost to a field's winner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shadowed {
    /// The value (masked for secrets).
    pub value: Option<String>,
    /// For secrets: the fingerprint.
    pub fingerprint: Option<String>,
    /// Where it is defined.
    pub source: String,
}

/// The result of resolving a caller's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Resolution {
    /// `qwen-code`, `openclaw` or `generic`.
    pub tool: String,
    /// Auth type (protocol) the host will use.
    pub auth_type: Field,
    /// Model id.
    pub model: Field,
    /// Base URL requests go to.
    pub base_url: Field,
    /// API key (masked, with fingerprint and variable).
    pub api_key: Field,
    /// Variables the caller asked about, in the order asked.
    pub variables: Vec<(String, Field)>,
    /// Problems found, most severe first.
    pub findings: Vec<Finding>,
}

#[cfg(test)]
mod tests {
    //! Pins the encoded bytes of every message. If one of these fails, a change broke
    //! cross-version daemon IPC: bump `PROTOCOL_VERSION`, or append instead of editing.
    use super::*;
    use crate::codec::encode;

    fn hex(msg: &impl Serialize) -> String {
        encode(msg).iter().fold(String::new(), |mut s, b| {
            use std::fmt::Write;
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    fn field() -> Field {
        Field {
            value: Some("v".into()),
            source: Some("s".into()),
            variable: None,
            fingerprint: None,
            shadowed: vec![Shadowed {
                value: None,
                fingerprint: Some("f".into()),
                source: "o".into(),
            }],
        }
    }

    fn finding() -> Finding {
        Finding {
            code: "c".into(),
            severity: Severity::Warning,
            message: "m".into(),
            fix: "x".into(),
            location: Some("l".into()),
            evidence: None,
        }
    }

    fn caller() -> CallerContext {
        CallerContext {
            cwd: "/".into(),
            argv: vec!["q".into()],
            env: vec![("K".into(), "V".into())],
        }
    }

    #[test]
    fn handshake_bytes_never_change() {
        assert_eq!(hex(&Hello { protocol: 1, client_version: "0.1".into() }), "0103302e31");
        assert_eq!(
            hex(&Welcome { protocol: 1, daemon_version: "0.1".into(), pid: 300 }),
            "0103302e31ac02"
        );
    }

    #[test]
    fn request_bytes_are_pinned() {
        let cases: Vec<(Request, &str)> = vec![
            (Request::Shutdown, "00"),
            (Request::Events, "06"),
            (
                Request::KeyImport(ImportRequest {
                    caller: caller(),
                    paths: vec!["/p".into()],
                    scrub: true,
                    force: false,
                }),
                "07012f01017101014b015601022f700100",
            ),
            (Request::Status, "01"),
            (Request::KeyList, "02"),
            (Request::KeyRemove { name: "K".into() }, "03014b"),
            (
                Request::Run(RunRequest {
                    caller: caller(),
                    with: vec!["W".into()],
                    profile: Some("p".into()),
                    bare: true,
                }),
                "04012f01017101014b015601015701017001",
            ),
            (
                Request::Resolve(ResolveRequest {
                    caller: caller(),
                    as_is: true,
                    with: vec![],
                    profile: None,
                    variables: vec!["V".into()],
                }),
                "05012f01017101014b0156010000010156",
            ),
            (
                Request::Verify(ResolveRequest {
                    caller: caller(),
                    as_is: false,
                    with: vec![],
                    profile: None,
                    variables: vec![],
                }),
                "08012f01017101014b015600000000",
            ),
            (
                Request::KeySetVerified {
                    name: "K".into(),
                    value: SecretValue::new("s".into()),
                    caller: caller(),
                    verify: true,
                },
                "09014b0173012f01017101014b015601",
            ),
            (Request::KeyMigrate { from: "k".into(), names: vec!["K".into()] }, "0b016b01014b"),
        ];
        for (msg, bytes) in cases {
            assert_eq!(hex(&msg), bytes, "{msg:?}");
        }
    }

    #[test]
    fn response_bytes_are_pinned() {
        let key = KeyInfo {
            name: "K".into(),
            fingerprint: "f".into(),
            masked: "m".into(),
            backend: "b".into(),
            created: 1,
            changed: 2,
            present: true,
            family: Some("d".into()),
            region: None,
            probe: Some("v".into()),
            probed: 3,
        };
        let cases: Vec<(Response, &str)> = vec![
            (Response::ShuttingDown, "00"),
            (
                Response::Imported(vec![ImportItem {
                    name: "K".into(),
                    fingerprint: "f".into(),
                    masked: "m".into(),
                    location: "l".into(),
                    stored: true,
                    scrubbed: false,
                    note: "n".into(),
                }]),
                "0801014b0166016d016c0100016e",
            ),
            (
                Response::Event(EventInfo {
                    time: 1,
                    kind: "k".into(),
                    path: None,
                    context: Some("c".into()),
                    message: "m".into(),
                    findings: vec![],
                }),
                "0701016b00010163016d00",
            ),
            (Response::Error { code: ErrorCode::Keychain, message: "m".into() }, "0102016d"),
            (
                Response::Status(StatusInfo {
                    pid: 1,
                    daemon_version: "v".into(),
                    protocol: 1,
                    uptime_secs: 2,
                    socket: "s".into(),
                    log_file: "l".into(),
                    keychain: KeychainInfo {
                        backend: "k".into(),
                        durable: false,
                        note: Some("n".into()),
                    },
                    connections: 3,
                    watched: vec!["w".into()],
                    contexts: vec![ContextInfo {
                        cwd: "/".into(),
                        tool: "t".into(),
                        errors: 1,
                        warnings: 2,
                        idle_secs: 3,
                    }],
                    watch_note: None,
                }),
                "0201017601020173016c016b0001016e0301017701012f017401020300",
            ),
            (Response::Keys(vec![key.clone()]), "0301014b0166016d01620102010101640001017603"),
            (Response::Removed { name: "K".into() }, "04014b"),
            (
                Response::Run(RunPlan {
                    secrets: vec![("K".into(), SecretValue::new("s".into()))],
                    vars: vec![("A".into(), "b".into())],
                    unset: vec!["U".into()],
                    extra_args: vec!["--bare".into()],
                    findings: vec![finding()],
                    notes: vec!["n".into()],
                }),
                "0501014b0173010141016201015501062d2d6261726501016301016d017801016c0001016e",
            ),
            (
                Response::Resolved(Box::new(Resolution {
                    tool: "qwen-code".into(),
                    auth_type: field(),
                    model: Field::default(),
                    base_url: Field::default(),
                    api_key: field(),
                    variables: vec![("V".into(), Field::default())],
                    findings: vec![finding()],
                })),
                "06097177656e2d636f646501017601017300000100010166016f0000000000000000000001017601017300000100010166016f010156000000000001016301016d017801016c00",
            ),
            (
                Response::KeyVerified { info: key, notes: vec!["n".into()], findings: vec![] },
                "09014b0166016d0162010201010164000101760301016e00",
            ),
            (
                Response::Trust(vec![TrustEntry {
                    path: "/p".into(),
                    fingerprint: "f".into(),
                    at: 1,
                    current: true,
                }]),
                "0a01022f7001660101",
            ),
            (
                Response::Migrated(vec![MigrateItem {
                    name: "K".into(),
                    fingerprint: "f".into(),
                    moved: true,
                    note: "n".into(),
                }]),
                "0b01014b016601016e",
            ),
            (Response::Names(vec!["K".into()]), "0c01014b"),
        ];
        for (msg, bytes) in cases {
            assert_eq!(hex(&msg), bytes, "{msg:?}");
        }
    }
}
