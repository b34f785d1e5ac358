//! What a batch view covers, kept in its own commits: the source version
//! `V` it was computed at, and for a stream table the highest Kafka
//! offset per topic-partition that version holds (`txn` entries written
//! with the batch's files). The speed layer is the source's rows past that
//! mark: for a stream table keyed on offsets (`_offset > H[_topic,
//! _partition]`), never on time, so a row is in exactly one of the two
//! however late it arrives; for a derived table the files added after `V`.

use std::collections::{BTreeMap, HashMap};

use crate::schema::{COL_OFFSET, COL_PARTITION, COL_TOPIC};
use crate::sql::write::quote_ident;

/// The batch's mark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// The source version the batch was computed at.
    pub version: u64,
    /// (topic, partition) → highest offset in the batch (stream sources).
    pub offsets: BTreeMap<(String, i32), i64>,
}

/// The app id holding the source version.
pub fn version_app_id(view: &str) -> String {
    format!("tributary-view:{view}")
}

fn offset_prefix(view: &str) -> String {
    format!("tributary-view:{view}:")
}

/// The app id holding one topic-partition's highest offset (Kafka topic
/// names have no `:`).
pub fn offset_app_id(view: &str, topic: &str, partition: i32) -> String {
    format!("{}{topic}:{partition}", offset_prefix(view))
}

impl Coverage {
    /// Reads the mark from a batch table's `txn` entries; `None` when the
    /// table holds none for `view`.
    pub fn read(txns: &HashMap<String, i64>, view: &str) -> Option<Coverage> {
        let version = u64::try_from(*txns.get(&version_app_id(view))?).ok()?;
        let prefix = offset_prefix(view);
        let offsets = txns
            .iter()
            .filter_map(|(id, o)| {
                let (topic, p) = id.strip_prefix(&prefix)?.rsplit_once(':')?;
                Some(((topic.to_string(), p.parse().ok()?), *o))
            })
            .collect();
        Some(Coverage { version, offsets })
    }

    /// The `txn` entries recording the mark.
    pub fn entries(&self, view: &str) -> Vec<(String, i64)> {
        let mut out = vec![(version_app_id(view), self.version as i64)];
        out.extend(
            self.offsets
                .iter()
                .map(|((t, p), o)| (offset_app_id(view, t, *p), *o)),
        );
        out
    }

    /// SQL over a stream table's columns: the rows past the mark — above
    /// the covered offset of their topic-partition, or in a topic-partition
    /// the batch had no row of. Written as comparisons and IN lists only, so
    /// file statistics prune every file the batch already covers.
    pub fn speed_predicate(&self) -> String {
        if self.offsets.is_empty() {
            return "TRUE".to_string();
        }
        let (t, p, o) = (
            quote_ident(COL_TOPIC),
            quote_ident(COL_PARTITION),
            quote_ident(COL_OFFSET),
        );
        let lit = |topic: &str| format!("'{}'", topic.replace('\'', "''"));
        let mut past: Vec<String> = self
            .offsets
            .iter()
            .map(|((topic, part), off)| {
                format!("({t} = {} AND {p} = {part} AND {o} > {off})", lit(topic))
            })
            .collect();
        let mut by_topic: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (topic, part) in self.offsets.keys() {
            by_topic.entry(topic).or_default().push(part.to_string());
        }
        for (topic, parts) in &by_topic {
            past.push(format!(
                "({t} = {} AND {p} NOT IN ({}))",
                lit(topic),
                parts.join(", ")
            ));
        }
        let topics: Vec<String> = by_topic.keys().map(|x| lit(x)).collect();
        past.push(format!("{t} NOT IN ({})", topics.join(", ")));
        past.join(" OR ")
    }

    /// Said for a reader: `users@12 (offsets users/0 ≤ 41, users/1 ≤ 38)`.
    pub fn describe(&self, source: &str) -> String {
        if self.offsets.is_empty() {
            return format!("{source}@{}", self.version);
        }
        let marks: Vec<String> = self
            .offsets
            .iter()
            .map(|((t, p), o)| format!("{t}/{p} ≤ {o}"))
            .collect();
        format!("{source}@{} (offsets {})", self.version, marks.join(", "))
    }
}

/// Whether a table's columns are a stream table's (rows keyed by offset).
pub fn keyed_by_offset(schema: &arrow::datatypes::Schema) -> bool {
    [COL_TOPIC, COL_PARTITION, COL_OFFSET]
        .iter()
        .all(|c| schema.field_with_name(c).is_ok())
}

/// SQL finding, in a stream table, the highest offset per topic-partition.
pub fn offsets_sql(table: &str) -> String {
    format!(
        "SELECT CAST({t} AS VARCHAR) AS topic, CAST({p} AS INT) AS p, CAST(max({o}) AS BIGINT) AS o \
         FROM {table} GROUP BY 1, 2",
        t = quote_ident(COL_TOPIC),
        p = quote_ident(COL_PARTITION),
        o = quote_ident(COL_OFFSET),
        table = quote_ident(table)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_round_trips_through_txn_entries() {
        let c = Coverage {
            version: 12,
            offsets: BTreeMap::from([(("users".into(), 0), 41), (("users".into(), 1), 38)]),
        };
        let txns: HashMap<String, i64> = c
            .entries("v")
            .into_iter()
            .chain([("tributary-view:other".to_string(), 3)])
            .collect();
        assert_eq!(Coverage::read(&txns, "v"), Some(c.clone()));
        assert_eq!(Coverage::read(&txns, "w"), None);
        let p = c.speed_predicate();
        assert_eq!(
            p,
            "(\"_topic\" = 'users' AND \"_partition\" = 0 AND \"_offset\" > 41) OR \
             (\"_topic\" = 'users' AND \"_partition\" = 1 AND \"_offset\" > 38) OR \
             (\"_topic\" = 'users' AND \"_partition\" NOT IN (0, 1)) OR \"_topic\" NOT IN ('users')"
        );
        assert_eq!(
            c.describe("users"),
            "users@12 (offsets users/0 ≤ 41, users/1 ≤ 38)"
        );
    }
}
