//! One face over both stores for the statements they share.
//!
//! The statements of the readers and of the eval, shadow and sample stores are written
//! once, in the SQL that SQLite and PostgreSQL both read: `$1`-style parameters (SQLite
//! numbers them by first appearance, so they appear in order), `CAST(… AS BIGINT)` on
//! every sum and on parameters tested for NULL, `CASE` instead of summing booleans,
//! `NULLS FIRST` where order matters. [`Db`] runs them on either store; [`SqlRow`] reads
//! a row of either by column position.

use postgres::types::{IsNull, ToSql as PgToSql, Type};
use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::pg::PgConn;
use crate::{LedgerError, Result};

/// A statement parameter: an integer, a real or a text, each of which may be NULL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Param<'a> {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<&'a str>),
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(Some(v))
    }
}
impl From<Option<i64>> for Param<'_> {
    fn from(v: Option<i64>) -> Self {
        Param::Int(v)
    }
}
impl From<bool> for Param<'_> {
    fn from(v: bool) -> Self {
        Param::Int(Some(i64::from(v)))
    }
}
impl From<Option<bool>> for Param<'_> {
    fn from(v: Option<bool>) -> Self {
        Param::Int(v.map(i64::from))
    }
}
impl From<u16> for Param<'_> {
    fn from(v: u16) -> Self {
        Param::Int(Some(i64::from(v)))
    }
}
impl From<Option<u32>> for Param<'_> {
    fn from(v: Option<u32>) -> Self {
        Param::Int(v.map(i64::from))
    }
}
impl From<Option<f64>> for Param<'_> {
    fn from(v: Option<f64>) -> Self {
        Param::Real(v)
    }
}
impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(Some(v))
    }
}
impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(Some(v))
    }
}
impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Param::Text(v)
    }
}
impl<'a> From<&'a Option<String>> for Param<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Param::Text(v.as_deref())
    }
}

/// `[Param; N]` from a list of values.
macro_rules! args {
    ($($v:expr),* $(,)?) => { [$($crate::sql::Param::from($v)),*] };
}
pub(crate) use args;

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Param::Int(Some(v)) => ToSqlOutput::from(v),
            Param::Real(Some(v)) => ToSqlOutput::from(v),
            Param::Text(Some(v)) => ToSqlOutput::from(v),
            Param::Int(None) | Param::Real(None) | Param::Text(None) => {
                ToSqlOutput::from(rusqlite::types::Null)
            }
        })
    }
}

/// An owned [`Param`], for statements sent to the PostgreSQL thread.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OwnedParam {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
}

impl From<&Param<'_>> for OwnedParam {
    fn from(p: &Param<'_>) -> Self {
        match *p {
            Param::Int(v) => OwnedParam::Int(v),
            Param::Real(v) => OwnedParam::Real(v),
            Param::Text(v) => OwnedParam::Text(v.map(str::to_owned)),
        }
    }
}

impl PgToSql for OwnedParam {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            OwnedParam::Int(v) if *ty == Type::INT4 => v
                .map(i32::try_from)
                .transpose()
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Sync + Send>)?
                .to_sql(ty, out),
            OwnedParam::Int(v) => v.to_sql(ty, out),
            OwnedParam::Real(v) => v.to_sql(ty, out),
            OwnedParam::Text(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        // Which variant goes with which type is checked per value in `to_sql_checked`.
        matches!(
            *ty,
            Type::INT8 | Type::INT4 | Type::FLOAT8 | Type::TEXT | Type::VARCHAR
        )
    }

    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let fits = match self {
            OwnedParam::Int(_) => matches!(*ty, Type::INT8 | Type::INT4),
            OwnedParam::Real(_) => *ty == Type::FLOAT8,
            OwnedParam::Text(_) => matches!(*ty, Type::TEXT | Type::VARCHAR),
        };
        if !fits {
            return Err(format!("a {self:?} parameter cannot be sent as {ty}").into());
        }
        self.to_sql(ty, out)
    }
}

/// A result row of either store, read by column position.
pub(crate) trait SqlRow {
    fn int(&self, i: usize) -> Result<Option<i64>>;
    fn real(&self, i: usize) -> Result<Option<f64>>;
    fn text(&self, i: usize) -> Result<Option<&str>>;
}

fn decode(column: usize, detail: impl Into<String>) -> LedgerError {
    LedgerError::Decode {
        column,
        detail: detail.into(),
    }
}

/// Reading helpers that turn NULLs and ranges into errors naming the column.
pub(crate) trait SqlRowExt: SqlRow {
    fn req_int(&self, i: usize) -> Result<i64> {
        self.int(i)?
            .ok_or_else(|| decode(i, "NULL where a number is required"))
    }
    fn count(&self, i: usize) -> Result<u64> {
        let v = self.req_int(i)?;
        u64::try_from(v).map_err(|_| decode(i, format!("{v} where a count is required")))
    }
    fn flag(&self, i: usize) -> Result<bool> {
        Ok(self.req_int(i)? != 0)
    }
    fn opt_flag(&self, i: usize) -> Result<Option<bool>> {
        Ok(self.int(i)?.map(|v| v != 0))
    }
    fn req_text(&self, i: usize) -> Result<&str> {
        self.text(i)?
            .ok_or_else(|| decode(i, "NULL where a text is required"))
    }
    fn string(&self, i: usize) -> Result<String> {
        self.req_text(i).map(str::to_owned)
    }
    fn opt_string(&self, i: usize) -> Result<Option<String>> {
        Ok(self.text(i)?.map(str::to_owned))
    }
}

impl<R: SqlRow + ?Sized> SqlRowExt for R {}

impl SqlRow for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> Result<Option<i64>> {
        match self.get_ref(i)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(v) => Ok(Some(v)),
            other => Err(decode(
                i,
                format!("{:?} where an integer is required", other.data_type()),
            )),
        }
    }
    fn real(&self, i: usize) -> Result<Option<f64>> {
        match self.get_ref(i)? {
            ValueRef::Null => Ok(None),
            ValueRef::Real(v) => Ok(Some(v)),
            // SQLite stores a whole REAL as an integer in some paths; it reads back exactly.
            #[allow(clippy::cast_precision_loss)]
            ValueRef::Integer(v) => Ok(Some(v as f64)),
            other => Err(decode(
                i,
                format!("{:?} where a real is required", other.data_type()),
            )),
        }
    }
    fn text(&self, i: usize) -> Result<Option<&str>> {
        match self.get_ref(i)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(v) => std::str::from_utf8(v)
                .map(Some)
                .map_err(|e| decode(i, format!("text that is not UTF-8: {e}"))),
            other => Err(decode(
                i,
                format!("{:?} where a text is required", other.data_type()),
            )),
        }
    }
}

impl SqlRow for postgres::Row {
    fn int(&self, i: usize) -> Result<Option<i64>> {
        let ty = self
            .columns()
            .get(i)
            .ok_or_else(|| decode(i, "no such column"))?
            .type_()
            .clone();
        Ok(match ty {
            Type::INT8 => self.try_get::<_, Option<i64>>(i)?,
            Type::INT4 => self.try_get::<_, Option<i32>>(i)?.map(i64::from),
            Type::INT2 => self.try_get::<_, Option<i16>>(i)?.map(i64::from),
            other => return Err(decode(i, format!("{other} where an integer is required"))),
        })
    }
    fn real(&self, i: usize) -> Result<Option<f64>> {
        Ok(self.try_get::<_, Option<f64>>(i)?)
    }
    fn text(&self, i: usize) -> Result<Option<&str>> {
        Ok(self.try_get::<_, Option<&str>>(i)?)
    }
}

/// A connection to either store.
pub(crate) enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(PgConn),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Db::Sqlite(_) => "Db::Sqlite",
            Db::Postgres(_) => "Db::Postgres",
        })
    }
}

/// SQLite numbers `$N` parameters by first appearance, not by `N`: a statement whose
/// `$2` comes before its `$1` would bind the wrong values. Checked in debug builds.
fn check_order(stmt: &rusqlite::Statement<'_>) {
    if cfg!(debug_assertions) {
        for i in 1..=stmt.parameter_count() {
            let expected = format!("${i}");
            debug_assert_eq!(
                stmt.parameter_name(i),
                Some(expected.as_str()),
                "parameters must first appear in order $1, $2, …"
            );
        }
    }
}

impl Db {
    /// Runs a query, calling `each` for every row as it arrives; returns the rows seen.
    pub(crate) fn query(
        &self,
        sql: &str,
        params: &[Param<'_>],
        each: &mut dyn FnMut(&dyn SqlRow) -> Result<()>,
    ) -> Result<u64> {
        match self {
            Db::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                check_order(&stmt);
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                let mut seen = 0;
                while let Some(row) = rows.next()? {
                    each(row)?;
                    seen += 1;
                }
                Ok(seen)
            }
            Db::Postgres(pg) => pg.query(sql, params, each),
        }
    }

    /// Every row of a query, each turned into a `T` by `map`.
    pub(crate) fn collect<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        map: impl Fn(&dyn SqlRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.query(sql, params, &mut |row| {
            out.push(map(row)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row of a query, if any.
    pub(crate) fn first<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        map: impl Fn(&dyn SqlRow) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut out = None;
        self.query(sql, params, &mut |row| {
            if out.is_none() {
                out = Some(map(row)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Runs a statement; returns the rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        match self {
            Db::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                check_order(&stmt);
                Ok(stmt.execute(rusqlite::params_from_iter(params.iter()))? as u64)
            }
            Db::Postgres(pg) => {
                pg.execute_many(sql, vec![params.iter().map(OwnedParam::from).collect()])
            }
        }
    }

    /// Runs one statement once per parameter list, all in one transaction.
    pub(crate) fn execute_many(&self, sql: &str, rows: &[Vec<Param<'_>>]) -> Result<u64> {
        match self {
            Db::Sqlite(conn) => {
                let tx = rusqlite::Transaction::new_unchecked(
                    conn,
                    rusqlite::TransactionBehavior::Immediate,
                )?;
                let mut changed = 0;
                {
                    let mut stmt = tx.prepare_cached(sql)?;
                    check_order(&stmt);
                    for params in rows {
                        changed += stmt.execute(rusqlite::params_from_iter(params.iter()))? as u64;
                    }
                }
                tx.commit()?;
                Ok(changed)
            }
            Db::Postgres(pg) => pg.execute_many(
                sql,
                rows.iter()
                    .map(|params| params.iter().map(OwnedParam::from).collect())
                    .collect(),
            ),
        }
    }
}
