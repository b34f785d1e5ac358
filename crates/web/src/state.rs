//! The server's state: what it shows and acts on ([`WebOptions`]), shared
//! by every handler through [`AppState`].

use std::sync::Arc;

use lake::metrics::Metrics;
use lake::sql::SqlEngine;
use scheduler::operator::Kinds;
use scheduler::store::Store;
use tokio_util::sync::CancellationToken;

use crate::dags;
use crate::streams::{self, StreamSource};

/// What the server shows and acts on.
pub struct WebOptions {
    /// The metadata store.
    pub store: Arc<dyn Store>,
    /// Task kinds, to parse the DAGs recorded in the store.
    pub kinds: Kinds,
    /// The project's streams (streams page, `/api/v1/streams`).
    pub streams: Vec<StreamSource>,
    /// The project's transforms (streams page, `/api/v1/transforms`).
    pub transforms: Vec<Arc<lake::transform::TransformSpec>>,
    /// Live figures of the stream writers running in this process, if any.
    pub metrics: Option<Arc<Metrics>>,
    /// SQL over the project's lake (`/api/v1/sql`, the Query page).
    pub sql: Option<SqlEngine>,
    /// Token every request must carry (but `/healthz`, `/metrics` and the
    /// login page); required when the server binds to anything but a
    /// loopback address.
    pub token: Option<String>,
    /// With a token: whether pages and GET requests are open to anyone
    /// (`[web] anonymous_read = true`); changes still need the token.
    pub anonymous_read: bool,
    /// Without a token, `Host` names accepted besides loopback ones
    /// (`[web] allowed_hosts`).
    pub allowed_hosts: Vec<String>,
    /// What the project is (its config file's path): `tributary sql` asks
    /// this server only when it names the same one.
    pub project: Option<String>,
}

/// Shared state of every handler (cheap to clone).
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) dags: dags::DagCache,
    pub(crate) streams: Vec<StreamSource>,
    pub(crate) offset_readers: streams::OffsetReaders,
    pub(crate) transforms: Vec<Arc<lake::transform::TransformSpec>>,
    pub(crate) metrics: Option<Arc<Metrics>>,
    pub(crate) sql: Option<SqlEngine>,
    pub(crate) token: Option<String>,
    pub(crate) anonymous_read: bool,
    pub(crate) allowed_hosts: Vec<String>,
    pub(crate) project: Option<String>,
    /// Cancelled when the server stops: ends open log tails so the graceful
    /// shutdown does not wait for them.
    pub(crate) stop: CancellationToken,
}

impl AppState {
    /// State for [`crate::app`].
    pub fn new(opts: WebOptions) -> AppState {
        AppState::with_stop(opts, CancellationToken::new())
    }

    pub(crate) fn with_stop(opts: WebOptions, stop: CancellationToken) -> AppState {
        AppState(Arc::new(Inner {
            stop,
            dags: dags::DagCache::new(opts.kinds),
            store: opts.store,
            streams: opts.streams,
            offset_readers: streams::OffsetReaders::default(),
            transforms: opts.transforms,
            metrics: opts.metrics,
            sql: opts.sql,
            token: opts.token.filter(|t| !t.is_empty()),
            anonymous_read: opts.anonymous_read,
            allowed_hosts: opts.allowed_hosts,
            project: opts.project,
        }))
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.0.store.as_ref()
    }
}
