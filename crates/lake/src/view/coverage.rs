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

    /// Where a stream table's file lies against the mark, from its log
    /// statistics (min and max of `_topic`, `_partition`, `_offset`): a
    /// file of one topic-partition wholly past or wholly within it needs
    /// no row to be tested — what a query of the speed layer mostly
    /// reads, the writer's files since the batch, then skips the
    /// predicate (and its per-file statistics and bloom filter checks).
    pub fn classify(&self, stats: Option<&str>) -> Side {
        let Some(stats) = stats.and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        else {
            return Side::Mixed;
        };
        let (min, max) = (&stats["minValues"], &stats["maxValues"]);
        let (Some(topic), Some(max_topic)) = (min[COL_TOPIC].as_str(), max[COL_TOPIC].as_str())
        else {
            return Side::Mixed;
        };
        let (Some(part), Some(max_part)) =
            (min[COL_PARTITION].as_i64(), max[COL_PARTITION].as_i64())
        else {
            return Side::Mixed;
        };
        let (Some(low), Some(high)) = (min[COL_OFFSET].as_i64(), max[COL_OFFSET].as_i64()) else {
            return Side::Mixed;
        };
        if topic != max_topic || part != max_part {
            return Side::Mixed;
        }
        let Ok(part) = i32::try_from(part) else {
            return Side::Mixed;
        };
        match self.offsets.get(&(topic.to_string(), part)) {
            // A topic-partition the batch never saw: all past (as the
            // predicate's NOT IN branches say).
            None => Side::Past,
            Some(h) if low > *h => Side::Past,
            Some(h) if high <= *h => Side::Within,
            Some(_) => Side::Mixed,
        }
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

/// A file against a batch's mark ([`Coverage::classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Every row is past the mark (speed).
    Past,
    /// Every row is within it (batch).
    Within,
    /// Some of each, or the statistics do not say.
    Mixed,
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

    #[test]
    fn files_are_placed_against_the_mark_by_their_statistics() {
        let c = Coverage {
            version: 3,
            offsets: BTreeMap::from([(("users".into(), 0), 41)]),
        };
        let file = |topics: (&str, &str), parts: (i32, i32), offsets: (i64, i64)| {
            serde_json::json!({
                "numRecords": 5,
                "minValues": {"_topic": topics.0, "_partition": parts.0, "_offset": offsets.0},
                "maxValues": {"_topic": topics.1, "_partition": parts.1, "_offset": offsets.1},
            })
            .to_string()
        };
        let side = |s: String| c.classify(Some(&s));
        assert_eq!(side(file(("users", "users"), (0, 0), (42, 90))), Side::Past);
        assert_eq!(
            side(file(("users", "users"), (0, 0), (0, 41))),
            Side::Within
        );
        assert_eq!(
            side(file(("users", "users"), (0, 0), (30, 50))),
            Side::Mixed
        );
        // Another partition or topic than the batch saw: past.
        assert_eq!(side(file(("users", "users"), (1, 1), (0, 9))), Side::Past);
        assert_eq!(side(file(("other", "other"), (0, 0), (0, 9))), Side::Past);
        // Several partitions in one file (a compaction), or no statistics.
        assert_eq!(
            side(file(("users", "users"), (0, 1), (42, 90))),
            Side::Mixed
        );
        assert_eq!(c.classify(None), Side::Mixed);
        assert_eq!(c.classify(Some("{\"numRecords\": 5}")), Side::Mixed);
    }
}
