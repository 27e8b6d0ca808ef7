//! Identifiers that end up in file names and key-wrapping AADs.
//!
//! A zone or dataset id is parsed once, at the edge, into [`ZoneId`] or
//! [`DatasetId`]; the rest of the vault only sees the typed value. The
//! grammar is `[a-z0-9][a-z0-9_-]{0,63}`: no dots, no slashes, no uppercase,
//! so an id can never name a path outside its directory (`../x`, `a/b`) and
//! two ids that differ only in case cannot collide on a case-insensitive
//! file system.

use std::fmt;
use std::str::FromStr;

/// Longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id is the empty string.
    #[error("{kind} id is empty")]
    Empty {
        /// `zone` or `dataset`.
        kind: &'static str,
    },
    /// The id is longer than [`MAX_ID_LEN`] bytes.
    #[error("{kind} id is {len} bytes long; at most {MAX_ID_LEN} are allowed")]
    TooLong {
        /// `zone` or `dataset`.
        kind: &'static str,
        /// Length of the rejected value in bytes.
        len: usize,
    },
    /// The id contains a character outside `[a-z0-9_-]`, or does not start
    /// with `[a-z0-9]`.
    #[error("{kind} id {value:?} must match [a-z0-9][a-z0-9_-]{{0,63}}")]
    Invalid {
        /// `zone` or `dataset`.
        kind: &'static str,
        /// The rejected value (at most [`MAX_ID_LEN`] bytes of it, so the
        /// error stays small even for hostile input).
        value: String,
    },
}

fn validate(kind: &'static str, s: &str) -> Result<(), IdError> {
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else {
        return Err(IdError::Empty { kind });
    };
    if bytes.len() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            kind,
            len: bytes.len(),
        });
    }
    let lead_ok = first.is_ascii_lowercase() || first.is_ascii_digit();
    let rest_ok = bytes[1..]
        .iter()
        .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if lead_ok && rest_ok {
        Ok(())
    } else {
        Err(IdError::Invalid {
            kind,
            value: s.to_owned(),
        })
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The id as text; always matches `[a-z0-9][a-z0-9_-]{0,63}`.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                validate($kind, s)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                validate($kind, &s)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// The id of a data zone; safe to use in a file name and in an AAD.
    ZoneId,
    "zone"
);
id_type!(
    /// The id of a dataset; names its file `datasets/<id>.db`.
    DatasetId,
    "dataset"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_well_formed_ids() {
        for s in ["a", "0", "zone-1", "ds_2024-q1", &"a".repeat(MAX_ID_LEN)] {
            assert_eq!(
                s.parse::<DatasetId>().map(|d| d.to_string()),
                Ok(s.to_owned())
            );
            assert!(s.parse::<ZoneId>().is_ok(), "{s}");
        }
    }

    #[test]
    fn rejects_traversal_separators_empty_and_uppercase() {
        for s in [
            "../x", "a/b", "", "A", "Zone", "a.b", ".", "..", "-a", "_a", "a\\b", "a b", "a\0",
            "é", "/abs",
        ] {
            assert!(s.parse::<DatasetId>().is_err(), "accepted {s:?}");
            assert!(s.parse::<ZoneId>().is_err(), "accepted {s:?}");
        }
        assert_eq!("".parse::<ZoneId>(), Err(IdError::Empty { kind: "zone" }));
        assert_eq!(
            "a".repeat(MAX_ID_LEN + 1).parse::<DatasetId>(),
            Err(IdError::TooLong {
                kind: "dataset",
                len: MAX_ID_LEN + 1
            })
        );
    }

    #[test]
    fn deserialization_validates() {
        assert!(serde_json::from_str::<ZoneId>("\"../etc\"").is_err());
        let id: ZoneId = serde_json::from_str("\"z1\"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.as_str(), "z1");
    }
}
