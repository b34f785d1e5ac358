//! Scratch databases for tests and benchmarks: a fresh, empty PostgreSQL
//! database per caller, so suites run in parallel without seeing each other.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, Executor, PgConnection};

use crate::Result;

/// Prefix of every scratch database (the test script drops leftovers).
pub const PREFIX: &str = "tributary_scratch_";

/// The server tests use: `TRIBUTARY_TEST_POSTGRES`, else the local one.
pub fn admin_url() -> String {
    std::env::var("TRIBUTARY_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Creates an empty database on the server at `admin_url` and returns its URL.
pub async fn postgres_database(admin_url: &str) -> Result<String> {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{PREFIX}{}_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = PgConnection::connect(admin_url).await?;
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    conn.close().await?;
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
    Ok(format!("{base}/{name}"))
}
