//! The streams page: each stream's table, Kafka lag and writer figures,
//! then each transform's position (source versions behind, last commit).

use askama::Template;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};

use crate::cookies::Csrf;
use crate::state::AppState;
use crate::streams::StreamStatus;
use crate::transforms::TransformInfo;

use super::layout::{Chrome, PageResult, bytes, chrome, opt_ts, render, table_href};

#[derive(Template)]
#[template(path = "streams.html")]
struct StreamsPage {
    c: Chrome,
    streams: Vec<StreamView>,
    transforms: Vec<TransformView>,
}

struct TransformView {
    t: TransformInfo,
    source_version: String,
    checkpoint: String,
    behind: String,
    state_class: &'static str,
    last_commit: String,
    references: String,
    trigger: String,
    source_href: String,
    table_href: String,
}

fn transform_view(t: TransformInfo) -> TransformView {
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let state_class = match t.status.behind {
        Some(0) => "caught-up",
        Some(_) => "behind",
        None => "unknown",
    };
    TransformView {
        source_version: opt(t.status.source_version),
        checkpoint: opt(t.status.checkpoint),
        behind: match t.status.behind {
            None => "unknown".to_string(),
            Some(0) => "caught up".to_string(),
            Some(1) => "1 version behind".to_string(),
            Some(b) => format!("{b} versions behind"),
        },
        state_class,
        last_commit: opt_ts(t.status.last_commit),
        references: t
            .status
            .references
            .iter()
            .map(|(n, v)| format!("{n} v{v}"))
            .collect::<Vec<_>>()
            .join(", "),
        source_href: table_href(&t.status.source),
        table_href: table_href(&t.status.table),
        trigger: humantime::format_duration(std::time::Duration::from_millis(t.trigger_ms))
            .to_string(),
        t,
    }
}

struct StreamView {
    s: StreamStatus,
    generations: Vec<GenerationView>,
    state_class: String,
    last_commit: String,
    size: String,
    version: String,
    lag: String,
    partitions: Vec<(String, u64, u64, String)>,
}

/// A generation's row on the page.
struct GenerationView {
    name: String,
    state: String,
    rows: u64,
    files: u64,
    created: String,
    verified: &'static str,
    made_by: String,
    /// Offsets done, to do, and the percentage, while replayed.
    progress: Option<(i64, i64, String)>,
}

fn generation_views(st: &StreamStatus) -> Vec<GenerationView> {
    st.generations
        .iter()
        .map(|g| GenerationView {
            name: format!("{}@v{}", st.table, g.info.generation),
            state: serde_json::to_value(g.info.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            rows: g.info.rows,
            files: g.info.files,
            created: opt_ts(g.info.created),
            verified: match g.info.verified {
                Some(true) => "passed",
                Some(false) => "FAILED",
                None => "-",
            },
            made_by: g.info.made_by.clone(),
            progress: g.progress.as_ref().map(|p| {
                let pct = if p.total == 0 {
                    100.0
                } else {
                    p.done as f64 * 100.0 / p.total as f64
                };
                (p.done, p.total, format!("{pct:.0}%"))
            }),
        })
        .collect()
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
            generations: generation_views(&st),
            partitions: st
                .partitions
                .iter()
                .map(|p| (p.path.clone(), p.files, p.rows, bytes(p.bytes)))
                .collect(),
            s: st,
        })
        .collect();
    let transforms = crate::transforms::all(
        &s.0.transforms,
        s.0.sql.as_ref().map(|e| e.catalog()),
        s.0.metrics.as_deref(),
    )
    .await
    .into_iter()
    .map(transform_view)
    .collect();
    let c = chrome(&s, &headers, &csrf, "Streams".into(), "streams");
    Ok(render(
        &StreamsPage {
            c,
            streams: views,
            transforms,
        },
        StatusCode::OK,
    ))
}
