//! The interactive shell of `tcpfr query REC…`: line editing and history (rustyline),
//! statements ending with `;`, and psql-style commands:
//!
//! ```text
//! \d            tables, with what each holds
//! \d TABLE      its columns: type, unit, meaning
//! \q            quit (also Ctrl-D)
//! \?            this help
//! ```

use anyhow::Result;
use datafusion::execution::context::SessionContext;
use rustyline::error::ReadlineError;

use crate::dataset::Dataset;
use crate::print::{Format, Output};

const HELP: &str = "\\d          list tables\n\\d TABLE    describe a table's columns\n\\q          quit (or Ctrl-D)\nEnd SQL statements with ';'. Only queries run: recordings are never modified.";

/// Splits SQL text into statements at `;`, with DataFusion's own SQL tokenizer (so a
/// `;` in a string, a quoted name or a `--`/`/* */` comment does not split). Text that
/// does not tokenize (an unterminated string) is one statement: running it gives the
/// parser's message.
pub fn split_statements(sql: &str) -> Vec<String> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Whitespace};
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return if sql.trim().is_empty() { Vec::new() } else { vec![sql.trim().to_string()] };
    };
    let mut out = Vec::new();
    let (mut cur, mut blank) = (String::new(), true);
    for t in tokens.iter().chain(std::iter::once(&Token::SemiColon)) {
        match t {
            Token::SemiColon => {
                if !blank {
                    out.push(cur.trim().to_string());
                }
                (cur, blank) = (String::new(), true);
            }
            Token::Whitespace(w) => {
                cur.push_str(&w.to_string());
                // A statement of comments only is not a statement.
                blank &= matches!(w, Whitespace::Space | Whitespace::Newline | Whitespace::Tab | Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_));
            }
            t => {
                cur.push_str(&t.to_string());
                blank = false;
            }
        }
    }
    out
}

/// `\d` output: tables and their row counts.
pub fn describe_tables() -> String {
    let mut out = String::from("Tables (each also raw, without window or `service`, as files.<table>):\n");
    for t in tcpfr_schema::TABLES {
        let (doc, _) = tcpfr_schema::describe(t).expect("known");
        let first = doc.split(". ").next().unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ");
        out.push_str(&format!("  {t:<15} {first}.\n"));
    }
    out
}

/// `\d TABLE` output.
pub fn describe_table(name: &str) -> Option<String> {
    let (doc, cols) = tcpfr_schema::describe(name)?;
    let mut out = format!("{}\n\n", doc.split_whitespace().collect::<Vec<_>>().join(" "));
    for c in cols {
        let unit = if c.unit.is_empty() { String::new() } else { format!(" [{}]", c.unit) };
        let null = if c.nullable { "" } else { " not null" };
        let meaning = c.doc.split_whitespace().collect::<Vec<_>>().join(" ");
        out.push_str(&format!("  {:<22} {}{}{}\n      {}\n", c.name, c.type_name, unit, null, meaning));
    }
    if name == "rtt_samples" {
        out.push_str("  family, laddr, lport, raddr, rport, pid, comm, cgroup_id, cgroup, container_id\n      From the socket's row in `sockets` (joined by the view).\n");
    }
    if crate::session::has_service(name) {
        out.push_str("  service                string\n      Service of the connection, from the services map (query-time).\n");
    }
    Some(out)
}

pub async fn run(ctx: &SessionContext, ds: &Dataset) -> Result<()> {
    let mut rl = rustyline::DefaultEditor::new()?;
    let history = std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".tcpfr_history"));
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    println!(
        "tcpfr {} — {} recording(s), hosts: {}, {} files. \\d lists tables, \\? helps, \\q quits.",
        env!("CARGO_PKG_VERSION"),
        ds.recordings.len(),
        crate::print::for_terminal(&ds.hosts().join(", ")),
        ds.file_count()
    );
    let out = Output { format: Format::Table, file: None };
    let mut buf = String::new();
    loop {
        let prompt = if buf.is_empty() { "tcpfr> " } else { "   ..> " };
        let line = match rl.readline(prompt) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => {
                buf.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let trimmed = line.trim();
        if buf.is_empty() && trimmed.starts_with('\\') {
            let _ = rl.add_history_entry(trimmed);
            let mut words = trimmed.split_whitespace();
            match (words.next(), words.next()) {
                (Some("\\q"), _) => break,
                (Some("\\?") | Some("\\h"), _) => println!("{HELP}"),
                (Some("\\d"), None) => print!("{}", describe_tables()),
                (Some("\\d"), Some(t)) => match describe_table(t.trim_start_matches("files.")) {
                    Some(d) => print!("{d}"),
                    None => println!("no table {t:?}; tables: {}", tcpfr_schema::TABLES.join(", ")),
                },
                (Some(other), _) => println!("unknown command {other}; \\? lists commands"),
                (None, _) => {}
            }
            continue;
        }
        buf.push_str(&line);
        buf.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let _ = rl.add_history_entry(buf.trim());
        for stmt in split_statements(&buf) {
            match crate::exec::run(ctx, &stmt, "query").await {
                Ok((schema, batches)) => out.write(None, &schema, &batches)?,
                Err(e) => println!("error: {}", crate::print::lines_for_terminal(&format!("{e:#}"))),
            }
        }
        buf.clear();
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let s = split_statements("SELECT 'a;b'; -- c;d\nSELECT \"x;y\" FROM t;\n\n-- only a comment;\n");
        assert_eq!(s, vec!["SELECT 'a;b'", "-- c;d\nSELECT \"x;y\" FROM t"]);
        assert!(split_statements("  ;; ").is_empty());
        // Block comments, and quotes inside them, do not split either.
        let s = split_statements("SELECT 1 /* a; 'b */ AS x; /* only; a comment */ SELECT 2");
        assert_eq!(s, vec!["SELECT 1 /* a; 'b */ AS x", "/* only; a comment */ SELECT 2"]);
        // Unterminated: one statement, for the parser to explain.
        assert_eq!(split_statements("SELECT 'a; b"), vec!["SELECT 'a; b"]);
    }
}
