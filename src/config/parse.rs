//! A config file's text into its declarations: the top-level sections,
//! then every `[[stream]]`, `[[transform]]` and `[[view]]` resolved on its
//! own, every problem collected at its place.

use std::sync::Arc;

use diag::{Diagnostic, Diags, parse_document};
use lake::config::{SchemaCatalog, StreamConfig, StreamSpec};
use lake::transform::{TransformConfig, TransformSpec};
use lake::view::{ViewConfig, ViewSpec};
use toml::Spanned;
use toml::de::DeValue;

use super::sections::FileTop;

/// What a config file declares.
#[derive(Debug)]
pub struct Declared {
    /// The top-level sections.
    pub(super) top: FileTop,
    /// Validated streams.
    pub streams: Vec<Arc<StreamSpec>>,
    /// Validated transforms.
    pub transforms: Vec<Arc<TransformSpec>>,
    /// Validated views.
    pub views: Vec<Arc<ViewSpec>>,
}

/// Parses and validates a config file's text.
pub fn parse(
    file: &str,
    source: &str,
    catalog: &SchemaCatalog,
) -> Result<Declared, Vec<Diagnostic>> {
    let mut d = Diags::new(file, source);
    let Some(root) = parse_document(&mut d) else {
        return Err(d.into_vec());
    };
    let span = root.span();
    let mut table = root.into_inner();
    let streams_value = table.remove("stream");
    let transforms_value = table.remove("transform");
    let views_value = table.remove("view");
    check_references(&mut d, &table);
    let top: Option<FileTop> = d.de(
        Spanned::new(span, DeValue::Table(table)),
        "config",
        &["stream", "transform", "view"],
    );
    let streams = streams_value
        .map(|sv| parse_streams(&mut d, sv, catalog))
        .unwrap_or_default();
    let transforms = transforms_value
        .map(|tv| parse_transforms(&mut d, tv, source, &streams))
        .unwrap_or_default();
    let views = views_value
        .map(|vv| parse_views(&mut d, vv, source, &streams, &transforms))
        .unwrap_or_default();
    let top = match top {
        Some(top) if d.is_empty() => top,
        _ => return Err(d.into_sorted()),
    };
    Ok(Declared {
        top,
        streams,
        transforms,
        views,
    })
}

/// The values resolved when used (`database_url`, everything under
/// `[kafka]`, `[lake]` and `[web]`): a malformed `${VAR}` reference in one
/// is reported here, at the value, rather than when a command first uses it.
fn check_references(d: &mut Diags<'_>, table: &toml::de::DeTable<'_>) {
    fn walk(d: &mut Diags<'_>, path: &str, v: &Spanned<DeValue<'_>>) {
        match v.get_ref() {
            DeValue::String(text) => {
                if let Err(e) = scheduler::secrets::check_syntax(text) {
                    d.err(Some(v.span()), format!("{path}: {e}"));
                }
            }
            DeValue::Table(t) => {
                for (k, inner) in t {
                    walk(d, &format!("{path}.{}", k.get_ref()), inner);
                }
            }
            _ => {}
        }
    }
    for key in ["database_url", "kafka", "lake", "web"] {
        if let Some(v) = table.get(key) {
            walk(d, key, v);
        }
    }
}

/// Every `[[stream]]`, each deserialized and resolved on its own; two
/// streams may not share a name or a table.
fn parse_streams<'a>(
    d: &mut Diags<'a>,
    value: Spanned<DeValue<'a>>,
    catalog: &SchemaCatalog,
) -> Vec<Arc<StreamSpec>> {
    let span = value.span();
    let DeValue::Array(items) = value.into_inner() else {
        d.err(Some(span), "stream: write [[stream]] tables");
        return Vec::new();
    };
    let mut streams: Vec<Arc<StreamSpec>> = Vec::new();
    for item in items {
        let Some(cfg) = d.de::<StreamConfig>(item, "[[stream]]", &[]) else {
            continue;
        };
        let name_span = cfg.name.span();
        match cfg.resolve(catalog) {
            Ok(spec) => {
                if streams.iter().any(|s| s.name == spec.name) {
                    d.err(
                        Some(name_span),
                        format!("stream {:?} is declared twice", spec.name),
                    );
                } else if let Some(other) = streams
                    .iter()
                    .find(|s| s.table == spec.table && s.lake == spec.lake)
                {
                    d.err(
                        Some(name_span),
                        format!(
                            "streams {:?} and {:?} write the same table {:?}",
                            other.name, spec.name, spec.table
                        ),
                    );
                } else {
                    streams.push(Arc::new(spec));
                }
            }
            Err(problems) => {
                for (sp, msg) in problems {
                    d.err(sp, format!("stream {:?}: {msg}", cfg.name.get_ref()));
                }
            }
        }
    }
    streams
}

/// The tables of an array (`[[transform]]`, `[[view]]`), each
/// deserialized as `C` and resolved on its own (`resolve`: the spec, or its
/// problems); `clash` says where and why a resolved spec collides with the
/// ones kept so far (then it is not kept).
fn declarations<'a, C, S>(
    d: &mut Diags<'a>,
    value: Spanned<DeValue<'a>>,
    what: &str,
    name_of: impl Fn(&C) -> String,
    resolve: impl Fn(&C) -> Result<S, Vec<lake::config::ConfigProblem>>,
    clash: impl Fn(&C, &S, &[Arc<S>]) -> Option<(std::ops::Range<usize>, String)>,
) -> Vec<Arc<S>>
where
    C: serde::de::DeserializeOwned + schemars::JsonSchema + 'static,
{
    let span = value.span();
    let DeValue::Array(items) = value.into_inner() else {
        d.err(Some(span), format!("{what}: write [[{what}]] tables"));
        return Vec::new();
    };
    let mut out: Vec<Arc<S>> = Vec::new();
    for item in items {
        let Some(cfg) = d.de::<C>(item, &format!("[[{what}]]"), &[]) else {
            continue;
        };
        let name = name_of(&cfg);
        match resolve(&cfg) {
            Ok(spec) => match clash(&cfg, &spec, &out) {
                Some((at, msg)) => d.err(Some(at), msg),
                None => out.push(Arc::new(spec)),
            },
            Err(problems) => {
                for (sp, msg) in problems {
                    d.err(sp, format!("{what} {name:?}: {msg}"));
                }
            }
        }
    }
    out
}

/// The stream writing `table` (or its dead letters), said for a message.
fn stream_writing(streams: &[Arc<StreamSpec>], table: &str) -> Option<String> {
    streams
        .iter()
        .find(|s| s.table == table || s.dead_letter_table == table)
        .map(|s| format!("stream {:?}", s.name))
}

/// Every `[[transform]]`: names and output tables are unique, and no
/// output is a stream's table.
fn parse_transforms<'a>(
    d: &mut Diags<'a>,
    value: Spanned<DeValue<'a>>,
    text: &str,
    streams: &[Arc<StreamSpec>],
) -> Vec<Arc<TransformSpec>> {
    declarations(
        d,
        value,
        "transform",
        |c: &TransformConfig| c.name.get_ref().clone(),
        |c| c.resolve(text),
        |cfg, spec: &TransformSpec, kept| {
            let name = &spec.name;
            if kept.iter().any(|t| t.name == spec.name) {
                return Some((
                    cfg.name.span(),
                    format!("transform {name:?} is declared twice"),
                ));
            }
            if let Some(o) = kept.iter().find(|t| t.table == spec.table) {
                return Some((
                    cfg.table.span(),
                    format!(
                        "transforms {:?} and {name:?} write the same table {:?}",
                        o.name, spec.table
                    ),
                ));
            }
            stream_writing(streams, &spec.table).map(|w| {
                (
                    cfg.table.span(),
                    format!(
                        "transform {name:?}: table {:?} is written by {w}; write the output to a table of its own",
                        spec.table
                    ),
                )
            })
        },
    )
}

/// Every `[[view]]`: names and batch tables are unique, and no batch table
/// is written by anything else.
fn parse_views<'a>(
    d: &mut Diags<'a>,
    value: Spanned<DeValue<'a>>,
    text: &str,
    streams: &[Arc<StreamSpec>],
    transforms: &[Arc<TransformSpec>],
) -> Vec<Arc<ViewSpec>> {
    declarations(
        d,
        value,
        "view",
        |c: &ViewConfig| c.name.get_ref().clone(),
        |c| c.resolve(text),
        |cfg, spec: &ViewSpec, kept| {
            let name = &spec.name;
            if kept.iter().any(|v| v.name == spec.name) {
                return Some((cfg.name.span(), format!("view {name:?} is declared twice")));
            }
            let writer = stream_writing(streams, &spec.table)
                .or_else(|| {
                    transforms
                        .iter()
                        .find(|t| t.table == spec.table)
                        .map(|t| format!("transform {:?}", t.name))
                })
                .or_else(|| {
                    kept.iter()
                        .find(|v| v.table == spec.table)
                        .map(|v| format!("view {:?}", v.name))
                })?;
            Some((
                cfg.table.as_ref().map_or(cfg.name.span(), Spanned::span),
                format!(
                    "view {name:?}: table {:?} is written by {writer}; give the batch view a table of its own",
                    spec.table
                ),
            ))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::builtin::DEFAULT_CONFIG;
    use crate::config::schema_catalog;

    #[test]
    fn the_built_in_config_declares_the_users_stream() {
        let p = parse("x", DEFAULT_CONFIG, &schema_catalog()).unwrap();
        assert_eq!(p.streams.len(), 1);
        let s = &p.streams[0];
        assert_eq!((s.name.as_str(), s.table.as_str()), ("users", "users"));
        let parts: Vec<&str> = s.partition_by.iter().map(|p| p.name()).collect();
        assert_eq!(parts, ["nation", "date"]);
    }

    #[test]
    fn problems_point_at_file_line_col() {
        let text = r#"database_url = "postgres://x"
kafak = { bootstrap_servers = "k:9092" }

[[stream]]
name = "users"
topics = ["users"]
table = "users"
schema = "random_usr"

[[stream]]
name = "events"
topics = ["events"]
table = "events"
schema = "random_user"
partition_by = ["natoin"]
rotaton = { max_rows = 5 }
"#;
        let errs: Vec<String> = parse("tributary.toml", text, &schema_catalog())
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        let all = errs.join("\n");
        assert!(
            all.contains("tributary.toml:2:1: config: unknown key `kafak` (did you mean `kafka`?)"),
            "{all}"
        );
        assert!(
            all.contains("tributary.toml:8:10: stream \"users\": unknown schema \"random_usr\""),
            "{all}"
        );
        assert!(
            all.contains(
                "tributary.toml:16:1: [[stream]]: unknown key `rotaton` (did you mean `rotation`?)"
            ),
            "{all}"
        );
    }

    #[test]
    fn the_example_config_is_valid() {
        let p = parse(
            "tributary.example.toml",
            include_str!("../../tributary.example.toml"),
            &schema_catalog(),
        )
        .unwrap();
        assert_eq!(p.streams.len(), 1);
        assert_eq!(p.transforms.len(), 2);
        assert_eq!(p.top.metrics.bind.as_deref(), Some("127.0.0.1:9464"));
    }

    #[test]
    fn transform_problems_point_at_their_keys() {
        let text = r#"[[stream]]
name = "users"
topics = ["users"]
table = "users"
schema = "random_user"

[[transform]]
name = "t1"
source = "users"
sql = """
SELECT id FROM people
"""
table = "users"
trigger = "soon"

[[transform]]
name = "t2"
source = "users"
sql = "SELEC id FROM users"
table = "out"
max_source_versions = 0

[[transform]]
name = "t3"
source = "users"
sql = "SELECT * FROM users"
table = "out3"
emit = "final"

[[transform]]
name = "t4"
source = "users"
sql = "SELECT window_start, count(*) FROM HOP(users, event_time, INTERVAL '2 minutes', INTERVAL '5 minutes') GROUP BY 1"
table = "out4"

[[transform]]
name = "t5"
source = "users"
sql = "SELECT * FROM users"
table = "out5"
sink = { topic = "has space", delivery = "twice" }
"#;
        let errs: Vec<String> = parse("f.toml", text, &schema_catalog())
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        let all = errs.join("\n");
        assert!(
            all.contains("f.toml:10:7: transform \"t1\": sql: the query does not read its source table \"users\" (it reads people)"),
            "{all}"
        );
        assert!(
            all.contains("f.toml:13:9: transform \"t1\": table \"users\" is the source"),
            "{all}"
        );
        assert!(
            all.contains("f.toml:14:11: transform \"t1\": trigger"),
            "{all}"
        );
        assert!(all.contains("f.toml:19:8: transform \"t2\": sql:"), "{all}");
        assert!(
            all.contains("f.toml:21:23: transform \"t2\": max_source_versions must be at least 1"),
            "{all}"
        );
        assert!(
            all.contains(
                "f.toml:41:8: transform \"t5\": sink topic \"has space\": a Kafka topic name is"
            ),
            "{all}"
        );
        assert!(
            all.contains("transform \"t5\": sink delivery \"twice\": write \"exactly_once\" or \"at_least_once\""),
            "{all}"
        );
    }

    #[test]
    fn duplicate_streams_and_tables_are_refused() {
        let one = "[[stream]]\nname = \"a\"\ntopics = [\"t\"]\ntable = \"t1\"\nschema = \"random_user\"\n";
        let two = "[[stream]]\nname = \"a\"\ntopics = [\"t\"]\ntable = \"t2\"\nschema = \"random_user\"\n";
        let three = "[[stream]]\nname = \"b\"\ntopics = [\"t\"]\ntable = \"t1\"\nschema = \"random_user\"\n";
        let errs = parse("f", &format!("{one}{two}{three}"), &schema_catalog()).unwrap_err();
        let all: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert!(all[0].contains("stream \"a\" is declared twice"), "{all:?}");
        assert!(all[1].contains("write the same table \"t1\""), "{all:?}");
    }
}
