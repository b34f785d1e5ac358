//! `[[stream]]` → [`StreamSpec`]: one function per section, each adding its
//! problems to one list, so a declaration with several mistakes reports
//! them all.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono_tz::Tz;
use toml::Spanned;

use super::file::{LateDataConfig, ParquetConfig, RotationConfig, SchemaSpec, StreamConfig};
use super::spec::{Codec, DEFAULT_MEMORY_BUDGET, Dictionary, LateData, Rotation, StreamSpec};
use crate::schema::{PartitionColumn, parse_arrow_type, table_schema};
use crate::units::{parse_bytes, parse_duration};

/// A problem in a stream declaration: the byte span it concerns (if known)
/// and a sentence.
pub type ConfigProblem = (Option<Range<usize>>, String);

/// Named Arrow schemas that streams may refer to by name.
pub type SchemaCatalog = BTreeMap<String, SchemaRef>;

/// A valid stream or table name: letters, digits, `_` and `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The name a declaration gives under a key, a problem at the key when it
/// is not [`valid_name`] (`what` says what it names: "view", "table").
pub fn checked_name(
    value: &Spanned<String>,
    what: &str,
    problems: &mut Vec<ConfigProblem>,
) -> String {
    let n = value.get_ref().clone();
    if !valid_name(&n) {
        problems.push((
            Some(value.span()),
            format!("invalid {what} name {n:?}: use letters, digits, '_' or '-'"),
        ));
    }
    n
}

/// Problems found so far.
#[derive(Default)]
struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn at(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.0.push((Some(span), msg.into()));
    }
}

impl StreamConfig {
    /// Validates the declaration against the schema catalog, collecting
    /// every problem.
    pub fn resolve(&self, catalog: &SchemaCatalog) -> Result<StreamSpec, Vec<ConfigProblem>> {
        let mut p = Problems::default();
        let name = checked_name(&self.name, "stream", &mut p.0);
        let table = checked_name(&self.table, "table", &mut p.0);
        let topics = self.topics.get_ref().clone();
        if topics.is_empty() {
            p.at(self.topics.span(), "topics: name at least one topic");
        }
        let dead_letter_table = dead_letter_table(self.dead_letter_table.as_ref(), &table, &mut p);
        let record_schema = record_schema(&self.schema, catalog, &mut p);
        let timezone = timezone(self.timezone.as_ref(), &mut p);
        let partition_by = partition_by(&self.partition_by, record_schema.as_deref(), &mut p);
        let late_data = self
            .late_data
            .as_ref()
            .and_then(|l| late_data(l, &partition_by, &mut p));
        let rotation = self
            .rotation
            .as_ref()
            .map_or_else(Rotation::default, |r| rotation(r, &mut p));
        let parquet = self
            .parquet
            .as_ref()
            .map_or_else(Parquet::default, |q| parquet(q, &mut p));
        let memory_budget = memory_budget(self.memory_budget.as_ref(), &mut p);
        self.check_consumer(&mut p);

        let (Some(record_schema), true) = (record_schema, p.0.is_empty()) else {
            return Err(p.0);
        };
        let table_schema = table_schema(&record_schema, &partition_by);
        Ok(StreamSpec {
            group: self
                .group
                .clone()
                .unwrap_or_else(|| format!("tributary-{name}")),
            name,
            topics,
            table,
            lake: self.lake.as_ref().map(|l| l.get_ref().clone()),
            dead_letter_table,
            record_schema,
            table_schema,
            partition_by,
            timezone,
            late_data,
            rotation,
            codec: parquet.codec,
            row_group_rows: parquet.row_group_rows,
            dictionary: parquet.dictionary,
            memory_budget,
            consumer: self.consumer.clone(),
            start: BTreeMap::new(),
        })
    }

    /// Consumer properties the writer must own for exactly once.
    fn check_consumer(&self, p: &mut Problems) {
        for key in self.consumer.keys() {
            if matches!(
                key.as_str(),
                "group.id"
                    | "enable.auto.commit"
                    | "enable.auto.offset.store"
                    | "auto.offset.reset"
                    | "bootstrap.servers"
            ) {
                p.at(
                    self.name.span(),
                    format!(
                        "consumer.{key:?}: set by the writer (it must own offsets for exactly once)"
                    ),
                );
            }
        }
    }
}

fn dead_letter_table(given: Option<&Spanned<String>>, table: &str, p: &mut Problems) -> String {
    let Some(d) = given else {
        return format!("{table}_dead_letter");
    };
    if !valid_name(d.get_ref()) || d.get_ref() == table {
        p.at(
            d.span(),
            format!(
                "invalid dead_letter_table {:?}: use a name other than the table's, with letters, digits, '_' or '-'",
                d.get_ref()
            ),
        );
    }
    d.get_ref().clone()
}

fn record_schema(
    schema: &Spanned<SchemaSpec>,
    catalog: &SchemaCatalog,
    p: &mut Problems,
) -> Option<SchemaRef> {
    let span = schema.span();
    match schema.get_ref() {
        SchemaSpec::Named(n) => {
            let found = catalog.get(n).cloned();
            if found.is_none() {
                let known: Vec<&str> = catalog.keys().map(String::as_str).collect();
                p.at(
                    span,
                    format!(
                        "unknown schema {n:?} (known: {}); or declare columns inline",
                        known.join(", ")
                    ),
                );
            }
            found
        }
        SchemaSpec::Inline { columns } => {
            let mut fields = Vec::new();
            let mut seen = HashSet::new();
            for c in columns {
                if !seen.insert(c.name.clone()) {
                    p.at(
                        span.clone(),
                        format!("column {:?} is declared twice", c.name),
                    );
                }
                if c.name.starts_with('_') {
                    p.at(
                        span.clone(),
                        format!(
                            "column {:?}: names starting with '_' are reserved for the Kafka coordinates",
                            c.name
                        ),
                    );
                }
                match parse_arrow_type(&c.data_type) {
                    Ok(t) => fields.push(Field::new(&c.name, t, c.nullable)),
                    Err(e) => p.at(span.clone(), format!("column {:?}: {e}", c.name)),
                }
            }
            if columns.is_empty() {
                p.at(span, "schema: declare at least one column");
            }
            Some(Arc::new(Schema::new(fields)))
        }
    }
}

fn timezone(zone: Option<&Spanned<String>>, p: &mut Problems) -> Tz {
    let Some(z) = zone else {
        return Tz::UTC;
    };
    z.get_ref().parse::<Tz>().unwrap_or_else(|_| {
        p.at(
            z.span(),
            format!(
                "unknown time zone {:?}: use an IANA name such as \"UTC\" or \"Europe/Paris\"",
                z.get_ref()
            ),
        );
        Tz::UTC
    })
}

fn partition_by(
    written: &[Spanned<String>],
    schema: Option<&Schema>,
    p: &mut Problems,
) -> Vec<PartitionColumn> {
    let mut out: Vec<PartitionColumn> = Vec::new();
    for w in written {
        let parsed = match PartitionColumn::parse(w.get_ref()) {
            Ok(parsed) => parsed,
            Err(e) => {
                p.at(w.span(), format!("partition_by: {e}"));
                continue;
            }
        };
        if let Some(schema) = schema {
            check_partition_column(&parsed, w, schema, p);
        }
        if out.iter().any(|q| q.name() == parsed.name()) {
            p.at(
                w.span(),
                format!("partition_by: {:?} appears twice", parsed.name()),
            );
        }
        out.push(parsed);
    }
    out
}

/// The column a partition is computed from exists and has a type it can be
/// partitioned by.
fn check_partition_column(
    parsed: &PartitionColumn,
    written: &Spanned<String>,
    schema: &Schema,
    p: &mut Problems,
) {
    let text = written.get_ref().trim();
    let span = written.span();
    let source = parsed.source();
    let Ok(field) = schema.field_with_name(source) else {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let hint = diag::suggest(source, &names)
            .map(|s| format!(" (did you mean {s:?}?)"))
            .unwrap_or_default();
        p.at(
            span,
            format!("partition_by: no column {source:?} in the schema{hint}"),
        );
        return;
    };
    match (parsed, field.data_type()) {
        (
            PartitionColumn::Column(_),
            DataType::Utf8
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Boolean
            | DataType::Date32,
        ) => {}
        (PartitionColumn::Column(_), t) => p.at(
            span,
            format!(
                "partition_by: column {source:?} has type {t}; partition by text, integer, boolean or date columns, or use date({source}) / hour({source}) for timestamps"
            ),
        ),
        (_, DataType::Timestamp(_, _)) => {
            if schema.field_with_name(parsed.name()).is_ok() {
                p.at(
                    span,
                    format!(
                        "partition_by: {text} makes a column {:?}, but the schema already has one",
                        parsed.name()
                    ),
                );
            }
        }
        (_, t) => p.at(
            span,
            format!("partition_by: {text} needs a timestamp column; {source:?} is {t}"),
        ),
    }
}

fn late_data(
    l: &Spanned<LateDataConfig>,
    partition_by: &[PartitionColumn],
    p: &mut Problems,
) -> Option<LateData> {
    let column = partition_by.iter().find_map(|p| match p {
        PartitionColumn::Date(c) | PartitionColumn::Hour(c) => Some(c.clone()),
        PartitionColumn::Column(_) => None,
    });
    let allowed = parse_duration(&l.get_ref().allowed_lateness, "late_data.allowed_lateness");
    match (column, allowed) {
        (None, _) => {
            p.at(
                l.span(),
                "late_data needs an event-time bucket in partition_by, such as \"date(event_time)\"",
            );
            None
        }
        (_, Err(e)) => {
            p.at(l.span(), e);
            None
        }
        (Some(column), Ok(allowed)) => Some(LateData {
            column,
            allowed,
            policy: l.get_ref().policy,
        }),
    }
}

fn rotation(r: &Spanned<RotationConfig>, p: &mut Problems) -> Rotation {
    let span = r.span();
    let r = r.get_ref();
    let mut rotation = Rotation::default();
    if let Some(n) = r.max_rows {
        if n == 0 {
            p.at(span.clone(), "rotation.max_rows must be at least 1");
        }
        rotation.max_rows = n;
    }
    if let Some(b) = &r.max_bytes {
        match parse_bytes(b) {
            Ok(0) => p.at(span.clone(), "rotation.max_bytes must be above 0"),
            Ok(n) => rotation.max_bytes = n,
            Err(e) => p.at(span.clone(), format!("rotation.max_bytes: {e}")),
        }
    }
    if let Some(a) = &r.max_age {
        match parse_duration(a, "rotation.max_age") {
            Ok(d) if d.is_zero() => p.at(span, "rotation.max_age must be above 0"),
            Ok(d) => rotation.max_age = d,
            Err(e) => p.at(span, e),
        }
    }
    rotation
}

/// The Parquet settings of a stream, resolved.
struct Parquet {
    codec: Codec,
    row_group_rows: usize,
    dictionary: Dictionary,
}

impl Default for Parquet {
    fn default() -> Self {
        Parquet {
            codec: Codec::Zstd(1),
            row_group_rows: 1 << 20,
            dictionary: Dictionary::Auto,
        }
    }
}

fn parquet(q: &Spanned<ParquetConfig>, p: &mut Problems) -> Parquet {
    let (out, problems) = resolve_parquet(q.get_ref());
    for message in problems {
        p.at(q.span(), message);
    }
    out
}

/// A `[parquet]` table resolved, and every problem with it.
fn resolve_parquet(q: &ParquetConfig) -> (Parquet, Vec<String>) {
    let mut problems = Vec::new();
    let mut out = Parquet::default();
    let name = q
        .compression
        .as_deref()
        .unwrap_or("zstd")
        .to_ascii_lowercase();
    out.codec = match (name.as_str(), q.level) {
        ("zstd", l) => {
            let l = l.unwrap_or(1);
            if !(1..=22).contains(&l) {
                problems.push(format!("parquet.level {l}: zstd levels are 1 to 22"));
            }
            Codec::Zstd(l)
        }
        ("gzip", l) => {
            let l = l.unwrap_or(6);
            if !(0..=9).contains(&l) {
                problems.push(format!("parquet.level {l}: gzip levels are 0 to 9"));
            }
            Codec::Gzip(l.clamp(0, 9) as u32)
        }
        ("snappy" | "lz4" | "none", Some(_)) => {
            problems.push(format!("parquet.level: {name} has no levels"));
            Codec::None
        }
        ("snappy", None) => Codec::Snappy,
        ("lz4", None) => Codec::Lz4,
        ("none", None) => Codec::None,
        (other, _) => {
            problems.push(format!(
                "parquet.compression {other:?}: use zstd, snappy, lz4, gzip or none"
            ));
            Codec::None
        }
    };
    if let Some(n) = q.row_group_rows {
        if n == 0 {
            problems.push("parquet.row_group_rows must be at least 1".into());
        }
        out.row_group_rows = n;
    }
    out.dictionary = match q.dictionary.as_deref() {
        None | Some("auto") => Dictionary::Auto,
        Some("on") => Dictionary::On,
        Some("off") => Dictionary::Off,
        Some(other) => {
            problems.push(format!("parquet.dictionary {other:?}: use auto, on or off"));
            Dictionary::Auto
        }
    };
    (out, problems)
}

/// The Parquet writer settings a `[parquet]` table asks for, outside a
/// stream (a task writing a table): `dictionary = "auto"` is Parquet's
/// default, a dictionary for every column.
pub fn writer_properties(
    q: &ParquetConfig,
) -> Result<parquet::file::properties::WriterProperties, Vec<String>> {
    let (p, problems) = resolve_parquet(q);
    if !problems.is_empty() {
        return Err(problems);
    }
    let b = parquet::file::properties::WriterProperties::builder()
        .set_compression(p.codec.compression())
        .set_max_row_group_row_count(Some(p.row_group_rows))
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Page);
    Ok(match p.dictionary {
        Dictionary::Off => b.set_dictionary_enabled(false),
        Dictionary::On | Dictionary::Auto => b,
    }
    .build())
}

fn memory_budget(given: Option<&Spanned<String>>, p: &mut Problems) -> u64 {
    let Some(m) = given else {
        return DEFAULT_MEMORY_BUDGET;
    };
    match parse_bytes(m.get_ref()) {
        Ok(n) if n >= 1 << 20 => n,
        Ok(_) => {
            p.at(m.span(), "memory_budget must be at least 1MiB");
            DEFAULT_MEMORY_BUDGET
        }
        Err(e) => {
            p.at(m.span(), format!("memory_budget: {e}"));
            DEFAULT_MEMORY_BUDGET
        }
    }
}
