//! The daemon in-process: a real [`State`] (kernel keyutils under a private namespace, a temp
//! data dir) served on a temporary socket by `server::serve`, or its engine called directly.
//! No binary is spawned; probes go to loopback mocks only.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use qwen_env_proto::codec;
use qwen_env_proto::{
    CallerContext, Hello, PROTOCOL_VERSION, Request, Response, SecretValue, Severity, VERSION,
    Welcome,
};
use qwen_env_tests::mock::{MockConfig, MockServer, Recorded, Response as Http};
use qwen_envd::engine::Probes;
use qwen_envd::keychain::Keychain;
use qwen_envd::probe::Prober;
use qwen_envd::resolution::Ask;
use qwen_envd::state::{Options, State};
use tokio::net::UnixStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

const KEY: &str = "sk-1a0000000000000000000000000000042";
const MODEL: &str = "qwen3-coder-plus";

/// A daemon's state over a temp dir, and a caller whose HOME is in it.
struct World {
    dir: tempfile::TempDir,
    state: Arc<State>,
}

impl World {
    fn new() -> World {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home/proj")).unwrap();
        let namespace =
            format!("engine{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let keychain = Keychain::open(Some("keyutils"), Some(&namespace)).unwrap();
        let state = State::new(Options {
            keychain,
            data_dir: dir.path().join("data"),
            namespace: Some(namespace),
            config_file: dir.path().join("config.toml"),
            catalog_file: None,
            socket: dir.path().join("sock"),
            log_file: dir.path().join("log"),
            prober: Prober::from_env(),
            lineage_file: Some(dir.path().join("lineage")),
        });
        World { dir, state }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn caller(&self) -> CallerContext {
        CallerContext {
            cwd: self.home().join("proj").display().to_string(),
            argv: vec!["qwen".to_owned()],
            env: vec![("HOME".to_owned(), self.home().display().to_string())],
        }
    }

    /// User settings that send the keychain's DASHSCOPE_API_KEY to `base`.
    fn settings(&self, base: &str, auth: bool) {
        let auth =
            if auth { r#", "security": { "auth": { "selectedType": "openai" } }"# } else { "" };
        let text = format!(
            r#"{{ "modelProviders": {{ "openai": [ {{ "id": "{MODEL}", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "{base}" }} ] }},
  "model": {{ "name": "{MODEL}" }}{auth} }}"#
        );
        write_by_rename(&self.home().join(".qwen/settings.json"), &text);
    }

    async fn set_key(&self) {
        let keys = self.state.engine().keys();
        keys.set("DASHSCOPE_API_KEY", &SecretValue::new(KEY.to_owned()), 1).await.unwrap();
    }

    async fn cleanup(&self) {
        let _ = self.state.engine().keys().remove("DASHSCOPE_API_KEY").await;
    }
}

fn write_by_rename(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Runs a test body on a runtime whose threads are spawned from the test's own thread, after a
/// [`World`] joined its session keyring there: keyutils keyrings belong to a thread's
/// credentials, which threads inherit from the thread that spawns them (as in the daemon, which
/// opens the keychain before its runtime starts).
fn in_runtime<F: std::future::Future<Output = ()>>(body: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(body);
}

type Conn = Framed<UnixStream, LengthDelimitedCodec>;

async fn ask(conn: &mut Conn, request: &Request) -> Response {
    conn.send(bytes::Bytes::copy_from_slice(&codec::encode(request))).await.unwrap();
    let body = conn.next().await.unwrap().unwrap();
    codec::decode(&body).unwrap()
}

#[test]
fn the_server_answers_on_a_temporary_socket() {
    let w = World::new();
    in_runtime(async {
        let socket = w.dir.path().join("sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        w.state.start();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(qwen_envd::server::serve(listener, w.state.clone(), async {
            let _ = stop_rx.await;
        }));

        let stream = UnixStream::connect(&socket).await.unwrap();
        let mut conn = Framed::new(stream, LengthDelimitedCodec::new());
        let hello = Hello { protocol: PROTOCOL_VERSION, client_version: VERSION.to_owned() };
        conn.send(bytes::Bytes::copy_from_slice(&codec::encode(&hello))).await.unwrap();
        let welcome: Welcome = codec::decode(&conn.next().await.unwrap().unwrap()).unwrap();
        assert_eq!(welcome.protocol, PROTOCOL_VERSION);
        assert_eq!(welcome.pid, std::process::id());

        let set = Request::KeySetVerified {
            name: "DASHSCOPE_API_KEY".to_owned(),
            value: SecretValue::new(KEY.to_owned()),
            caller: w.caller(),
            verify: false,
        };
        let got = ask(&mut conn, &set).await;
        let Response::KeyVerified { info, .. } = got else { panic!("key set failed: {got:?}") };
        assert_eq!(info.fingerprint, qwen_env_resolve::mask::fingerprint(KEY));
        let Response::Keys(keys) = ask(&mut conn, &Request::KeyList).await else { panic!() };
        assert_eq!(keys.len(), 1);
        assert!(keys[0].present, "{keys:?}");
        let bad = Request::KeyRemove { name: "not a name".to_owned() };
        let Response::Error { code, message } = ask(&mut conn, &bad).await else { panic!() };
        assert_eq!(code, qwen_env_proto::ErrorCode::BadRequest, "{message}");
        let Response::Status(status) = ask(&mut conn, &Request::Status).await else { panic!() };
        assert_eq!(status.keychain.backend, "keyutils");
        assert_eq!(status.connections, 1);

        w.cleanup().await;
        stop_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
    });
}

/// A mock whose `GET /v1/models` answers `answer` to our key.
fn provider(answer: Http) -> MockServer {
    let answer = Arc::new(answer);
    MockServer::start(MockConfig::new().handler(move |r: &Recorded| {
        (r.method == "GET" && r.path == "/v1/models").then(|| (*answer).clone())
    }))
    .unwrap()
}

/// The finding codes `doctor --verify` gives for a provider that answers `answer`.
fn verify_against(answer: Http) -> (Vec<(String, Severity)>, Vec<Recorded>) {
    let w = World::new();
    let mock = provider(answer);
    w.settings(&mock.base_url(), true);
    let mut codes = Vec::new();
    in_runtime(async {
        w.set_key().await;
        let caller = w.caller();
        let resolution = w.state.engine().verify(&Ask::plain(&caller)).await.unwrap();
        w.cleanup().await;
        codes = resolution.findings.into_iter().map(|f| (f.code, f.severity)).collect();
    });
    (codes, mock.requests())
}

#[test]
fn every_probe_answer_becomes_its_finding() {
    {
        let models = |ids: &[&str]| {
            Http::models_list(&ids.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        };
        let cases: Vec<(&str, Http, Option<&str>)> = vec![
            ("valid, model listed", models(&[MODEL, "qwen-max"]), None),
            ("valid, model missing", models(&["qwen-max"]), Some("model-unavailable")),
            ("401", Http::unauthorized(), Some("key-rejected")),
            ("403", Http::new(403), Some("key-rejected")),
            ("404", Http::text(404, "404 page not found"), Some("endpoint-not-found")),
            (
                "405 coding agents",
                Http::text(405, r#"{"error":"only available for Coding Agents"}"#),
                Some("plan-client-rejected"),
            ),
            ("429", Http::openai_error(429, "rate limit", "limit_requests"), Some("rate-limited")),
            ("500", Http::new(500), Some("probe-unexpected-status")),
        ];
        for (what, answer, expected) in cases {
            let (codes, requests) = verify_against(answer);
            assert_eq!(requests.len(), 1, "{what}: one probe, got {requests:?}");
            assert_eq!(requests[0].bearer(), Some(KEY), "{what}: the probe carries the key");
            let probe_codes: Vec<&str> = codes
                .iter()
                .map(|(c, _)| c.as_str())
                .filter(|c| {
                    [
                        "model-unavailable",
                        "key-rejected",
                        "endpoint-not-found",
                        "plan-client-rejected",
                        "rate-limited",
                        "probe-unexpected-status",
                        "endpoint-unreachable",
                    ]
                    .contains(c)
                })
                .collect();
            assert_eq!(probe_codes, expected.into_iter().collect::<Vec<_>>(), "{what}: {codes:?}");
        }
    }
}

#[test]
fn an_unreachable_endpoint_is_a_warning() {
    // Opened before the runtime starts, so its threads share this thread's session keyring.
    let w = World::new();
    in_runtime(async {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        w.settings(&format!("http://127.0.0.1:{port}/v1"), true);
        w.set_key().await;
        let caller = w.caller();
        let resolution = w.state.engine().verify(&Ask::plain(&caller)).await.unwrap();
        w.cleanup().await;
        let f = resolution.findings.iter().find(|f| f.code == "endpoint-unreachable");
        assert_eq!(f.map(|f| f.severity), Some(Severity::Warning), "{:?}", resolution.findings);
    });
}

#[test]
fn an_edit_is_reassessed_and_reported() {
    let w = World::new();
    in_runtime(async {
        w.settings("https://dashscope-intl.aliyuncs.com/compatible-mode/v1", true);
        w.set_key().await;
        w.state.start();
        let caller = w.caller();
        let first = w.state.engine().answer(&Ask::plain(&caller), Probes::Skip).await;
        assert!(
            !first.resolution.findings.iter().any(|f| f.severity == Severity::Error),
            "{:?}",
            first.resolution.findings
        );
        let mut events = w.state.engine().watcher().subscribe();
        // No auth type any more: Qwen Code would not start.
        w.settings("https://dashscope-intl.aliyuncs.com/compatible-mode/v1", false);
        let changed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let ev = events.recv().await.unwrap();
                if ev.kind == "findings-changed" {
                    return ev;
                }
            }
        })
        .await
        .expect("no findings-changed event within 10 s");
        assert!(changed.findings.iter().any(|f| f.severity == Severity::Error), "{changed:?}");
        assert!(changed.context.unwrap().ends_with("proj"));
        w.cleanup().await;
    });
}
