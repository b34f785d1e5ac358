//! Synthetic random users in the API's format (1.4), deterministic per
//! seed, page and index, with the format's quirks: numeric and text
//! postcodes, coordinates as strings, non-ASCII names and cities, street
//! names with trailing spaces, null `id.value`. Used by the offline API.

use serde_json::{Value, json};

/// Nationalities the generator knows (the API's `nat` codes).
pub const NATS: &[&str] = &["FR", "DE", "GB", "US", "NL", "IR", "UA", "ES", "CA", "BR"];

struct Nat {
    code: &'static str,
    country: &'static str,
    first_f: &'static [&'static str],
    first_m: &'static [&'static str],
    last: &'static [&'static str],
    cities: &'static [&'static str],
    streets: &'static [&'static str],
    titles: (&'static str, &'static str),
}

const TABLE: &[Nat] = &[
    Nat {
        code: "FR",
        country: "France",
        first_f: &["Léa", "Chloé", "Manon", "Inès"],
        first_m: &["Lucas", "Théo", "Hugo", "Noé"],
        last: &["Martin", "Lefèvre", "Girard", "Roussel"],
        cities: &["Paris", "Besançon", "Nîmes", "Orléans"],
        streets: &["Rue de la Paix", "Avenue Jean-Jaurès", "Place du Château"],
        titles: ("Mme", "M"),
    },
    Nat {
        code: "DE",
        country: "Germany",
        first_f: &["Jana", "Jürgen", "Ursula", "Käthe"],
        first_m: &["Jörg", "Lukas", "Dieter", "Ömer"],
        last: &["Müller", "Schröder", "Weiß", "Krüger"],
        cities: &["München", "Köln", "Lübeck", "Düsseldorf"],
        streets: &["Hauptstraße", "Schillerstraße", "Am Bahnhof"],
        titles: ("Frau", "Herr"),
    },
    Nat {
        code: "GB",
        country: "United Kingdom",
        first_f: &["Olivia", "Amelia", "Isla"],
        first_m: &["Oliver", "George", "Harry"],
        last: &["Smith", "Jones", "Taylor"],
        cities: &["London", "Leeds", "Bristol"],
        streets: &["High Street", "Church Lane", "Victoria Road"],
        titles: ("Ms", "Mr"),
    },
    Nat {
        code: "US",
        country: "United States",
        first_f: &["Emma", "Ava", "Mia"],
        first_m: &["Liam", "Noah", "Ethan"],
        last: &["Johnson", "Brown", "Davis"],
        cities: &["Austin", "Denver", "Portland"],
        streets: &["Main St", "Oak Ave", "Pine Rd"],
        titles: ("Mrs", "Mr"),
    },
    Nat {
        code: "NL",
        country: "Netherlands",
        first_f: &["Sanne", "Fleur", "Anouk"],
        first_m: &["Daan", "Bram", "Sem"],
        last: &["de Vries", "van Dijk", "Bakker"],
        cities: &["Ede", "Utrecht", "Zwolle"],
        streets: &["Dorpsstraat", "Kerkweg", "Molenlaan"],
        titles: ("Ms", "Mr"),
    },
    Nat {
        code: "IR",
        country: "Iran",
        first_f: &["نازنین", "مریم", "زهرا"],
        first_m: &["علی", "رضا", "محمد"],
        last: &["احمدی", "محمدی", "کریمی"],
        cities: &["تهران", "شیراز", "اصفهان"],
        streets: &["میدان امام", "خیابان آزادی", "کوچه بهار"],
        titles: ("Ms", "Mr"),
    },
    Nat {
        code: "UA",
        country: "Ukraine",
        first_f: &["Олена", "Марія", "Ірина"],
        first_m: &["Андрій", "Тарас", "Олег"],
        last: &["Шевченко", "Коваленко", "Бондаренко"],
        cities: &["Київ", "Львів", "Одеса"],
        streets: &["вулиця Шевченка", "проспект Миру", "вулиця Лесі Українки"],
        titles: ("Ms", "Mr"),
    },
    Nat {
        code: "ES",
        country: "Spain",
        first_f: &["Lucía", "María", "Begoña"],
        first_m: &["José", "Álvaro", "Iñigo"],
        last: &["García", "Núñez", "Muñoz"],
        cities: &["Málaga", "Córdoba", "León"],
        streets: &["Calle Mayor", "Avenida de Andalucía", "Paseo del Prado"],
        titles: ("Ms", "Mr"),
    },
    Nat {
        code: "CA",
        country: "Canada",
        first_f: &["Charlotte", "Zoé", "Emily"],
        first_m: &["William", "Félix", "Jack"],
        last: &["Tremblay", "Roy", "Wilson"],
        cities: &["Québec", "Calgary", "Montréal"],
        streets: &["King St", "Rue Principale", "Maple Ave"],
        titles: ("Ms", "Mr"),
    },
    Nat {
        code: "BR",
        country: "Brazil",
        first_f: &["Ana", "Júlia", "Letícia"],
        first_m: &["João", "Gonçalo", "Caio"],
        last: &["Silva", "Araújo", "Gonçalves"],
        cities: &["São Paulo", "Belém", "Maceió"],
        streets: &["Rua São João", "Avenida Paulista", "Rua da Bahia"],
        titles: ("Ms", "Mr"),
    },
];

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn new(seed: &str, page: u64, index: u64) -> Rng {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in seed.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Rng(h
            ^ page.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ index.wrapping_mul(0xbf58_476d_1ce4_e5b9))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from_digit(self.below(16) as u32, 16).unwrap_or('0'))
            .collect()
    }
}

fn postcode(code: &str, r: &mut Rng) -> Value {
    let letter = |r: &mut Rng| char::from(b'A' + r.below(26) as u8);
    match code {
        "GB" => json!(format!(
            "{}{}{} {}{}{}",
            letter(r),
            letter(r),
            r.below(20),
            r.below(10),
            letter(r),
            letter(r)
        )),
        "CA" => json!(format!(
            "{}{}{} {}{}{}",
            letter(r),
            r.below(10),
            letter(r),
            r.below(10),
            letter(r),
            r.below(10)
        )),
        "NL" => json!(format!(
            "{} {}{}",
            1000 + r.below(9000),
            letter(r),
            letter(r)
        )),
        "BR" => json!(format!("{:05}-{:03}", r.below(100_000), r.below(1000))),
        _ => json!(10_000 + r.below(90_000)),
    }
}

/// The users of one page: `results` users for `seed`, `page`, optionally of
/// one nationality (unknown codes fall back to all).
pub fn users(seed: &str, page: u64, results: usize, nat: Option<&str>) -> Vec<Value> {
    let pool: Vec<&Nat> = match nat {
        Some(n) => {
            let wanted: Vec<String> = n
                .split(',')
                .map(|x| x.trim().to_ascii_uppercase())
                .collect();
            let v: Vec<&Nat> = TABLE
                .iter()
                .filter(|t| wanted.iter().any(|w| w == t.code))
                .collect();
            if v.is_empty() {
                TABLE.iter().collect()
            } else {
                v
            }
        }
        None => TABLE.iter().collect(),
    };
    (0..results as u64)
        .map(|i| user(seed, page, i, &pool))
        .collect()
}

fn user(seed: &str, page: u64, i: u64, pool: &[&Nat]) -> Value {
    let mut r = Rng::new(seed, page, i);
    let n = pool[r.below(pool.len() as u64) as usize];
    let female = r.below(2) == 0;
    let first = r.pick(if female { n.first_f } else { n.first_m });
    let last = r.pick(n.last);
    let title = if female { n.titles.0 } else { n.titles.1 };
    let mut street = r.pick(n.streets).to_string();
    if r.below(7) == 0 {
        street.push_str("  ");
    }
    let uuid = format!(
        "{}-{}-4{}-{}-{}",
        r.hex(8),
        r.hex(4),
        r.hex(3),
        r.hex(4),
        r.hex(12)
    );
    let lat = (r.below(180_000) as f64 / 1000.0) - 90.0;
    let lon = (r.below(360_000) as f64 / 1000.0) - 180.0;
    let id_value = if r.below(2) == 0 {
        Value::Null
    } else {
        json!(format!("{}-{}", r.below(1000), r.below(10_000)))
    };
    let ascii_first: String = first
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase();
    let user_name = format!(
        "{}{}",
        if ascii_first.is_empty() {
            "user"
        } else {
            &ascii_first
        },
        r.below(1000)
    );
    json!({
        "gender": if female { "female" } else { "male" },
        "name": {"title": title, "first": first, "last": last},
        "location": {
            "street": {"number": 1 + r.below(9999), "name": street},
            "city": r.pick(n.cities),
            "state": n.country,
            "country": n.country,
            "postcode": postcode(n.code, &mut r),
            "coordinates": {"latitude": format!("{lat:.4}"), "longitude": format!("{lon:.4}")},
            "timezone": {"offset": format!("{}:00", r.below(12)), "description": "synthetic"}
        },
        "email": format!("{user_name}@example.com"),
        "login": {"uuid": uuid, "username": user_name, "password": r.hex(8), "salt": r.hex(8),
                  "md5": r.hex(32), "sha1": r.hex(40), "sha256": r.hex(64)},
        "dob": {"date": format!("19{:02}-0{}-1{}T08:00:00.000Z", 40 + r.below(60), 1 + r.below(9), r.below(10)), "age": 20 + r.below(60)},
        "registered": {"date": format!("20{:02}-0{}-1{}T08:00:00.000Z", 5 + r.below(20), 1 + r.below(9), r.below(10)), "age": r.below(20)},
        "phone": format!("0{}-{}", r.below(1000), r.below(10_000)),
        "cell": format!("0{}-{}", r.below(1000), r.below(10_000)),
        "id": {"name": if r.below(3) == 0 { "" } else { "ID" }, "value": id_value},
        "picture": {
            "large": "https://randomuser.me/api/portraits/lego/1.jpg",
            "medium": "https://randomuser.me/api/portraits/med/lego/1.jpg",
            "thumbnail": "https://randomuser.me/api/portraits/thumb/lego/1.jpg"
        },
        "nat": n.code
    })
}

/// A whole response body in the API's format.
pub fn response(seed: &str, page: u64, results: usize, nat: Option<&str>) -> Value {
    json!({
        "results": users(seed, page, results, nat),
        "info": {"seed": seed, "results": results, "page": page, "version": "1.4"}
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random_user::{Provenance, parse_response, transform};

    #[test]
    fn deterministic_per_seed_and_page() {
        assert_eq!(users("abc", 1, 20, None), users("abc", 1, 20, None));
        assert_ne!(users("abc", 1, 20, None), users("abc", 2, 20, None));
        assert_ne!(users("abc", 1, 20, None), users("abd", 1, 20, None));
        assert!(
            users("abc", 1, 30, Some("fr"))
                .iter()
                .all(|u| u["nat"] == "FR")
        );
        assert!(
            users("abc", 1, 30, Some("FR,DE"))
                .iter()
                .all(|u| u["nat"] == "FR" || u["nat"] == "DE")
        );
    }

    /// Every generated user has the format's quirks somewhere and transforms cleanly.
    #[test]
    fn quirks_present_and_every_user_transforms() {
        let body = serde_json::to_vec(&response("quirks", 1, 5000, None)).unwrap();
        let resp = parse_response(&body).unwrap();
        assert_eq!(resp.users.len(), 5000);
        let us = &resp.users;
        assert!(us.iter().any(|u| u["location"]["postcode"].is_number()));
        assert!(us.iter().any(|u| u["location"]["postcode"].is_string()));
        assert!(us.iter().any(|u| u["id"]["value"].is_null()));
        assert!(us.iter().any(|u| {
            u["location"]["street"]["name"]
                .as_str()
                .unwrap()
                .ends_with(' ')
        }));
        assert!(
            us.iter()
                .any(|u| !u["name"]["first"].as_str().unwrap().is_ascii())
        );
        assert!(
            us.iter()
                .all(|u| u["location"]["coordinates"]["latitude"].is_string())
        );
        let p = Provenance {
            fetched_at: "t".into(),
            dag_id: "d".into(),
            run_id: "r".into(),
            logical_date: "l".into(),
        };
        let mut ids = std::collections::HashSet::new();
        for u in us {
            let rec = transform(u, &p).unwrap();
            assert!(ids.insert(rec.user_id), "uuids are unique");
            assert!(!rec.address.ends_with(' '));
        }
    }
}
