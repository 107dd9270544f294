//! Escaping of text from the data (service and process names, notes, manifests) for
//! the report's HTML and SVG.
//!
//! The HTML is written with `maud`, whose own escaper leaves `'` and control characters
//! alone; text goes through [`Text`] instead, which also escapes `'` and replaces control
//! characters (but newline and tab) with U+FFFD: recorded process names can hold any
//! byte, and a control character would make the inline SVG invalid XML. The SVG code
//! (`chart`) writes strings with [`esc`], the same escaping.

use maud::Render;

/// Appends `s` escaped for element content and quoted attribute values.
fn esc_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters would make the document invalid XML inside SVG.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

/// HTML/XML-escapes text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    esc_into(&mut out, s);
    out
}

/// Text from the data, rendered escaped (see the module docs); every string spliced
/// into the report's markup is one.
pub struct Text<'a>(pub &'a str);

impl Render for Text<'_> {
    fn render_to(&self, buffer: &mut String) {
        esc_into(buffer, self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        let evil = r#"<script>alert("x")</script> & 'y'"#;
        let want = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;";
        assert_eq!(esc(evil), want);
        assert_eq!(esc("a\u{0}b\u{1b}[31m\tc\nd"), "a\u{fffd}b\u{fffd}[31m\tc\nd");
        // The same through maud, in content and in an attribute.
        let m = maud::html! { p title=(Text(evil)) { (Text(evil)) (Text("\u{7}")) } };
        assert_eq!(m.into_string(), format!(r#"<p title="{want}">{want}{}</p>"#, '\u{fffd}'));
    }
}
