//! How a table is declared: one Rust struct per row, its Arrow schema, a builder
//! (rows → `RecordBatch`) and a reader (`RecordBatch` → rows), all generated from one
//! column list by [`define_table!`] so the three can never drift apart. Column docs and
//! units come from the same list and end up in the Arrow field metadata (and so in every
//! Parquet file) and in `FORMAT.md` (checked by a test).

use std::sync::Arc;

use arrow_array::{builder::*, Array, RecordBatch};
use arrow_schema::{DataType, SchemaRef, TimeUnit};

use crate::error::FormatError;

/// A string shared cheaply between rows (addresses, process names repeat a lot).
pub type Str = Arc<str>;

/// A wall-clock instant, nanoseconds since the Unix epoch, UTC. Stored as
/// `Timestamp(Nanosecond, "UTC")`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcNanos(pub i64);

/// Static description of one column, used for docs and the `FORMAT.md` check.
#[derive(Debug, Clone, Copy)]
pub struct ColumnInfo {
    pub name: &'static str,
    /// Type as written in FORMAT.md (`int64`, `string`, `timestamp[ns, UTC]`, …).
    pub type_name: &'static str,
    pub nullable: bool,
    /// Unit (`ns`, `us`, `bytes`, `segments`, …) or empty.
    pub unit: &'static str,
    pub doc: &'static str,
}

/// A value type that can be stored in a column.
pub trait Scalar: Sized {
    type Builder: ArrayBuilder;
    const TYPE_NAME: &'static str;
    fn data_type() -> DataType;
    fn new_builder(capacity: usize) -> Self::Builder;
    fn append(b: &mut Self::Builder, v: &Self);
    fn append_null(b: &mut Self::Builder);
    /// Reads a whole column, `None` where null. `Err` on a type mismatch.
    fn read(array: &dyn Array) -> Result<Vec<Option<Self>>, String>;
}

/// A column of a row struct: a [`Scalar`] (not null) or `Option<Scalar>` (nullable).
pub trait Column: Sized {
    type S: Scalar;
    const NULLABLE: bool;
    fn append(b: &mut <Self::S as Scalar>::Builder, v: &Self);
    fn from_values(v: Vec<Option<Self::S>>) -> Result<Vec<Self>, String>;
}

macro_rules! scalar {
    ($t:ty, $builder:ty, $arr:ty, $name:literal, $dt:expr, |$b:ident, $v:ident| $append:expr, |$a:ident, $i:ident| $get:expr) => {
        scalar!($t, $builder, $arr, $name, $dt, |c| <$builder>::with_capacity(c), |$b, $v| $append, |$a, $i| $get);
    };
    ($t:ty, $builder:ty, $arr:ty, $name:literal, $dt:expr, |$c:ident| $new:expr, |$b:ident, $v:ident| $append:expr, |$a:ident, $i:ident| $get:expr) => {
        impl Scalar for $t {
            type Builder = $builder;
            const TYPE_NAME: &'static str = $name;
            fn data_type() -> DataType {
                $dt
            }
            fn new_builder($c: usize) -> Self::Builder {
                $new
            }
            #[inline]
            fn append($b: &mut Self::Builder, $v: &Self) {
                $append
            }
            #[inline]
            fn append_null(b: &mut Self::Builder) {
                b.append_null()
            }
            fn read(array: &dyn Array) -> Result<Vec<Option<Self>>, String> {
                let $a = array.as_any().downcast_ref::<$arr>().ok_or_else(|| {
                    format!("expected {}, found {}", $name, array.data_type())
                })?;
                Ok((0..$a.len())
                    .map(|$i| if $a.is_null($i) { None } else { Some($get) })
                    .collect())
            }
        }
        impl Column for $t {
            type S = $t;
            const NULLABLE: bool = false;
            #[inline]
            fn append(b: &mut <$t as Scalar>::Builder, v: &Self) {
                <$t as Scalar>::append(b, v)
            }
            fn from_values(v: Vec<Option<$t>>) -> Result<Vec<Self>, String> {
                v.into_iter().map(|x| x.ok_or_else(|| "null in a non-nullable column".to_string())).collect()
            }
        }
        impl Column for Option<$t> {
            type S = $t;
            const NULLABLE: bool = true;
            #[inline]
            fn append(b: &mut <$t as Scalar>::Builder, v: &Self) {
                match v {
                    Some(v) => <$t as Scalar>::append(b, v),
                    None => <$t as Scalar>::append_null(b),
                }
            }
            fn from_values(v: Vec<Option<$t>>) -> Result<Vec<Self>, String> {
                Ok(v)
            }
        }
    };
}

use arrow_array::{
    BooleanArray, Float64Array, Int32Array, Int64Array, StringArray, TimestampNanosecondArray,
    UInt16Array, UInt32Array, UInt8Array,
};

scalar!(bool, BooleanBuilder, BooleanArray, "bool", DataType::Boolean, |b, v| b.append_value(*v), |a, i| a.value(i));
scalar!(u8, UInt8Builder, UInt8Array, "uint8", DataType::UInt8, |b, v| b.append_value(*v), |a, i| a.value(i));
scalar!(u16, UInt16Builder, UInt16Array, "uint16", DataType::UInt16, |b, v| b.append_value(*v), |a, i| a.value(i));
scalar!(u32, UInt32Builder, UInt32Array, "uint32", DataType::UInt32, |b, v| b.append_value(*v), |a, i| a.value(i));
scalar!(i32, Int32Builder, Int32Array, "int32", DataType::Int32, |b, v| b.append_value(*v), |a, i| a.value(i));
scalar!(i64, Int64Builder, Int64Array, "int64", DataType::Int64, |b, v| b.append_value(*v), |a, i| a.value(i));
scalar!(f64, Float64Builder, Float64Array, "float64", DataType::Float64, |b, v| b.append_value(*v), |a, i| a.value(i));
scalar!(Str, StringBuilder, StringArray, "string", DataType::Utf8, |c| StringBuilder::with_capacity(c, c * 16), |b, v| b.append_value(v), |a, i| Str::from(a.value(i)));
scalar!(
    UtcNanos,
    TimestampNanosecondBuilder,
    TimestampNanosecondArray,
    "timestamp[ns, UTC]",
    timestamp_type(),
    |c| TimestampNanosecondBuilder::with_capacity(c).with_timezone("UTC"),
    |b, v| b.append_value(v.0),
    |a, i| UtcNanos(a.value(i))
);

/// `Timestamp(Nanosecond, "UTC")`, the type of every time column.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some(Arc::from("UTC")))
}

/// A row type of a recording table.
pub trait Table: Sized + Clone + std::fmt::Debug + PartialEq + Send + 'static {
    /// Directory / table name (`"retransmits"`).
    const NAME: &'static str;
    /// One-paragraph description for FORMAT.md.
    const DOC: &'static str;
    /// Name of the column that orders rows (`time`, `open_time`, …).
    const TIME_COLUMN: &'static str;
    type Builder: TableBuilder<Row = Self>;
    fn columns() -> &'static [ColumnInfo];
    fn schema() -> SchemaRef;
    /// The row's position in time (ns since the epoch) used to sort rows in a file.
    fn sort_time(&self) -> i64;
    fn builder(capacity: usize) -> Self::Builder;
    /// Reads rows back; fails with the name of the first column that does not fit.
    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, FormatError>;
}

/// Appends rows of one table and turns them into a `RecordBatch`.
pub trait TableBuilder: Send {
    type Row: Table;
    fn push(&mut self, row: &Self::Row);
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Takes the rows appended so far; the builder is empty afterwards.
    fn finish(&mut self) -> RecordBatch;
}

/// Collects rows into batches of at most `chunk` rows: the allocations stay small
/// enough for the allocator to reuse from batch to batch, where one huge batch per
/// second would take fresh (zeroed) pages from the kernel every time.
pub struct Batcher<T: Table> {
    builder: T::Builder,
    done: Vec<RecordBatch>,
    chunk: usize,
}

impl<T: Table> Batcher<T> {
    pub fn new(chunk: usize) -> Self {
        Batcher { builder: T::builder(0), done: Vec::new(), chunk: chunk.max(1) }
    }

    #[inline]
    pub fn push(&mut self, row: &T) {
        self.builder.push(row);
        if self.builder.len() >= self.chunk {
            self.done.push(self.builder.finish());
        }
    }

    /// Rows pushed and not yet taken.
    pub fn len(&self) -> usize {
        self.done.iter().map(|b| b.num_rows()).sum::<usize>() + self.builder.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows pushed so far, as batches in push order.
    pub fn finish(&mut self) -> Vec<RecordBatch> {
        if !self.builder.is_empty() {
            self.done.push(self.builder.finish());
        }
        std::mem::take(&mut self.done)
    }
}

/// Declares a table. See the table modules (`retransmits.rs`, …) for uses.
#[macro_export]
macro_rules! define_table {
    (
        $(#[doc = $tdoc:literal])*
        pub struct $Row:ident in $table:literal ordered by $timecol:ident {
            $(
                $(#[doc = $cdoc:literal])*
                $col:ident : $ty:ty $(=> $unit:literal)?,
            )*
        }
    ) => {
        $(#[doc = $tdoc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $Row {
            $( $(#[doc = $cdoc])* pub $col: $ty, )*
        }

        $crate::paste_builder!($Row, $($col : $ty),*);

        impl $crate::table::Table for $Row {
            const NAME: &'static str = $table;
            const DOC: &'static str = concat!($($tdoc, "\n"),*);
            const TIME_COLUMN: &'static str = stringify!($timecol);
            type Builder = RowBuilder;

            fn columns() -> &'static [$crate::table::ColumnInfo] {
                use $crate::table::{Column, Scalar};
                const COLS: &[$crate::table::ColumnInfo] = &[
                    $( $crate::table::ColumnInfo {
                        name: stringify!($col),
                        type_name: <<$ty as Column>::S as Scalar>::TYPE_NAME,
                        nullable: <$ty as Column>::NULLABLE,
                        unit: $crate::define_table!(@unit $($unit)?),
                        doc: concat!($($cdoc, "\n"),*),
                    }, )*
                ];
                COLS
            }

            fn schema() -> ::arrow_schema::SchemaRef {
                use $crate::table::{Column, Scalar};
                static SCHEMA: ::std::sync::OnceLock<::arrow_schema::SchemaRef> = ::std::sync::OnceLock::new();
                SCHEMA.get_or_init(|| {
                    let fields: Vec<::arrow_schema::Field> = vec![
                        $( $crate::table::field(
                            stringify!($col),
                            <<$ty as Column>::S as Scalar>::data_type(),
                            <$ty as Column>::NULLABLE,
                            $crate::define_table!(@unit $($unit)?),
                            concat!($($cdoc, "\n"),*),
                        ), )*
                    ];
                    ::std::sync::Arc::new(::arrow_schema::Schema::new(fields))
                }).clone()
            }

            fn sort_time(&self) -> i64 {
                $crate::table::SortTime::sort_time(&self.$timecol)
            }

            fn builder(capacity: usize) -> RowBuilder {
                RowBuilder::with_capacity(capacity)
            }

            fn from_batch(batch: &::arrow_array::RecordBatch) -> Result<Vec<Self>, $crate::error::FormatError> {
                use $crate::table::{Column, Scalar};
                let n = batch.num_rows();
                $(
                    let $col: Vec<$ty> = {
                        // A nullable column may be missing: added in a later minor
                        // version, it reads as null from files of an earlier one.
                        let values = match batch.column_by_name(stringify!($col)) {
                            Some(array) => <<$ty as Column>::S as Scalar>::read(array.as_ref()).map_err(|e| {
                                $crate::error::FormatError::Schema(format!(
                                    "table {}: column {}: {}", $table, stringify!($col), e))
                            })?,
                            None if <$ty as Column>::NULLABLE => vec![None; n],
                            None => return Err($crate::error::FormatError::Schema(format!(
                                "table {}: column {} is missing", $table, stringify!($col)))),
                        };
                        <$ty as Column>::from_values(values).map_err(|e| {
                            $crate::error::FormatError::Schema(format!(
                                "table {}: column {}: {}", $table, stringify!($col), e))
                        })?
                    };
                    let mut $col = $col.into_iter();
                )*
                let mut rows = Vec::with_capacity(n);
                for _ in 0..n {
                    rows.push($Row { $( $col: $col.next().expect("column length equals batch length"), )* });
                }
                Ok(rows)
            }
        }
    };
    (@unit $unit:literal) => { $unit };
    (@unit) => { "" };
}

/// Generates the `RowBuilder` of a table module (one Arrow builder per column).
#[doc(hidden)]
#[macro_export]
macro_rules! paste_builder {
    ($Row:ident, $($col:ident : $ty:ty),*) => {
        /// Column builders for this table; see [`crate::table::TableBuilder`].
        pub struct RowBuilder {
            len: usize,
            $( $col: <<$ty as $crate::table::Column>::S as $crate::table::Scalar>::Builder, )*
        }

        impl RowBuilder {
            pub fn with_capacity(capacity: usize) -> Self {
                use $crate::table::Scalar;
                RowBuilder { len: 0, $( $col: <<$ty as $crate::table::Column>::S>::new_builder(capacity), )* }
            }
        }

        impl $crate::table::TableBuilder for RowBuilder {
            type Row = $Row;
            #[inline]
            fn push(&mut self, row: &$Row) {
                use $crate::table::Column;
                self.len += 1;
                $( <$ty as Column>::append(&mut self.$col, &row.$col); )*
            }
            fn len(&self) -> usize {
                self.len
            }
            fn finish(&mut self) -> ::arrow_array::RecordBatch {
                use $crate::table::Table;
                let schema = <$Row as Table>::schema();
                let columns: Vec<::arrow_array::ArrayRef> = vec![
                    $( ::arrow_array::builder::ArrayBuilder::finish(&mut self.$col), )*
                ];
                // The next batch is likely as big: allocate once instead of regrowing.
                *self = RowBuilder::with_capacity(self.len);
                ::arrow_array::RecordBatch::try_new(schema, columns)
                    .expect("builder columns match the table schema")
            }
        }
    };
}

/// Arrow field with the unit and description in its metadata, so they travel with
/// every Parquet file (readable by any Arrow-based tool).
pub fn field(name: &str, dt: DataType, nullable: bool, unit: &str, doc: &str) -> arrow_schema::Field {
    let mut md = std::collections::HashMap::new();
    if !unit.is_empty() {
        md.insert("unit".to_string(), unit.to_string());
    }
    let doc = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    if !doc.is_empty() {
        md.insert("description".to_string(), doc);
    }
    arrow_schema::Field::new(name, dt, nullable).with_metadata(md)
}

/// Which values can order rows (the time column).
pub trait SortTime {
    fn sort_time(&self) -> i64;
}
impl SortTime for UtcNanos {
    fn sort_time(&self) -> i64 {
        self.0
    }
}
impl SortTime for Option<UtcNanos> {
    fn sort_time(&self) -> i64 {
        self.map(|t| t.0).unwrap_or(i64::MIN)
    }
}
