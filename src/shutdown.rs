//! Graceful shutdown on Ctrl-C / SIGTERM, shared by every long-running
//! command.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long a stopping service (a stream writer flushing and committing,
/// the web server closing connections) may take before the process exits
/// anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A token cancelled on the first Ctrl-C or SIGTERM; a second Ctrl-C exits
/// at once with status 130.
pub fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            Some(_) = async { match term.as_mut() { Some(s) => s.recv().await, None => None } } => {}
        }
        eprintln!("shutting down gracefully (press Ctrl-C again to exit at once)");
        t.cancel();
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
    token
}
