//! `/healthz` and `/metrics` over HTTP/1.1: hyper on a one-thread tokio runtime, so a
//! connection is a task, not a thread. The endpoint used to run a thread per connection
//! (tiny_http): about 100 idle connections under a task limit of 64 made thread creation fail,
//! the server panic, and `/healthz` refuse connections for the rest of the run. Now at most
//! [`MAX_CONNECTIONS`] are served at once (more are closed on accept), a client has
//! [`HEADER_TIMEOUT`] to send its request, and no connection lives longer than
//! [`CONNECTION_LIFETIME`], so idle or slow clients free their slot on their own.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};

use super::metrics::Metrics;

/// Connections served at once; a monitoring agent needs one or two.
pub const MAX_CONNECTIONS: usize = 32;
/// Time a client has to send its request headers after connecting (or between requests).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest any one connection is kept, busy or not.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// Serves until `stop`, on its own thread; `None` where `addr` is empty (turned off). Refuses
/// to start on an address it cannot listen on.
pub fn start(
    addr: &str,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Option<thread::JoinHandle<()>>> {
    if addr.is_empty() {
        return Ok(None);
    }
    let refused = |e: std::io::Error| {
        anyhow::anyhow!(
            "cannot listen on {addr} ({e}); change daemon.http or set it to \"\" to turn it off"
        )
    };
    let listener = std::net::TcpListener::bind(addr).map_err(refused)?;
    listener.set_nonblocking(true).map_err(refused)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the HTTP endpoint's runtime: {e}"))?;
    Ok(Some(thread::spawn(move || runtime.block_on(serve(listener, metrics, stop)))))
}

async fn serve(listener: std::net::TcpListener, metrics: Arc<Metrics>, stop: Arc<AtomicBool>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            log::error!("HTTP endpoint: {e}; /healthz and /metrics are off");
            return;
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut refused: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        let (stream, _) =
            match tokio::time::timeout(Duration::from_millis(200), listener.accept()).await {
                Err(_) => continue,
                Ok(Ok(accepted)) => accepted,
                // Out of file descriptors and the like: the listener stays, the client goes.
                Ok(Err(e)) => {
                    log::warn!("HTTP endpoint: accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                log::warn!(
                    "HTTP endpoint: {MAX_CONNECTIONS} connections open, {refused} refused so far"
                );
            }
            continue; // dropping the stream closes it
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let response = respond(&metrics, req.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(slot);
        });
    }
}

/// The answer to a request for `path`.
pub fn respond(metrics: &Metrics, path: &str) -> Response<Full<Bytes>> {
    let (status, body, kind) = match path {
        "/healthz" => health(metrics),
        "/metrics" => (StatusCode::OK, metrics.render(), "text/plain; version=0.0.4"),
        _ => (
            StatusCode::NOT_FOUND,
            "not found: try /healthz or /metrics\n".to_string(),
            "text/plain",
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(kind));
    response
}

/// 200 `ok`, or 503 with what is wrong, the most serious first.
fn health(metrics: &Metrics) -> (StatusCode, String, &'static str) {
    let unavailable = |body: String| (StatusCode::SERVICE_UNAVAILABLE, body, "text/plain");
    if let Some(why) = metrics.journal_failing() {
        return unavailable(format!("journal cannot be written ({why}); no decision is taken until it can (retrying every second)\n"));
    }
    if let Some(why) = metrics.stale() {
        // Running, but not on what the operator asked for: removed people may still be let in.
        return unavailable(format!("stale: the latest reload was refused ({why}); the daemon runs on the configuration and gallery from before it. Fix the cause and send SIGHUP again\n"));
    }
    let now = crate::clock::now_ms();
    let down: Vec<String> = metrics
        .cameras
        .iter()
        .filter_map(|(n, c)| {
            let since = c.down_since()?;
            let at = std::time::UNIX_EPOCH + Duration::from_millis(since as u64);
            let secs = (now - since).max(0) / 1000;
            Some(format!("{n} (since {}, {secs} s)", humantime::format_rfc3339_seconds(at)))
        })
        .collect();
    if !down.is_empty() {
        return unavailable(format!("cameras down: {}\n", down.join(", ")));
    }
    let behind: Vec<String> = metrics
        .outputs
        .iter()
        .filter_map(|o| {
            let why = o.failing()?;
            let waiting = o.lag();
            Some(format!("{} failing ({why}); {waiting} record(s) waiting, retried", o.name))
        })
        .collect();
    if behind.is_empty() {
        (StatusCode::OK, "ok\n".to_string(), "text/plain")
    } else {
        unavailable(format!("outputs behind: {}\n", behind.join("; ")))
    }
}
