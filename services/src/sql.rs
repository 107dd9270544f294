//! The SQL functions the services map's SQL calls (`cidr_contains` for IPv6 networks),
//! for every engine that runs it: the analyzer's sessions and the Ballista scheduler and
//! executors of tcpfr-cluster (whose plans name the function and must find it there).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};

/// Every function the services map's SQL may call.
pub fn functions() -> Vec<ScalarUDF> {
    vec![cidr_contains()]
}

/// `cidr_contains(cidr, addr)`: whether text address `addr` lies in network `cidr`
/// (IPv4 or IPv6). Null if either is null or not parseable.
pub fn cidr_contains() -> ScalarUDF {
    let f = Arc::new(|args: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        // Utf8 by signature; cast anyway (a no-op then) so a view never reaches the downcast.
        let text = |a: &ArrayRef| datafusion::arrow::compute::cast(a, &DataType::Utf8);
        let (cidrs, addrs) = (text(&arrays[0])?, text(&arrays[1])?);
        let cidrs = cidrs.as_any().downcast_ref::<StringArray>().expect("cast to utf8");
        let addrs = addrs.as_any().downcast_ref::<StringArray>().expect("cast to utf8");
        let mut cache: Option<(String, Option<ipnet::IpNet>)> = None;
        let out: BooleanArray = (0..addrs.len())
            .map(|i| {
                if cidrs.is_null(i) || addrs.is_null(i) {
                    return None;
                }
                let c = cidrs.value(i);
                if cache.as_ref().is_none_or(|(s, _)| s != c) {
                    cache = Some((c.to_string(), c.parse().ok()));
                }
                let net = cache.as_ref().and_then(|(_, n)| *n)?;
                let addr: std::net::IpAddr = addrs.value(i).parse().ok()?;
                Some(net.contains(&addr))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
    });
    create_udf("cidr_contains", vec![DataType::Utf8, DataType::Utf8], DataType::Boolean, Volatility::Immutable, f)
}
