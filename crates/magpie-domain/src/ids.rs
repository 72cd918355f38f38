//! Typed ids: a `UserId` cannot be passed where a `TransactionId` is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        #[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh id. UUIDv7 is time-ordered, which keeps B-tree inserts local.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

id_type!(
    /// Id of a user.
    UserId
);
id_type!(
    /// Id of a transaction.
    TransactionId
);
id_type!(
    /// Id of a budget.
    BudgetId
);
id_type!(
    /// Id of a financial goal.
    GoalId
);
id_type!(
    /// Id of an ML model in the registry.
    ModelId
);
id_type!(
    /// Id of a bank connection.
    ConnectionId
);
id_type!(
    /// Id of a sign-in session (a refresh-token family).
    SessionId
);
id_type!(
    /// Id of a personal access token.
    TokenId
);
id_type!(
    /// Id of an import batch.
    ImportBatchId
);
id_type!(
    /// Id of a categorization rule.
    RuleId
);
id_type!(
    /// Id of a background job.
    JobId
);
