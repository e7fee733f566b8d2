//! Serving connections: HTTP/1.1 whose requests must arrive within the read timeout, so a
//! client that sends part of a request and stops (slowloris) holds its connection for that
//! long and no longer; and a graceful stop, in which the requests under way are answered.
//!
//! - The request head: hyper's header read timeout closes the connection.
//! - The request body: a pause longer than the timeout between two of its parts fails the
//!   request with 408 `body: ...` ([`crate::state::Body`]).

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long a stop waits for the requests under way (an event stream is cut after it).
pub const GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `stop` turns true, then lets the requests under way
/// finish (for [`GRACE`] at most).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    read_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(read_timeout);
    let graceful = GracefulShutdown::new();
    // Stop when asked; a sender dropped without asking (a `Running` let go of) asks nothing.
    let stopped = async move {
        if stop.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(stopped);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stopped => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: wait a little rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("stopped with connections still open (event streams)");
    }
}
