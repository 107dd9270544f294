//! FORMAT.md and the schemas in code must agree. The column tables in FORMAT.md are
//! generated from the code; this test fails when they differ, and rewrites them when
//! run with TCPFR_BLESS=1.

use tcpfr_schema::{describe, schema_of, TABLES};

fn generated_block(table: &str) -> String {
    let (doc, cols) = describe(table).unwrap();
    let mut out = format!("### `{table}`\n\n");
    out.push_str(&doc.split_whitespace().collect::<Vec<_>>().join(" "));
    out.push_str("\n\n| column | type | unit | null | meaning |\n|---|---|---|---|---|\n");
    for c in cols {
        let meaning = c.doc.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|");
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            c.name,
            c.type_name,
            c.unit,
            if c.nullable { "yes" } else { "no" },
            meaning
        ));
    }
    out
}

fn blocks_in(doc: &str, table: &str) -> Option<(usize, usize)> {
    let open = format!("<!-- table:{table} -->\n");
    let close = format!("<!-- /table:{table} -->");
    let start = doc.find(&open)? + open.len();
    let end = doc[start..].find(&close)? + start;
    Some((start, end))
}

#[test]
fn format_md_describes_every_table_as_the_code_does() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/FORMAT.md");
    let mut doc = std::fs::read_to_string(path).unwrap();
    let bless = std::env::var("TCPFR_BLESS").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for table in TABLES {
        let Some((start, end)) = blocks_in(&doc, table) else {
            panic!("FORMAT.md has no <!-- table:{table} --> block");
        };
        let want = generated_block(table);
        if doc[start..end] != want {
            stale.push(table);
            if bless {
                doc.replace_range(start..end, &want);
            }
        }
    }
    if bless {
        std::fs::write(path, &doc).unwrap();
    } else {
        assert!(stale.is_empty(), "FORMAT.md is out of date for {stale:?}; run TCPFR_BLESS=1 cargo test -p tcpfr-schema --test format_doc");
    }
}

/// The generated tables come from `describe()`; this checks `describe()` itself
/// against the Arrow schemas the writer uses (names, order, nullability, units).
#[test]
fn descriptions_match_the_arrow_schemas() {
    for table in TABLES {
        let schema = schema_of(table).unwrap();
        let (_, cols) = describe(table).unwrap();
        assert_eq!(schema.fields().len(), cols.len(), "{table}");
        for (f, c) in schema.fields().iter().zip(cols) {
            assert_eq!(f.name(), c.name, "{table}");
            assert_eq!(f.is_nullable(), c.nullable, "{table}.{}", c.name);
            assert_eq!(f.metadata().get("unit").map(String::as_str).unwrap_or(""), c.unit, "{table}.{}", c.name);
            assert!(!c.doc.trim().is_empty(), "{table}.{} has no description", c.name);
        }
        assert!(schema.field_with_name("time").is_ok() && schema.field_with_name("host").is_ok(), "{table}");
    }
}
