//! Per-engine database codecs for the domain types (the `sqlx` feature).
//!
//! | type | PostgreSQL | SQLite |
//! |---|---|---|
//! | `Money` | NUMERIC(12,2) via `Decimal` | INTEGER cents |
//! | `Confidence` | NUMERIC(3,2) via `Decimal` | INTEGER hundredths |
//! | `Timestamp` | TIMESTAMP (UTC, no zone) | TEXT, fixed-width RFC 3339 |
//! | enums | VARCHAR with CHECK | TEXT with CHECK |
//!
//! sqlx refuses `Decimal` on SQLite on purpose (it would be stored as a float); integer minor units keep
//! SQLite's arithmetic, ordering and `SUM` exact.

use rust_decimal::Decimal;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};

use crate::{Confidence, Money, Timestamp};

// ---- Money ----

impl Type<Postgres> for Money {
    fn type_info() -> PgTypeInfo {
        <Decimal as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <Decimal as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for Money {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Decimal as Encode<Postgres>>::encode_by_ref(&self.as_decimal(), buf)
    }
}

impl<'r> Decode<'r, Postgres> for Money {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let d = <Decimal as Decode<Postgres>>::decode(value)?;
        Ok(Money::from_decimal(d)?)
    }
}

impl Type<Sqlite> for Money {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for Money {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<Sqlite>>::encode(self.cents(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Money {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Money::from_cents(<i64 as Decode<Sqlite>>::decode(value)?))
    }
}

// ---- Confidence ----

impl Type<Postgres> for Confidence {
    fn type_info() -> PgTypeInfo {
        <Decimal as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <Decimal as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for Confidence {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Decimal as Encode<Postgres>>::encode_by_ref(&self.as_decimal(), buf)
    }
}

impl<'r> Decode<'r, Postgres> for Confidence {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Confidence::from_decimal(<Decimal as Decode<Postgres>>::decode(value)?)?)
    }
}

impl Type<Sqlite> for Confidence {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for Confidence {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<Sqlite>>::encode(i64::from(self.hundredths()), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Confidence {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let h = <i64 as Decode<Sqlite>>::decode(value)?;
        let h = u8::try_from(h).map_err(|_| "confidence out of range")?;
        Ok(Confidence::from_hundredths(h)?)
    }
}

// ---- Timestamp ----

impl Type<Postgres> for Timestamp {
    fn type_info() -> PgTypeInfo {
        <chrono::NaiveDateTime as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <chrono::NaiveDateTime as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for Timestamp {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <chrono::NaiveDateTime as Encode<Postgres>>::encode_by_ref(&self.naive_utc(), buf)
    }
}

impl<'r> Decode<'r, Postgres> for Timestamp {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Timestamp::from_naive_utc(<chrono::NaiveDateTime as Decode<Postgres>>::decode(value)?))
    }
}

impl Type<Sqlite> for Timestamp {
    fn type_info() -> SqliteTypeInfo {
        <str as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <chrono::NaiveDateTime as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for Timestamp {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.to_sqlite_text(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Timestamp {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let s = <&str as Decode<Sqlite>>::decode(value)?;
        Timestamp::parse_text(s).ok_or_else(|| format!("unreadable timestamp '{s}'").into())
    }
}

// ---- string enums ----

/// Stores a string enum (anything with `as_str` and `FromStr`) as text on every engine.
macro_rules! text_codec {
    ($t:ty) => {
        impl<DB: ::sqlx::Database> ::sqlx::Type<DB> for $t
        where
            str: ::sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as ::sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as ::sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: ::sqlx::Database> ::sqlx::Encode<'q, DB> for $t
        where
            &'static str: ::sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as ::sqlx::Database>::ArgumentBuffer,
            ) -> Result<::sqlx::encode::IsNull, ::sqlx::error::BoxDynError> {
                <&'static str as ::sqlx::Encode<'q, DB>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl<'r, DB: ::sqlx::Database> ::sqlx::Decode<'r, DB> for $t
        where
            &'r str: ::sqlx::Decode<'r, DB>,
        {
            fn decode(value: <DB as ::sqlx::Database>::ValueRef<'r>) -> Result<Self, ::sqlx::error::BoxDynError> {
                let s = <&'r str as ::sqlx::Decode<'r, DB>>::decode(value)?;
                Ok(s.parse::<$t>()?)
            }
        }
    };
}
pub(crate) use text_codec;
