//! Loopback mock of an OpenAI-compatible provider, for the differential suite and probe tests.
//!
//! A small HTTP/1.1 server on `127.0.0.1` (ephemeral port) built on std threads: one thread accepts,
//! one thread serves each connection (keep-alive, `Content-Length` or chunked request bodies,
//! `Expect: 100-continue`). Every request is recorded ([`Recorded`]) before it is answered.
//!
//! What it answers, first match wins:
//! 1. the [`MockConfig::handler`] closure, when it returns `Some`;
//! 2. a [`MockConfig::route`] (method and exact path) or [`MockConfig::route_suffix`];
//! 3. `401 invalid_api_key` when keys are restricted ([`MockConfig::accept_key`],
//!    [`MockConfig::accept_key_under`]) and the request's Bearer key is not accepted for its path;
//! 4. `POST …/chat/completions`: a chat completion, streamed as SSE (`chat.completion.chunk`
//!    events, a usage chunk, then `data: [DONE]`) when the body asks for `"stream": true`, else one
//!    `chat.completion` JSON object;
//! 5. `GET …/models`: `{"object":"list","data":[…]}` from [`MockConfig::models`];
//! 6. anything else: `404 page not found` (a known path with the wrong method: 405).
//!
//! Bounded by construction: every read and write has a timeout, the listener is polled so it
//! notices a stop within milliseconds, delays wait on a condition variable that a stop wakes, and
//! dropping the [`MockServer`] shuts every connection down and joins every thread.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Longest request head (request line plus headers) the mock reads.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body the mock reads (Qwen Code sends ~60 KiB of tool schemas).
const MAX_BODY: usize = 32 * 1024 * 1024;
/// Per-read and per-write timeout; an idle keep-alive connection is closed after this.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(5);

/// A request as it arrived at the mock.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, … as sent.
    pub method: String,
    /// The request target without the query string, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The query string without `?`, if any.
    pub query: Option<String>,
    /// All headers, names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The `Authorization` header, verbatim.
    pub authorization: Option<String>,
    /// The raw body (chunked bodies are decoded).
    pub body: Vec<u8>,
    /// The body parsed as JSON, when it is JSON.
    pub body_json: Option<Value>,
}

impl Recorded {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The key of an `Authorization: Bearer <key>` header (the scheme is matched
    /// case-insensitively; the key is returned exactly as sent, possibly empty).
    pub fn bearer(&self) -> Option<&str> {
        let auth = self.authorization.as_deref()?;
        let (scheme, rest) = auth.split_at_checked(6)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        Some(rest.strip_prefix(' ').unwrap_or(rest))
    }

    /// The `model` field of a JSON body.
    pub fn model(&self) -> Option<&str> {
        self.body_json.as_ref()?.get("model")?.as_str()
    }

    /// Whether this is a `POST …/chat/completions`.
    pub fn is_chat_completion(&self) -> bool {
        self.method == "POST" && self.path.ends_with("/chat/completions")
    }
}

/// An answer the mock sends.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Extra headers (`Content-Length` and `Connection` are added by the mock).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// How long to wait before answering (a slow server); a stop of the mock cuts it short.
    pub delay: Duration,
}

impl Response {
    /// A response with this status and an empty body.
    pub fn new(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: Vec::new(), delay: Duration::ZERO }
    }

    /// A JSON body.
    pub fn json(status: u16, body: &Value) -> Self {
        Self::new(status).header("content-type", "application/json").body(body.to_string())
    }

    /// A plain-text body.
    pub fn text(status: u16, body: &str) -> Self {
        Self::new(status).header("content-type", "text/plain; charset=utf-8").body(body)
    }

    /// An OpenAI-style error envelope, as DashScope's compatible mode sends it:
    /// `{"error":{"message","type":"invalid_request_error","param":null,"code"}}`.
    pub fn openai_error(status: u16, message: &str, code: &str) -> Self {
        Self::json(
            status,
            &json!({"error": {"message": message, "type": "invalid_request_error",
                              "param": null, "code": code}}),
        )
    }

    /// `401` with the `invalid_api_key` envelope.
    pub fn unauthorized() -> Self {
        Self::openai_error(401, "Incorrect API key provided.", "invalid_api_key")
    }

    /// `{"object":"list","data":[{"id",…}]}`, the body of `GET /models`.
    pub fn models_list(ids: &[String]) -> Self {
        let data: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "mock"}))
            .collect();
        Self::json(200, &json!({"object": "list", "data": data}))
    }

    /// A streamed chat completion: one content chunk, a `finish_reason: "stop"` chunk, a usage
    /// chunk (Qwen Code sends `stream_options.include_usage`), then `data: [DONE]`.
    pub fn chat_completion_sse(model: &str, text: &str) -> Self {
        let base = |choices: Value| {
            json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0,
                   "model": model, "choices": choices})
        };
        let mut usage = base(json!([]));
        usage["usage"] = json!({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2});
        let events = [
            base(json!([{"index": 0, "delta": {"role": "assistant", "content": text},
                         "finish_reason": null}])),
            base(json!([{"index": 0, "delta": {}, "finish_reason": "stop"}])),
            usage,
        ];
        let mut body = String::new();
        for event in &events {
            let _ = write!(body, "data: {event}\n\n");
        }
        body.push_str("data: [DONE]\n\n");
        Self::new(200)
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-cache")
            .body(body)
    }

    /// A non-streamed chat completion.
    pub fn chat_completion_json(model: &str, text: &str) -> Self {
        Self::json(
            200,
            &json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": 0,
                    "model": model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
        )
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Replaces the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Answers only after `delay`.
    #[must_use]
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A closure consulted before everything else; `None` falls through to the routes and defaults.
pub type Handler = Arc<dyn Fn(&Recorded) -> Option<Response> + Send + Sync>;

#[derive(Clone)]
enum PathMatch {
    Exact(String),
    Suffix(String),
}

#[derive(Clone)]
struct Route {
    method: String,
    path: PathMatch,
    response: Response,
}

/// What the mock answers; see the module docs for the order.
#[derive(Clone)]
pub struct MockConfig {
    models: Vec<String>,
    accepted: Vec<(String, String)>,
    routes: Vec<Route>,
    handler: Option<Handler>,
    reply: String,
    delay: Duration,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            models: vec!["mock-model".to_owned()],
            accepted: Vec::new(),
            routes: Vec::new(),
            handler: None,
            reply: "pong from mock".to_owned(),
            delay: Duration::ZERO,
        }
    }
}

impl MockConfig {
    /// An OpenAI-compatible server that accepts any key, lists `mock-model` and answers
    /// "pong from mock".
    pub fn new() -> Self {
        Self::default()
    }

    /// The model ids `GET …/models` lists.
    #[must_use]
    pub fn models<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.models = ids.into_iter().map(Into::into).collect();
        self
    }

    /// Accepts `key` on every path. Once any key is accepted, other keys get `401`.
    #[must_use]
    pub fn accept_key(self, key: &str) -> Self {
        self.accept_key_under("/", key)
    }

    /// Accepts `key` for paths under `prefix` (e.g. `/intl/v1`), so one server can play several
    /// regional endpoints that each take their own key. A path under no registered prefix is open.
    #[must_use]
    pub fn accept_key_under(mut self, prefix: &str, key: &str) -> Self {
        self.accepted.push((prefix.to_owned(), key.to_owned()));
        self
    }

    /// Answers `method path` (exact path, query ignored) with `response`.
    #[must_use]
    pub fn route(mut self, method: &str, path: &str, response: Response) -> Self {
        let path = PathMatch::Exact(path.to_owned());
        self.routes.push(Route { method: method.to_owned(), path, response });
        self
    }

    /// Answers `method` on any path ending in `suffix` with `response`.
    #[must_use]
    pub fn route_suffix(mut self, method: &str, suffix: &str, response: Response) -> Self {
        let path = PathMatch::Suffix(suffix.to_owned());
        self.routes.push(Route { method: method.to_owned(), path, response });
        self
    }

    /// A closure consulted first for every request.
    #[must_use]
    pub fn handler(
        mut self,
        handler: impl Fn(&Recorded) -> Option<Response> + Send + Sync + 'static,
    ) -> Self {
        self.handler = Some(Arc::new(handler));
        self
    }

    /// The assistant text of chat completions.
    #[must_use]
    pub fn reply_text(mut self, text: &str) -> Self {
        text.clone_into(&mut self.reply);
        self
    }

    /// Delays every default answer (completions, models, 401, 404) by `delay`.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    fn respond(&self, req: &Recorded) -> Response {
        if let Some(resp) = self.handler.as_ref().and_then(|h| h(req)) {
            return resp;
        }
        for route in &self.routes {
            let path_ok = match &route.path {
                PathMatch::Exact(p) => req.path == *p,
                PathMatch::Suffix(s) => req.path.ends_with(s.as_str()),
            };
            if path_ok && route.method.eq_ignore_ascii_case(&req.method) {
                return route.response.clone();
            }
        }
        self.default_response(req).delayed(self.delay)
    }

    fn default_response(&self, req: &Recorded) -> Response {
        let under = |prefix: &str| {
            let prefix = prefix.trim_end_matches('/');
            req.path == prefix || req.path.starts_with(&format!("{prefix}/"))
        };
        let guarding: Vec<&str> =
            self.accepted.iter().filter(|(p, _)| under(p)).map(|(_, k)| k.as_str()).collect();
        if !guarding.is_empty() && !req.bearer().is_some_and(|k| guarding.contains(&k)) {
            return Response::unauthorized();
        }
        let is_chat = req.path.ends_with("/chat/completions");
        let is_models = req.path.ends_with("/models");
        match req.method.as_str() {
            "POST" if is_chat => {
                let body = req.body_json.as_ref();
                let model = body.and_then(|b| b.get("model")).and_then(Value::as_str);
                let model = model.unwrap_or("mock-model");
                let stream = body.and_then(|b| b.get("stream")).and_then(Value::as_bool);
                if stream == Some(true) {
                    Response::chat_completion_sse(model, &self.reply)
                } else {
                    Response::chat_completion_json(model, &self.reply)
                }
            }
            "GET" if is_models => Response::models_list(&self.models),
            _ if is_chat || is_models => Response::text(405, "method not allowed"),
            _ => Response::text(404, "404 page not found"),
        }
    }
}

/// State shared by the server handle and its threads.
struct Shared {
    config: MockConfig,
    stop: AtomicBool,
    /// Waited on by delays; notified on stop.
    wake: (Mutex<()>, Condvar),
    requests: Mutex<Vec<Recorded>>,
    /// Clones of the live connections, so a stop can shut them down; keyed by connection number.
    streams: Mutex<HashMap<u64, TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    next_conn: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking connection thread must not take the test's view of the requests with it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps for `d` or until the server stops, whichever comes first.
    fn sleep(&self, d: Duration) {
        let deadline = Instant::now() + d;
        let mut guard = lock(&self.wake.0);
        while !self.stopped() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            guard = self.wake.1.wait_timeout(guard, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }
}

/// A running mock; stops and joins its threads on drop.
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Binds `127.0.0.1:0` and starts serving `config`.
    pub fn start(config: MockConfig) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            stop: AtomicBool::new(false),
            wake: (Mutex::new(()), Condvar::new()),
            requests: Mutex::new(Vec::new()),
            streams: Mutex::new(HashMap::new()),
            workers: Mutex::new(Vec::new()),
            next_conn: AtomicU64::new(0),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("mock-accept-{}", addr.port()))
                .spawn(move || accept_loop(&listener, &shared))?
        };
        Ok(Self { addr, shared, acceptor: Some(acceptor) })
    }

    /// An OpenAI-compatible mock with the default [`MockConfig`].
    pub fn openai() -> io::Result<Self> {
        Self::start(MockConfig::new())
    }

    /// The socket address (always 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` with no path.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1`, an OpenAI-style base URL.
    pub fn base_url(&self) -> String {
        self.url("/v1")
    }

    /// The origin joined with `path` (which should start with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    /// Every request recorded so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// Forgets the requests recorded so far.
    pub fn clear(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Waits until at least `n` requests are recorded or `timeout` passes; returns what is there.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let _guard = lock(&self.shared.wake.0);
            self.shared.wake.1.notify_all();
        }
        // The acceptor first: once it is gone nobody registers new connections.
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for stream in lock(&self.shared.streams).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let workers = std::mem::take(&mut *lock(&self.shared.workers));
        for w in workers {
            let _ = w.join();
        }
    }
}

impl std::fmt::Debug for MockServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stopped() {
        match listener.accept() {
            Ok((stream, peer)) => {
                // Only loopback: the listener is bound to 127.0.0.1, this is belt and braces.
                if !peer.ip().is_loopback() {
                    continue;
                }
                let id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
                let Ok(clone) = stream.try_clone() else { continue };
                lock(&shared.streams).insert(id, clone);
                let worker = {
                    let shared = Arc::clone(shared);
                    std::thread::Builder::new().name(format!("mock-conn-{id}")).spawn(move || {
                        serve_connection(stream, &shared);
                        lock(&shared.streams).remove(&id);
                    })
                };
                match worker {
                    Ok(handle) => lock(&shared.workers).push(handle),
                    Err(_) => {
                        lock(&shared.streams).remove(&id);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(_) => std::thread::sleep(ACCEPT_POLL),
        }
    }
}

fn serve_connection(stream: TcpStream, shared: &Shared) {
    // Accepted sockets may inherit the listener's non-blocking flag on some platforms.
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(IO_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(IO_TIMEOUT)).is_err()
    {
        return;
    }
    let Ok(write_half) = stream.try_clone() else { return };
    let mut writer = write_half;
    let mut reader = BufReader::new(stream);
    while !shared.stopped() {
        let Ok(Some((req, keep_alive))) = read_request(&mut reader, &mut writer) else { return };
        lock(&shared.requests).push(req.clone());
        let resp = shared.config.respond(&req);
        if !resp.delay.is_zero() {
            shared.sleep(resp.delay);
        }
        if shared.stopped() || write_response(&mut writer, &resp, keep_alive).is_err() {
            return;
        }
        if !keep_alive {
            let _ = writer.shutdown(Shutdown::Write);
            return;
        }
    }
}

/// Reads one request; `Ok(None)` on a clean close between requests.
fn read_request(
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
) -> io::Result<Option<(Recorded, bool)>> {
    let bad = |msg: &str| io::Error::new(io::ErrorKind::InvalidData, msg.to_owned());
    let mut head_len = 0;
    let mut request_line = String::new();
    // Tolerate stray CRLFs between pipelined requests (RFC 9112 §2.2).
    while request_line.trim().is_empty() {
        request_line.clear();
        if read_line_bounded(reader, &mut request_line, &mut head_len)? == 0 {
            return Ok(None);
        }
    }
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed request line"));
    };
    let (method, target, version) = (method.to_owned(), target.to_owned(), version.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if read_line_bounded(reader, &mut line, &mut head_len)? == 0 {
            return Err(bad("connection closed inside the request head"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| bad("malformed header"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let get = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    if get("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let chunked =
        get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        read_chunked(reader)?
    } else {
        let len: usize = match get("content-length") {
            Some(v) => v.parse().map_err(|_| bad("bad content-length"))?,
            None => 0,
        };
        if len > MAX_BODY {
            return Err(bad("body too large"));
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        body
    };
    let connection = get("connection").map(str::to_ascii_lowercase);
    let keep_alive = match connection.as_deref() {
        Some(c) if c.contains("close") => false,
        Some(c) if c.contains("keep-alive") => true,
        _ => version != "HTTP/1.0",
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target, None),
    };
    let authorization = get("authorization").map(str::to_owned);
    let body_json = serde_json::from_slice(&body).ok();
    Ok(Some((
        Recorded { method, path, query, headers, authorization, body, body_json },
        keep_alive,
    )))
}

/// `read_line` that refuses heads longer than [`MAX_HEAD`].
fn read_line_bounded(
    reader: &mut BufReader<TcpStream>,
    line: &mut String,
    total: &mut usize,
) -> io::Result<usize> {
    let limit = u64::try_from(MAX_HEAD.saturating_sub(*total)).unwrap_or(0) + 1;
    let n = reader.by_ref().take(limit).read_line(line)?;
    *total += n;
    if *total > MAX_HEAD {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "request head too large"));
    }
    Ok(n)
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let bad = |msg: &str| io::Error::new(io::ErrorKind::InvalidData, msg.to_owned());
    let mut body = Vec::new();
    let mut head_len = 0;
    loop {
        let mut size_line = String::new();
        read_line_bounded(reader, &mut size_line, &mut head_len)?;
        let size_hex = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                let mut t = String::new();
                if read_line_bounded(reader, &mut t, &mut head_len)? == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(bad("body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf)?;
    }
}

fn write_response(w: &mut TcpStream, resp: &Response, keep_alive: bool) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (name, value) in &resp.headers {
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("connection") {
            continue;
        }
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let _ = write!(head, "content-length: {}\r\nconnection: {connection}\r\n\r\n", resp.body.len());
    w.write_all(head.as_bytes())?;
    w.write_all(&resp.body)?;
    w.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends one raw HTTP/1.1 request and returns (status, body).
    fn send(addr: SocketAddr, raw: &str) -> (u16, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        (status, body)
    }

    fn post(path: &str, auth: &str, body: &str) -> String {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: \
             application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    fn get(path: &str, auth: &str) -> String {
        format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
        )
    }

    #[test]
    fn streams_a_completion_and_records_the_request() {
        let mock = MockServer::openai().unwrap();
        assert!(mock.base_url().starts_with("http://127.0.0.1:"));
        let (status, body) = send(
            mock.addr(),
            &post("/v1/chat/completions", "Bearer sk-a", r#"{"model":"m1","stream":true}"#),
        );
        assert_eq!(status, 200);
        assert!(body.contains(r#""object":"chat.completion.chunk""#), "{body}");
        assert!(body.contains(r#""model":"m1""#));
        assert!(body.ends_with("data: [DONE]\n\n"));
        let reqs = mock.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].method, "POST");
        assert_eq!(reqs[0].path, "/v1/chat/completions");
        assert_eq!(reqs[0].bearer(), Some("sk-a"));
        assert_eq!(reqs[0].model(), Some("m1"));
        assert!(reqs[0].is_chat_completion());
    }

    #[test]
    fn keys_per_path_and_routes() {
        let mock = MockServer::start(
            MockConfig::new()
                .models(["a", "b"])
                .accept_key_under("/cn/v1", "sk-cn")
                .accept_key_under("/intl/v1", "sk-intl")
                .route("GET", "/busy/v1/models", Response::openai_error(429, "slow down", "rate"))
                .route_suffix("POST", "/plan/v1/chat/completions", Response::text(405, "nope")),
        )
        .unwrap();
        let a = mock.addr();
        assert_eq!(send(a, &get("/cn/v1/models", "Bearer sk-cn")).0, 200);
        assert_eq!(send(a, &get("/cn/v1/models", "Bearer sk-intl")).0, 401);
        assert_eq!(send(a, &get("/intl/v1/models", "Bearer sk-intl")).0, 200);
        let (status, body) = send(a, &get("/open/v1/models", "Bearer whatever"));
        assert_eq!(status, 200);
        assert!(body.contains(r#""id":"b""#));
        assert_eq!(send(a, &get("/busy/v1/models", "Bearer x")).0, 429);
        assert_eq!(send(a, &post("/plan/v1/chat/completions", "Bearer x", "{}")).0, 405);
        assert_eq!(send(a, &get("/v1/chat/completions", "Bearer x")).0, 405);
        assert_eq!(send(a, &get("/nothing", "Bearer x")).0, 404);
        assert_eq!(mock.requests().len(), 8);
        assert_eq!(mock.requests()[1].bearer(), Some("sk-intl"));
    }

    #[test]
    fn chunked_bodies_keep_alive_and_a_prompt_stop() {
        let mock = MockServer::start(MockConfig::new().route(
            "GET",
            "/slow",
            Response::new(200).delayed(Duration::from_mins(1)),
        ))
        .unwrap();
        let mut s = TcpStream::connect(mock.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let req = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                   5\r\n{\"mod\r\nD\r\nel\":\"chunky\"}\r\n0\r\n\r\n";
        s.write_all(req.as_bytes()).unwrap();
        let mut buf = [0; 4096];
        let n = s.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 OK"));
        assert_eq!(mock.wait_for_requests(1, Duration::from_secs(5))[0].model(), Some("chunky"));
        // Same connection, a second request that will hang for a minute; dropping must not wait.
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        mock.wait_for_requests(2, Duration::from_secs(5));
        let started = Instant::now();
        drop(mock);
        assert!(started.elapsed() < Duration::from_secs(5), "drop took {:?}", started.elapsed());
    }
}
