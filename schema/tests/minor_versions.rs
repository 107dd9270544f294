//! A reader of format 1.1 reads recordings of 1.0: the columns 1.1 added (nullable, as
//! every column a minor version adds) are missing from those files and read as null.

use std::path::Path;

use tcpfr_schema::read::{Recording, Verify};
use tcpfr_schema::recorder_stats::RecorderStats;

#[test]
fn recorder_stats_of_format_1_0_read_with_the_shipping_columns_null() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/services/recording");
    let rec = Recording::open(&dir).unwrap();
    assert_eq!(rec.manifest.format_version, "1.0", "the sample is a 1.0 recording");
    let problems = rec.verify(Verify::Full);
    assert!(problems.is_empty(), "{problems:?}");
    let rows = rec.read_table::<RecorderStats>().unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r.shipped_files.is_none() && r.unshipped_bytes.is_none() && r.ship_errors.is_none()));
}
