//! The data layer's error type.

use sqlx::error::ErrorKind;

/// `Result` with [`DbError`].
pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// What went wrong talking to the database, sorted into what callers can act on.
///
/// Constraint violations carry the constraint's name (on SQLite, the name SQLite reports: the CHECK's
/// name, or `table.column` for UNIQUE and NOT NULL), so the layer above can turn a known one into a
/// 409 or 422 in one place.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The row does not exist, or belongs to another user (the two are deliberately indistinguishable).
    #[error("record not found")]
    NotFound,
    /// A UNIQUE constraint or index was violated.
    #[error("unique constraint violated: {constraint}")]
    UniqueViolation {
        /// Constraint or index name (or `table.column` on SQLite).
        constraint: String,
    },
    /// A CHECK constraint was violated.
    #[error("check constraint violated: {constraint}")]
    CheckViolation {
        /// Constraint name.
        constraint: String,
    },
    /// A foreign key was violated (a referenced row does not exist).
    #[error("foreign key violated: {constraint}")]
    ForeignKeyViolation {
        /// Constraint name, when the engine reports it.
        constraint: String,
    },
    /// A NOT NULL column got NULL.
    #[error("not-null constraint violated: {constraint}")]
    NotNullViolation {
        /// Column or constraint, when the engine reports it.
        constraint: String,
    },
    /// The database URL or options were unusable.
    #[error("database configuration: {0}")]
    Config(String),
    /// An input the data layer was given cannot be used (a backup of another schema version, say).
    #[error("{0}")]
    Invalid(String),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database cannot be reached, or every pooled connection stayed busy past the acquire timeout.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Any other driver error (connection lost, pool timeout, decoding...).
    #[error("database error: {0}")]
    Sqlx(sqlx::Error),
}

impl DbError {
    /// True for a UNIQUE violation.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, DbError::UniqueViolation { .. })
    }
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => DbError::NotFound,
            sqlx::Error::Database(ref db) => {
                let constraint =
                    db.constraint().map(str::to_owned).unwrap_or_else(|| sqlite_constraint_name(db.message()));
                match db.kind() {
                    ErrorKind::UniqueViolation => DbError::UniqueViolation { constraint },
                    ErrorKind::CheckViolation => DbError::CheckViolation { constraint },
                    ErrorKind::ForeignKeyViolation => DbError::ForeignKeyViolation { constraint },
                    ErrorKind::NotNullViolation => DbError::NotNullViolation { constraint },
                    _ => DbError::Sqlx(e),
                }
            }
            sqlx::Error::PoolTimedOut => DbError::Unavailable("timed out waiting for a pooled connection".to_owned()),
            sqlx::Error::PoolClosed => DbError::Unavailable("the connection pool is closed".to_owned()),
            sqlx::Error::Io(io) => DbError::Unavailable(format!("connection failed: {io}")),
            other => DbError::Sqlx(other),
        }
    }
}

/// SQLite reports constraints only in the message: `CHECK constraint failed: ck_transactions_amount`,
/// `UNIQUE constraint failed: users.email`.
fn sqlite_constraint_name(message: &str) -> String {
    message.split_once("constraint failed: ").map(|(_, name)| name.trim().to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_messages_yield_the_constraint_name() {
        assert_eq!(sqlite_constraint_name("CHECK constraint failed: ck_transactions_amount"), "ck_transactions_amount");
        assert_eq!(sqlite_constraint_name("UNIQUE constraint failed: users.email"), "users.email");
        assert_eq!(sqlite_constraint_name("FOREIGN KEY constraint failed"), "");
    }
}
