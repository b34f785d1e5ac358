//! The streams page: each stream's table, Kafka lag and writer figures.

use askama::Template;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};

use crate::cookies::Csrf;
use crate::state::AppState;
use crate::streams::StreamStatus;

use super::layout::{Chrome, PageResult, bytes, chrome, opt_ts, render};

#[derive(Template)]
#[template(path = "streams.html")]
struct StreamsPage {
    c: Chrome,
    streams: Vec<StreamView>,
}

struct StreamView {
    s: StreamStatus,
    state_class: String,
    last_commit: String,
    size: String,
    version: String,
    lag: String,
    partitions: Vec<(String, u64, u64, String)>,
}

pub(crate) async fn streams(
    State(s): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
) -> PageResult {
    let all = crate::streams::all(&s.0.streams, &s.0.offset_readers, s.0.metrics.as_deref()).await;
    let views = all
        .into_iter()
        .map(|st| StreamView {
            state_class: st.state.replace(' ', "-"),
            last_commit: opt_ts(st.last_commit),
            size: bytes(st.bytes),
            version: st.version.map_or("-".into(), |v| v.to_string()),
            lag: st.total_lag.map_or("unknown".into(), |l| l.to_string()),
            partitions: st
                .partitions
                .iter()
                .map(|p| (p.path.clone(), p.files, p.rows, bytes(p.bytes)))
                .collect(),
            s: st,
        })
        .collect();
    let c = chrome(&s, &headers, &csrf, "Streams".into(), "streams");
    Ok(render(&StreamsPage { c, streams: views }, StatusCode::OK))
}
