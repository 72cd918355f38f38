//! The closed sets of values the seed schema constrains with CHECKs.
//!
//! Each enum is stored and sent as the seed's upper-case string (`INCOME`, `FILE_IMPORT`, ...), so the
//! database CHECK, the JSON and the Rust type all agree on one spelling.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// Declares a string-backed enum with `as_str`, `FromStr`, `Display`, serde and OpenAPI support.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[doc = $text] #[serde(rename = $text)] #[schema(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The seed's spelling of this value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseError::new(format!(
                        "'{}' is not one of {}", s, [$($text),+].join(", ")
                    ))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        #[cfg(feature = "sqlx")]
        $crate::codec::text_codec!($name);
    };
}

string_enum! {
    /// Whether money came in or went out. Amounts are stored positive; the type carries the sign.
    TransactionType { Income => "INCOME", Expense => "EXPENSE" }
}

string_enum! {
    /// Where a transaction came from.
    Source { Manual => "MANUAL", Api => "API", FileImport => "FILE_IMPORT" }
}

string_enum! {
    /// Lifecycle of a financial goal.
    GoalStatus { Active => "ACTIVE", Achieved => "ACHIEVED", Archived => "ARCHIVED" }
}

string_enum! {
    /// The two kinds of model the registry holds.
    ModelType { Categorization => "CATEGORIZATION", Prediction => "PREDICTION" }
}

string_enum! {
    /// Health of a bank connection.
    ConnectionStatus { Active => "ACTIVE", Expired => "EXPIRED", Error => "ERROR" }
}

string_enum! {
    /// The bank aggregator a connection goes through (column `connections.provider`).
    BankProvider { Plaid => "PLAID", Simplefin => "SIMPLEFIN", Gocardless => "GOCARDLESS" }
}

string_enum! {
    /// What a personal access token may do: `read` tokens cannot change anything.
    TokenScope { Read => "read", ReadWrite => "read-write" }
}

string_enum! {
    /// Who decided a transaction's category. A person's decision (`USER`) is never overwritten by a
    /// model; `RULE` and `MEMORY` are the person's rules and remembered corrections; `MODEL` a
    /// categorization model (its confidence is in `confidence_score`); `NONE` nobody yet.
    /// `PROVIDER` the bank aggregator's own category (Plaid's), with its confidence.
    CategorySource { User => "USER", Rule => "RULE", Memory => "MEMORY", Model => "MODEL", Provider => "PROVIDER", None => "NONE" }
}

string_enum! {
    /// How a categorization rule matches a description (case-insensitively).
    RuleMatch { Contains => "CONTAINS", Exact => "EXACT", Regex => "REGEX" }
}

string_enum! {
    /// State of a background job.
    JobStatus { Queued => "QUEUED", Running => "RUNNING", Done => "DONE", Failed => "FAILED" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_through_its_string() {
        for t in TransactionType::ALL {
            assert_eq!(t.as_str().parse::<TransactionType>().unwrap(), *t);
        }
        for s in Source::ALL {
            assert_eq!(s.as_str().parse::<Source>().unwrap(), *s);
        }
        assert_eq!(serde_json::to_string(&Source::FileImport).unwrap(), "\"FILE_IMPORT\"");
    }

    #[test]
    fn unknown_values_name_the_allowed_set() {
        let err = "income".parse::<TransactionType>().unwrap_err();
        assert_eq!(err.to_string(), "'income' is not one of INCOME, EXPENSE");
    }
}
