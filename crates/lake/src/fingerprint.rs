//! Which log a committed offset belongs to. Offsets alone cannot tell a
//! topic deleted and re-created (or a replaced cluster) from the original
//! once the new log has grown past the committed offset: offset 41 exists
//! in both. So each commit also records a fingerprint of the record at the
//! committed offset — its timestamp, key and value, hashed — as one more
//! Delta `txn` entry per partition ([`fingerprint_id`]), and the writer's
//! log check fetches the record at that offset and compares
//! (`kafka::replaced`). Pure: nothing here talks to Kafka.

/// The `txn` app id holding the fingerprint of the record at a stream's
/// committed offset of one partition. Not a `tributary:` id, so nothing
/// reads it as an offset; `0` means unknown (after an offset reset).
pub fn fingerprint_id(stream: &str, topic: &str, partition: i32) -> String {
    format!("tributary-fingerprint:{stream}:{topic}:{partition}")
}

/// Splits an id made by [`fingerprint_id`] into (stream, topic, partition).
pub fn parse_fingerprint_id(id: &str) -> Option<(&str, &str, i32)> {
    let rest = id.strip_prefix("tributary-fingerprint:")?;
    let (stream, rest) = rest.split_once(':')?;
    let (topic, partition) = rest.rsplit_once(':')?;
    Some((stream, topic, partition.parse().ok()?))
}

/// A record's fingerprint: FNV-1a (64-bit) over its timestamp, key and
/// value with their lengths, kept positive and never 0. Stable across
/// builds and platforms (it is stored in tables).
pub fn fingerprint(ts: Option<i64>, key: Option<&[u8]>, value: Option<&[u8]>) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&ts.unwrap_or(i64::MIN).to_le_bytes());
    for part in [key, value] {
        match part {
            Some(b) => {
                eat(&(b.len() as u64).to_le_bytes());
                eat(b);
            }
            None => eat(&u64::MAX.to_le_bytes()),
        }
    }
    let v = (h >> 2) as i64;
    if v == 0 { 1 } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_records_apart_and_never_read_as_unknown() {
        let a = fingerprint(Some(1), Some(b"k"), Some(b"v"));
        assert_eq!(a, fingerprint(Some(1), Some(b"k"), Some(b"v")), "stable");
        assert!(a > 0);
        for other in [
            fingerprint(Some(2), Some(b"k"), Some(b"v")),
            fingerprint(Some(1), None, Some(b"v")),
            fingerprint(Some(1), Some(b"kv"), Some(b"")),
            fingerprint(Some(1), Some(b"k"), None),
        ] {
            assert_ne!(a, other);
        }
        assert_eq!(
            parse_fingerprint_id(&fingerprint_id("users", "a:b", 3)),
            Some(("users", "a:b", 3))
        );
        // Pinned: a stored fingerprint must keep meaning the same record.
        assert_eq!(fingerprint(None, None, None), 491_615_158_720_352_093);
    }
}
