//! Country from an IP database in MaxMind's `.mmdb` format.
//!
//! Two record layouts are read: ip-location-db's (`{"country_code": "US"}`,
//! the freely licensed database `scripts/services.sh geoip` fetches) and
//! MaxMind's GeoIP2/GeoLite2 Country and City (`country.iso_code`), so an
//! operator with a MaxMind licence can point `enrich.geoip_path` at theirs.
//! The file is read whole into memory at start (8 MB for the free one):
//! nothing can change under the reader, and replacing the file takes a
//! restart.

use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

/// An ISO 3166-1 alpha-2 code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Country([u8; 2]);

impl Country {
    /// `code` if it is two ASCII letters, upper-cased.
    pub fn parse(code: &str) -> Option<Country> {
        match code.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Country([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => None,
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Two ASCII letters, by construction in `parse`.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The `country` column: a trusted proxy's header (what the redirect
/// recorded) wins over the database's answer.
pub fn pick_country<'a>(from_proxy: &'a str, looked_up: Option<&'a Country>) -> &'a str {
    if !from_proxy.is_empty() {
        return from_proxy;
    }
    looked_up.map_or("", Country::as_str)
}

/// One record, in either layout; other fields are skipped.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(borrow, default)]
    country: Option<IsoCode<'a>>,
}

#[derive(Deserialize)]
struct IsoCode<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

/// The database could not be used.
#[derive(Debug, thiserror::Error)]
#[error("enrich.geoip_path: {0}")]
pub struct GeoError(#[from] maxminddb::MaxMindDbError);

/// An open country database.
pub struct GeoDb {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl GeoDb {
    /// Reads the database at `path`.
    pub fn open(path: &Path) -> Result<GeoDb, GeoError> {
        Ok(GeoDb {
            reader: maxminddb::Reader::open_readfile(path)?,
        })
    }

    /// The database's build time (Unix seconds), for the start-up log.
    pub fn built(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    /// The country of `ip`, if the database knows it. A malformed record
    /// answers `None`: one bad entry is no reason to stop shipping.
    pub fn country(&self, ip: IpAddr) -> Option<Country> {
        let found = self.reader.lookup(ip).ok()?;
        let record: Record<'_> = found.decode().ok()??;
        record
            .country_code
            .or_else(|| record.country.and_then(|c| c.iso_code))
            .and_then(Country::parse)
    }

    /// The country of `ip` given as text (the click's `ip` column).
    pub fn country_of(&self, ip: &str) -> Option<Country> {
        self.country(ip.parse().ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let cases = [
            ("US", Some("US")),
            ("de", Some("DE")),
            ("", None),
            ("USA", None),
            ("1A", None),
            ("é", None),
        ];
        for (input, expected) in cases {
            let got = Country::parse(input);
            assert_eq!(got.as_ref().map(Country::as_str), expected, "{input:?}");
        }
    }

    #[test]
    fn the_proxy_header_wins() {
        let de = Country::parse("DE");
        let cases = [
            ("FR", de.as_ref(), "FR"),
            ("", de.as_ref(), "DE"),
            ("FR", None, "FR"),
            ("", None, ""),
        ];
        for (header, looked_up, expected) in cases {
            assert_eq!(pick_country(header, looked_up), expected, "{header:?}");
        }
    }

    #[test]
    fn a_missing_file_names_the_key() {
        let e = GeoDb::open(Path::new("/nonexistent/x.mmdb"))
            .err()
            .expect("no such file");
        assert!(e.to_string().starts_with("enrich.geoip_path: "), "{e}");
    }

    #[test]
    fn a_file_that_is_no_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.mmdb");
        std::fs::write(&path, b"not a database").unwrap();
        assert!(GeoDb::open(&path).is_err());
    }
}
