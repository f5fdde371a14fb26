//! The operator API and page, served by the daemon (`[api]`): enrol from an uploaded photo,
//! identify one, list and remove people, read recent decisions and mark one as wrong, follow
//! decisions live (server-sent events), see the cameras and outputs. Every call but the page
//! itself needs a bearer token ([`tokens`]) whose scope allows it.
//!
//! It listens on loopback by default. Another address puts faces and names on the network, so
//! the daemon refuses to start there without TLS (rustls); tokens are always required.
//!
//! Work on photos runs on the blocking pool with the API's own pipeline (loaded at start, so a
//! bad model stops the start, not the first upload); the cameras' workers never wait for it.
//! Removing a person needs no signal: the workers see the gallery change at their next frame.

pub mod limits;
pub mod tokens;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;

use crate::app::{EnrollError, Identifier};
use crate::capture::Frame;
use crate::config::{ApiConfig, Config};
use crate::gallery::GalleryError;
use crate::journal::{Entry, Journal};

use self::limits::{Full, Quota};
use self::tokens::{Scope, Tokens};
use super::metrics::Metrics;
use crate::daemon::control::Control;

/// Time a client has to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the event stream looks for new decisions.
const EVENT_POLL: Duration = Duration::from_millis(100);
/// How often an event stream checks that its token is still in the tokens file.
const TOKEN_RECHECK: Duration = Duration::from_secs(1);

/// What every request handler shares.
struct Api {
    cfg: Config,
    tokens: Mutex<Tokens>,
    /// The API's own pipeline and gallery handle (identify, enrol).
    engine: Mutex<Identifier>,
    metrics: Arc<Metrics>,
    control: Control,
    device: String,
    /// The largest body taken, in bytes (`api.max_upload_mib`).
    upload_limit: u64,
    /// Requests with a body in progress, per client address.
    uploads: Arc<Quota<IpAddr>>,
    /// Event streams open, per token name.
    streams: Arc<Quota<String>>,
    /// Photos decoded and searched at once.
    decodes: tokio::sync::Semaphore,
}

/// The address of the client a request came from (put on each request by [`serve`]).
#[derive(Debug, Clone, Copy)]
struct Peer(IpAddr);

/// Starts the API on its own thread, serving until `control.stop`. Everything that can be
/// wrong with it (the address, the tokens, the certificate, the models) fails the start.
pub fn start(
    cfg: &Config,
    api: &ApiConfig,
    metrics: Arc<Metrics>,
    control: &Control,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let tokens = Tokens::load(&api.tokens).context("the operator API ([api])")?;
    let tls = match (&api.tls_cert, &api.tls_key) {
        (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
        _ => None,
    };
    let engine = Identifier::new(cfg, &cfg.gallery.path, None)
        .context("loading the operator API's models")?;
    let listener = std::net::TcpListener::bind(&api.listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .with_context(|| {
            format!("the operator API cannot listen on {}; change api.listen", api.listen)
        })?;
    log::info!(
        "operator API on {}://{} ({})",
        if tls.is_some() { "https" } else { "http" },
        api.listen,
        if api.tls() { "TLS" } else { "loopback only, no TLS" },
    );
    let state = Arc::new(Api {
        cfg: cfg.clone(),
        tokens: Mutex::new(tokens),
        engine: Mutex::new(engine),
        metrics,
        control: control.clone(),
        device: cfg.daemon.device_id(),
        upload_limit: (api.max_upload_mib * 1024.0 * 1024.0) as u64,
        uploads: Quota::new(limits::MAX_UPLOADS_PER_CLIENT, limits::MAX_UPLOADS),
        streams: Quota::new(limits::MAX_STREAMS_PER_TOKEN, limits::MAX_STREAMS),
        decodes: tokio::sync::Semaphore::new(limits::MAX_DECODES),
    });
    let app = router(state);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(8)
        .enable_io()
        .enable_time()
        .build()
        .context("starting the operator API's runtime")?;
    let stop = control.stop.clone();
    Ok(std::thread::spawn(move || {
        runtime.block_on(serve(listener, tls, app, stop));
        // Open event streams and uploads in progress end with the daemon.
        runtime.shutdown_timeout(Duration::from_secs(2));
    }))
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;
    use tokio_rustls::rustls;
    let certs = crate::util::pem_certs(cert).map_err(|e| {
        anyhow::anyhow!("api.tls_cert {}: {e}; give a PEM certificate chain", cert.display())
    })?;
    if let Some(mode) = crate::util::exposed(key, 0o077) {
        anyhow::bail!("api.tls_key {} can be read by other users (mode {mode:04o}); run `chmod 600 {}` and make a new key if others could read it", key.display(), key.display());
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        anyhow::anyhow!(
            "api.tls_key {}: {e}; give the PEM private key of the certificate",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS for the operator API")?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| anyhow::anyhow!("api.tls_cert and api.tls_key do not make a usable pair ({e}); give the certificate and its own key"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn serve(
    listener: std::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    stop: Arc<AtomicBool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            log::error!("operator API: {e}; the API is off");
            return;
        }
    };
    let connections = Quota::new(limits::MAX_CONNECTIONS_PER_CLIENT, limits::MAX_CONNECTIONS);
    let mut refused: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        let (stream, peer) =
            match tokio::time::timeout(Duration::from_millis(200), listener.accept()).await {
                Err(_) => continue,
                Ok(Ok((stream, addr))) => (stream, addr.ip()),
                Ok(Err(e)) => {
                    log::warn!("operator API: accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
        // Over its share, or over everyone's: closed at once (dropping the stream closes it).
        let slot = match connections.take(peer, 0) {
            Ok(slot) => slot,
            Err(full) => {
                refused += 1;
                if refused.is_power_of_two() {
                    log::warn!("operator API: connection from {peer} refused ({}); {refused} refused so far", match full {
                        Full::Key(n) => format!("it holds {n}, the most one client may"),
                        Full::Total(n) => format!("{n} open, the most served at once"),
                    });
                }
                continue;
            }
        };
        let (app, tls) = (app.clone(), tls.clone());
        tokio::spawn(async move {
            // Each request learns the client's address (the per-client limits count by it).
            let service =
                hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(Peer(peer));
                    tower_service::Service::call(&mut app.clone(), req.map(axum::body::Body::new))
                });
            let http = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .to_owned();
            match tls {
                Some(tls) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await
                    else {
                        return;
                    };
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = http.serve_connection(io, service).await;
                }
                None => {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = http.serve_connection(io, service).await;
                }
            }
            drop(slot);
        });
    }
}

fn router(state: Arc<Api>) -> Router {
    let upload_limit = state.upload_limit as usize;
    Router::new()
        .route("/", get(page))
        .route("/page.js", get(page_script))
        .route("/page.css", get(page_style))
        .route("/favicon.svg", get(favicon))
        .route("/favicon.ico", get(favicon))
        .route("/api/status", get(status))
        .route("/api/identities", get(identities))
        .route("/api/identities/{name}", post(enrol).delete(remove))
        .route("/api/identify", post(identify))
        .route("/api/decisions", get(decisions))
        .route("/api/decisions/{id}/crop", get(crop))
        .route("/api/decisions/{id}/wrong", post(mark_wrong))
        .route("/api/events", get(events))
        .route("/api/reload", post(reload))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such endpoint: see docs/api.md for the API's paths",
            )
        })
        // Never reached (bodies() reads with the same cap first); kept as a second bound.
        .layer(DefaultBodyLimit::max(upload_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), bodies))
        .layer(axum::middleware::from_fn(answers))
        .with_state(state)
}

/// A request that carries a body: declared by its length or sent in chunks.
fn carries_body(req: &Request) -> bool {
    req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// Every body, for every route: its token is checked before a byte of it is read; then it
/// takes one of the client's upload slots (refused at once when none is free, so a waiting
/// upload holds nothing) and must arrive whole, within the size cap, before its deadline.
/// The handler gets it already read; the slot is held until the answer.
async fn bodies(State(s): State<Arc<Api>>, req: Request, next: Next) -> Response {
    if !carries_body(&req) {
        return next.run(req).await;
    }
    // Closed after the answer: the rest of a refused body is never read.
    let refuse = |e: ApiError| {
        let mut response = e.into_response();
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    };
    if let Err(e) = s.authorise(req.headers(), Scope::Read) {
        return refuse(e);
    }
    let limit = s.upload_limit;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is over api.max_upload_mib ({} MiB); send a smaller photo",
                limit >> 20
            ),
        )
    };
    let declared = match req.headers().get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) {
            Some(n) => Some(n),
            None => {
                return refuse(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "Content-Length is not a number",
                ))
            }
        },
    };
    if declared.is_some_and(|n| n > limit) {
        return refuse(too_large());
    }
    let peer = req.extensions().get::<Peer>().map_or(IpAddr::from([0, 0, 0, 0]), |p| p.0);
    let upload = match s.uploads.take(peer, 0) {
        Ok(slot) => slot,
        Err(full) => {
            let why = match full {
                Full::Key(n) => {
                    format!("this client has {n} uploads in progress, the most one client may")
                }
                Full::Total(n) => format!("{n} uploads are in progress, the most taken at once"),
            };
            let mut response = refuse(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("{why}; send it again when one has finished"),
            ));
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            return response;
        }
    };
    let deadline = limits::body_deadline(declared.unwrap_or(limit));
    let (parts, body) = req.into_parts();
    let read = http_body_util::Limited::new(body, limit as usize);
    let bytes = match tokio::time::timeout(deadline, http_body_util::BodyExt::collect(read)).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return refuse(too_large()),
        Ok(Err(e)) => {
            return refuse(ApiError::new(StatusCode::BAD_REQUEST, format!("the body could not be read ({e})")))
        }
        Err(_) => {
            return refuse(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} s (bodies are waited for at {} KiB/s at the least); send it again",
                    deadline.as_secs(),
                    limits::MIN_BODY_RATE >> 10
                ),
            ))
        }
    };
    let response = next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await;
    drop(upload);
    response
}

/// Every answer: errors as JSON `{"error": …}` whoever made them (a malformed query, path or
/// method is refused by the router in plain text), and headers that keep the page and the
/// API's answers out of other sites' frames.
async fn answers(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let mut response = next.run(req).await;
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if (response.status().is_client_error() || response.status().is_server_error()) && !json {
        let status = response.status();
        let body = std::mem::take(response.body_mut());
        let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
        let mut message = String::from_utf8_lossy(&text).trim().to_string();
        if message.is_empty() {
            message = match status {
                StatusCode::METHOD_NOT_ALLOWED => {
                    format!("{method} is not served here: see docs/api.md for each path's methods")
                }
                s => s.canonical_reason().unwrap_or("refused").to_lowercase(),
            };
        }
        let mut fresh = ApiError::new(status, message).into_response();
        for keep in [header::CONNECTION, header::RETRY_AFTER, header::ALLOW] {
            if let Some(v) = response.headers().get(&keep) {
                fresh.headers_mut().insert(keep, v.clone());
            }
        }
        response = fresh;
    }
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    response
}

/// An API error: its status and a message that says what to do.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    fn internal(e: impl std::fmt::Display) -> ApiError {
        log::error!("operator API: {e}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        ApiError::internal(format!("{e:#}"))
    }
}

type Answer<T> = Result<T, ApiError>;

/// The token a request presents (`Authorization: Bearer …`).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

impl Api {
    /// The name of the token the request carries, if its scope allows `needed`.
    fn authorise(&self, headers: &HeaderMap, needed: Scope) -> Answer<String> {
        self.authorise_token(headers, needed).map(|t| t.name)
    }

    /// Whether the token `presented` is still in the tokens file with at least `needed`.
    fn still_valid(&self, presented: &str, needed: Scope) -> bool {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.refresh().is_ok() && tokens.find(presented).is_some_and(|t| t.scope >= needed)
    }

    /// The token the request carries, if its scope allows `needed`.
    fn authorise_token(&self, headers: &HeaderMap, needed: Scope) -> Answer<tokens::Token> {
        let presented = bearer(headers).ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "no bearer token: send `Authorization: Bearer <token>` (make a token on the device with `edgeid token add`)",
                )
            })?;
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.refresh().map_err(ApiError::internal)?;
        let token = tokens
            .find(presented)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "the token is not valid"))?;
        if token.scope < needed {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "token `{}` has scope {}; this needs {}",
                    token.name,
                    token.scope.as_str(),
                    needed.as_str()
                ),
            ));
        }
        Ok(token.clone())
    }

    /// The journal, read-only.
    fn journal(&self) -> Answer<Journal> {
        Journal::open_existing(&self.cfg.daemon.journal).map_err(ApiError::internal)
    }
}

/// Runs blocking work (models, SQLite) off the runtime's thread.
async fn blocking<T: Send + 'static>(
    state: &Arc<Api>,
    f: impl FnOnce(&Api) -> Answer<T> + Send + 'static,
) -> Answer<T> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(&state)).await.map_err(ApiError::internal)?
}

/// An uploaded photo, decoded (EXIF orientation applied, size limits as for files). On the
/// blocking pool: decoding a phone photo takes the time of many requests.
fn uploaded(body: &Bytes, what: &str) -> Answer<Frame> {
    if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "no photo in the request: send the image file as the request body (curl --data-binary @photo.jpg)",
        ));
    }
    let image = crate::capture::decode(body).map_err(|reason| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the upload is not an image edgeid can read ({reason}); send a JPEG, PNG, WebP or BMP file"),
        )
    })?;
    Ok(Frame::new(image, what))
}

/// The page, its script and its style: files of their own, so that the page's policy allows no
/// inline script or style (an injected `<script>` or `onclick=` does not run), and no site may
/// frame it (a framed page can be clicked through).
async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' blob:; style-src 'self'; script-src 'self'; \
                 connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
        ],
        include_str!("page.html"),
    )
}

async fn page_script() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("page.js"))
}

async fn favicon() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "image/svg+xml")], include_str!("favicon.svg"))
}

async fn page_style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("page.css"))
}

async fn status(State(s): State<Arc<Api>>, headers: HeaderMap) -> Answer<Json<serde_json::Value>> {
    s.authorise(&headers, Scope::Read)?;
    blocking(&s, |s| {
        let m = &s.metrics;
        let cameras: Vec<_> = m
            .cameras
            .iter()
            .map(|(name, c)| {
                serde_json::json!({
                    "name": name,
                    "up": c.up.load(Ordering::Relaxed) == 1,
                    "down_since_ms": c.down_since(),
                    "frames_in": c.frames_in.load(Ordering::Relaxed),
                    "frames_processed": c.frames_processed.load(Ordering::Relaxed),
                    "frames_dropped": c.frames_dropped.load(Ordering::Relaxed),
                    "decisions": c.decisions.load(Ordering::Relaxed),
                    "presentation_attacks": c.presentation_attacks.load(Ordering::Relaxed),
                })
            })
            .collect();
        let outputs: Vec<_> = m
            .outputs
            .iter()
            .map(|o| {
                serde_json::json!({
                    "name": o.name,
                    "lag": o.lag(),
                    "delivered": o.delivered.load(Ordering::Relaxed),
                    "failures": o.failures.load(Ordering::Relaxed),
                    "failing": o.failing(),
                })
            })
            .collect();
        let identities = crate::app::gallery_list(&s.cfg, &s.cfg.gallery.path)?.len();
        Ok(Json(serde_json::json!({
            "device": s.device,
            "cameras": cameras,
            "outputs": outputs,
            "identities": identities,
            "decisions": m.decisions_total(),
            "journal_failing": m.journal_failing(),
            "stale": m.stale(),
        })))
    })
    .await
}

async fn identities(
    State(s): State<Arc<Api>>,
    headers: HeaderMap,
) -> Answer<Json<serde_json::Value>> {
    s.authorise(&headers, Scope::Read)?;
    blocking(&s, |s| {
        let list = crate::app::gallery_list(&s.cfg, &s.cfg.gallery.path)?;
        Ok(Json(serde_json::json!({ "identities": list })))
    })
    .await
}

#[derive(Deserialize)]
struct EnrolQuery {
    #[serde(default)]
    force: bool,
}

async fn enrol(
    State(s): State<Arc<Api>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<EnrolQuery>,
    body: Bytes,
) -> Answer<(StatusCode, Json<crate::app::EnrollReport>)> {
    let by = s.authorise(&headers, Scope::Enrol)?;
    let _decoding = s.decodes.acquire().await.map_err(ApiError::internal)?;
    blocking(&s, move |s| {
        let frame = uploaded(&body, "the uploaded photo")?;
        let mut engine = s.engine.lock().unwrap_or_else(|e| e.into_inner());
        match engine.enroll(&s.cfg, &name, vec![frame], q.force) {
            Ok(report) => {
                log::info!("operator API: `{by}` enrolled `{}`", report.name);
                Ok((StatusCode::CREATED, Json(report)))
            }
            Err(e) => match e.downcast_ref::<EnrollError>() {
                Some(EnrollError::BadName { .. }) => {
                    Err(ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))
                }
                Some(_) => Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    e.to_string().replace("add --force", "add ?force=true"),
                )),
                None => Err(e.into()),
            },
        }
    })
    .await
}

async fn remove(
    State(s): State<Arc<Api>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer<Json<serde_json::Value>> {
    let by = s.authorise(&headers, Scope::Enrol)?;
    // As enrolment stores it (NFC), so that another spelling of the same name finds it.
    let name = crate::gallery::normalise_name(&name).map_err(|why| {
        ApiError::new(StatusCode::BAD_REQUEST, format!("`{name}` is not a name: {why}"))
    })?;
    blocking(&s, move |s| {
        let mut gallery = crate::app::open_gallery(&s.cfg, &s.cfg.gallery.path)?;
        match gallery.remove(&name) {
            Ok(()) => {
                log::info!("operator API: `{by}` removed `{name}`");
                Ok(Json(serde_json::json!({ "removed": name })))
            }
            Err(GalleryError::UnknownIdentity { .. }) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no identity `{name}` in the gallery (GET /api/identities lists them)"),
            )),
            Err(e) => Err(ApiError::internal(e)),
        }
    })
    .await
}

async fn identify(
    State(s): State<Arc<Api>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<Json<crate::app::ImageReport>> {
    s.authorise(&headers, Scope::Read)?;
    let _decoding = s.decodes.acquire().await.map_err(ApiError::internal)?;
    blocking(&s, move |s| {
        let frame = uploaded(&body, "the uploaded photo")?;
        let mut engine = s.engine.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Json(engine.identify_frame(frame)?))
    })
    .await
}

#[derive(Deserialize)]
struct DecisionsQuery {
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    50
}

/// A decision as the API shows it: the record, whether a crop is stored, the marks on it.
fn shown(e: Entry, marks: &[crate::journal::WrongMark], crops: bool) -> serde_json::Value {
    // Through the text form: `to_value` widens each f32 to f64 (a threshold of 0.58 showed as
    // 0.5799999833106995); written as text first, each number reads as the record holds it.
    let text = serde_json::to_string(&e).expect("an entry serialises");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("its own JSON parses");
    let mine: Vec<_> = marks.iter().filter(|m| m.decision_id == e.id).collect();
    v["wrong"] = serde_json::to_value(mine).expect("marks serialise");
    if crops {
        v["crop"] = format!("/api/decisions/{}/crop", e.id).into();
    }
    v
}

async fn decisions(
    State(s): State<Arc<Api>>,
    headers: HeaderMap,
    Query(q): Query<DecisionsQuery>,
) -> Answer<Json<serde_json::Value>> {
    s.authorise(&headers, Scope::Read)?;
    blocking(&s, move |s| {
        let journal = s.journal()?;
        let mut entries = journal.tail(q.limit.clamp(1, 1000)).map_err(ApiError::internal)?;
        entries.reverse();
        let (lo, hi) = (entries.last().map_or(0, |e| e.id), entries.first().map_or(0, |e| e.id));
        let marks = journal.wrong_marks(lo, hi).map_err(ApiError::internal)?;
        let crops = s.cfg.daemon.store_crops;
        let list: Vec<_> = entries.into_iter().map(|e| shown(e, &marks, crops)).collect();
        Ok(Json(serde_json::json!({ "device": s.device, "decisions": list })))
    })
    .await
}

async fn crop(
    State(s): State<Arc<Api>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Answer<Response> {
    s.authorise(&headers, Scope::Read)?;
    blocking(&s, move |s| match s.journal()?.crop(id).map_err(ApiError::internal)? {
        Some(png) => Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response()),
        None if s
            .journal()?
            .after(id - 1, 1)
            .map_err(ApiError::internal)?
            .first()
            .is_none_or(|e| e.id != id) =>
        {
            Err(ApiError::new(StatusCode::NOT_FOUND, format!("no decision {id} in the journal")))
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no face crop stored with decision {id} (crops are kept only with daemon.store_crops = true)"),
        )),
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct WrongBody {
    note: String,
    /// Who it really was, when known.
    truth: Option<String>,
}

async fn mark_wrong(
    State(s): State<Arc<Api>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Answer<Json<crate::journal::WrongMark>> {
    let by = s.authorise(&headers, Scope::Enrol)?;
    // The body is read as JSON whatever its Content-Type says (curl -d sends a form's).
    let body: WrongBody = if body.iter().all(u8::is_ascii_whitespace) {
        WrongBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the body is not {{\"note\": \"…\", \"truth\": \"name or null\"}} ({e})"),
            )
        })?
    };
    // Who it really was is a name as enrolment takes it; the note is one line of text that shows
    // (a newline or a terminal escape in it would forge lines of `journal marks`).
    let bad = |what: &str, why: String| {
        ApiError::new(StatusCode::BAD_REQUEST, format!("`{what}` is refused: {why}"))
    };
    let truth = match body.truth.as_deref() {
        Some(t) => Some(crate::gallery::normalise_name(t).map_err(|why| bad("truth", why))?),
        None => None,
    };
    if crate::gallery::names::one_line(&body.note) != body.note {
        return Err(bad(
            "note",
            "it holds control, formatting or separator characters; send one line of text".into(),
        ));
    }
    let body = WrongBody { note: body.note, truth };
    blocking(&s, move |s| {
        let journal = Journal::open_side(&s.cfg.daemon.journal).map_err(ApiError::internal)?;
        let mark = journal
            .mark_wrong(id, &by, &body.note, body.truth.as_deref())
            .map_err(ApiError::internal)?;
        let mark = mark.ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, format!("no decision {id} in the journal"))
        })?;
        log::info!("operator API: `{by}` marked decision {id} as wrong");
        Ok(Json(mark))
    })
    .await
}

async fn reload(State(s): State<Arc<Api>>, headers: HeaderMap) -> Answer<Json<serde_json::Value>> {
    let by = s.authorise(&headers, Scope::Admin)?;
    let generation = s.control.reload.fetch_add(1, Ordering::SeqCst) + 1;
    log::info!("operator API: `{by}` asked for a reload");
    Ok(Json(serde_json::json!({ "reload": generation })))
}

#[derive(Deserialize)]
struct EventsQuery {
    /// Start after this record id (else after `Last-Event-ID`, else from now).
    after: Option<i64>,
}

/// Decisions as they are journaled, as server-sent events (`event: decision`, `id:` the
/// record id): a client that reconnects with `Last-Event-ID` misses nothing.
async fn events(
    State(s): State<Arc<Api>>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Answer<Sse<impl futures_util::Stream<Item = Result<SseEvent, std::convert::Infallible>>>> {
    let token = s.authorise_token(&headers, Scope::Read)?;
    let presented = bearer(&headers).unwrap_or_default().to_string();
    // An admin token may take the last slot: admin is never locked out by readers' streams.
    let reserve = usize::from(token.scope < Scope::Admin);
    let slot = s.streams.take(token.name.clone(), reserve).map_err(|full| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            match full {
                Full::Key(n) => format!("token `{}` has {n} event streams open, the most one token may; close one (each open operator page holds one)", token.name),
                Full::Total(n) => format!("{n} event streams are open, the most served at once; close one"),
            },
        )
    })?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let journal = s.journal()?;
    let start = match q.after.or(resume) {
        Some(id) => id,
        None => journal.last_id().map_err(ApiError::internal)?,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<SseEvent>(64);
    let (stop, crops) = (s.control.stop.clone(), s.cfg.daemon.store_crops);
    let state = s.clone();
    // A thread of its own, not the blocking pool: a stream lasts as long as the client stays.
    std::thread::spawn(move || {
        let _slot = slot;
        let mut cursor = start;
        let mut checked = std::time::Instant::now();
        while !stop.load(Ordering::SeqCst) && !tx.is_closed() {
            // A token removed (or lowered below read) ends its streams within a second.
            if checked.elapsed() >= TOKEN_RECHECK {
                checked = std::time::Instant::now();
                if !state.still_valid(&presented, Scope::Read) {
                    let end = SseEvent::default().event("end").data("the token was removed");
                    let _ = tx.blocking_send(end);
                    return;
                }
            }
            let entries = match journal.after(cursor, 64) {
                Ok(e) => e,
                Err(e) => {
                    log::warn!("operator API: event stream: {e}");
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            if entries.is_empty() {
                std::thread::sleep(EVENT_POLL);
                continue;
            }
            for e in entries {
                cursor = e.id;
                let data = shown(e, &[], crops).to_string();
                let event = SseEvent::default().event("decision").id(cursor.to_string()).data(data);
                if tx.blocking_send(event).is_err() {
                    return;
                }
            }
        }
    });
    let stream =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
        );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
