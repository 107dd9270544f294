//! The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` per
//! family, one line per sample, label values escaped. Small enough to write by hand;
//! `promtool check metrics` checks the output in the tests.

use std::fmt::Write;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Default)]
pub struct Text {
    pub out: String,
}

impl Text {
    /// Starts a family: its HELP and TYPE lines.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample line. `value` is written with `Display` (integers as they are, `f64`
    /// in plain decimal, which Prometheus parses).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_into(&mut self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Label value escaping: backslash, double quote and line feed.
fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A float sample value: `+Inf`, `-Inf`, `NaN` spelled as Prometheus wants them.
pub fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_escapes() {
        let mut t = Text::default();
        t.family("x_total", "counter", "a \\ b\nc");
        t.sample("x_total", &[("a", "q\"\\\n"), ("b", "")], 3);
        t.sample("y", &[], float(0.00025));
        assert_eq!(
            t.out,
            "# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\nx_total{a=\"q\\\"\\\\\\n\",b=\"\"} 3\ny 0.00025\n"
        );
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(1.0), "1");
        assert_eq!(float(1e-7), "0.0000001");
    }
}
