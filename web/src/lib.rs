//! The web server: the HTML UI and the JSON REST API over the scheduler's
//! metadata store and the lake's tables (axum).
//!
//! Its contents arrive with the web UI issue; the crate exists now so the
//! workspace layout and dependency directions are fixed from the start
//! (`web` reads from `scheduler` and `lake`, never the other way round).
