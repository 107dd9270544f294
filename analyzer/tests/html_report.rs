//! `tcpfr report --html`: the report rendered by the built binary, loaded in headless
//! chromium (a temp profile, killed on timeout and on drop), and checked on the DOM the
//! browser built — against `tcpfr hotspots` and `tcpfr report` run separately.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ok, sample, tcpfr};

const CHROMIUM: &str = "/usr/bin/chromium";
const TIMEOUT: Duration = Duration::from_secs(90);

/// A chromium run, killed if it outlives [`TIMEOUT`] or the test.
struct Browser {
    child: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs headless chromium on `page` with `args`; returns its stdout.
fn chromium(dir: &Path, page: &Path, args: &[String]) -> String {
    let profile = tempfile::tempdir_in(dir).unwrap();
    let out_path = dir.join(format!("chromium-{}.out", std::process::id()));
    let out = std::fs::File::create(&out_path).unwrap();
    let mut cmd = Command::new(CHROMIUM);
    cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null());
    let mut b = Browser { child: cmd.spawn().expect("chromium runs (installed by scripts/bootstrap.sh)") };
    let start = Instant::now();
    loop {
        if let Some(status) = b.child.try_wait().unwrap() {
            assert!(status.success(), "chromium failed: {status}");
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "chromium did not finish within {TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::read_to_string(&out_path).unwrap()
}

/// One element of the serialized DOM: tag, attributes (unescaped), and the text up to
/// the next tag.
#[derive(Debug)]
struct El {
    tag: String,
    attrs: BTreeMap<String, String>,
    text: String,
}

impl El {
    fn attr(&self, k: &str) -> Option<&str> {
        self.attrs.get(k).map(String::as_str)
    }
    fn has_class(&self, c: &str) -> bool {
        self.attr("class").is_some_and(|v| v.split_whitespace().any(|x| x == c))
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&nbsp;", "\u{a0}").replace("&amp;", "&")
}

/// A small tokenizer for chromium's `--dump-dom` output (attributes double-quoted,
/// `&` `<` `>` `"` escaped as the HTML serialization algorithm does).
fn parse_dom(html: &str) -> Vec<El> {
    let mut els = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        if rest.starts_with('/') || rest.starts_with('!') {
            let j = rest.find('>').unwrap_or(rest.len());
            rest = &rest[j.min(rest.len())..];
            if let (Some(t), Some(last)) = (rest.strip_prefix('>'), els.last_mut()) {
                // Text after a closing tag belongs to the enclosing element; keep it simple
                // and give it to the last element.
                let k = t.find('<').unwrap_or(t.len());
                let e: &mut El = last;
                e.text.push_str(&unescape(&t[..k]));
            }
            continue;
        }
        let name_end = rest.find(|c: char| c.is_whitespace() || c == '>' || c == '/').unwrap_or(rest.len());
        let tag = rest[..name_end].to_ascii_lowercase();
        rest = &rest[name_end..];
        let mut attrs = BTreeMap::new();
        loop {
            rest = rest.trim_start();
            if rest.starts_with('>') || rest.starts_with("/>") || rest.is_empty() {
                rest = rest.trim_start_matches('/');
                rest = rest.strip_prefix('>').unwrap_or(rest);
                break;
            }
            let k_end = rest.find(|c: char| c == '=' || c.is_whitespace() || c == '>').unwrap_or(rest.len());
            let key = rest[..k_end].to_ascii_lowercase();
            rest = &rest[k_end..];
            if let Some(r) = rest.strip_prefix("=\"") {
                let v_end = r.find('"').unwrap();
                attrs.insert(key, unescape(&r[..v_end]));
                rest = &r[v_end + 1..];
            } else {
                attrs.insert(key, String::new());
            }
        }
        let k = rest.find('<').unwrap_or(rest.len());
        let text = if tag == "style" || tag == "script" { rest[..k].to_string() } else { unescape(&rest[..k]) };
        els.push(El { tag, attrs, text });
    }
    els
}

fn render(dir: &Path, args: &[&str]) -> (PathBuf, String) {
    let page = dir.join("report.html");
    let mut a: Vec<&str> = vec!["report"];
    a.extend(args);
    let p = page.to_str().unwrap();
    a.extend(["--html", p]);
    let out = ok(&a);
    assert!(out.contains("wrote"), "{out}");
    let html = std::fs::read_to_string(&page).unwrap();
    (page, html)
}

/// Every element's src/href (and CSS url()) stays inside the page.
fn assert_offline(els: &[El], html: &str) {
    for e in els {
        assert!(!matches!(e.tag.as_str(), "script" | "link" | "img" | "iframe" | "object" | "embed"), "unexpected <{}> {:?}", e.tag, e.attrs);
        for k in ["src", "href", "xlink:href", "action", "poster"] {
            if let Some(v) = e.attr(k) {
                let v = v.trim().to_ascii_lowercase();
                assert!(!(v.starts_with("http:") || v.starts_with("https:") || v.starts_with("//")), "<{} {k}={v}> is external", e.tag);
            }
        }
        if e.tag == "style" {
            assert!(!e.text.contains("url(") && !e.text.contains("@import"), "external CSS: {}", e.text);
        }
    }
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "external reference in the page");
}

/// PNG → (width, height, distinct colours, share of the commonest colour).
fn png_colours(png: &[u8]) -> (u32, u32, usize, f64) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut w, mut h, mut bpp) = (0u32, 0u32, 0usize);
    let mut idat = Vec::new();
    let mut i = 8;
    while i + 8 <= png.len() {
        let len = u32::from_be_bytes(png[i..i + 4].try_into().unwrap()) as usize;
        let kind = &png[i + 4..i + 8];
        let data = &png[i + 8..i + 8 + len];
        match kind {
            b"IHDR" => {
                w = u32::from_be_bytes(data[0..4].try_into().unwrap());
                h = u32::from_be_bytes(data[4..8].try_into().unwrap());
                assert_eq!(data[8], 8, "bit depth");
                bpp = match data[9] {
                    2 => 3,
                    6 => 4,
                    t => panic!("colour type {t}"),
                };
                assert_eq!(data[12], 0, "interlaced");
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        i += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..]).read_to_end(&mut raw).unwrap();
    let stride = w as usize * bpp;
    assert_eq!(raw.len(), (stride + 1) * h as usize);
    let mut prev = vec![0u8; stride];
    let mut counts: std::collections::HashMap<Vec<u8>, usize> = Default::default();
    for y in 0..h as usize {
        let f = raw[y * (stride + 1)];
        let mut cur = raw[y * (stride + 1) + 1..(y + 1) * (stride + 1)].to_vec();
        for x in 0..stride {
            let a = if x >= bpp { cur[x - bpp] as i32 } else { 0 };
            let b = prev[x] as i32;
            let c = if x >= bpp { prev[x - bpp] as i32 } else { 0 };
            let add = match f {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                4 => {
                    let p = a + b - c;
                    let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                _ => panic!("filter {f}"),
            };
            cur[x] = cur[x].wrapping_add(add as u8);
        }
        for px in cur.chunks(bpp) {
            *counts.entry(px[..3].to_vec()).or_default() += 1;
        }
        prev = cur;
    }
    let top = counts.values().max().copied().unwrap_or(0);
    (w, h, counts.len(), top as f64 / (w as f64 * h as f64))
}

fn json_rows(out: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap_or_else(|e| panic!("{e}: {out}"));
    v.as_array().unwrap().iter().map(|r| r.as_object().unwrap().clone()).collect()
}

fn number(v: &serde_json::Value) -> f64 {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn services_sample_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let rec = sample("services").join("recording");
    let pcap = sample("services").join("capture.pcap");
    let (page, html) = render(dir.path(), &[rec.to_str().unwrap(), "--pcap", pcap.to_str().unwrap()]);
    assert!(html.len() < 300 * 1024, "report is {} bytes", html.len());

    let dom = chromium(dir.path(), &page, &["--dump-dom".into()]);
    let els = parse_dom(&dom);
    assert!(els.iter().any(|e| e.tag == "svg" && e.attr("id") == Some("chart-retransmits")), "no retransmits chart");
    assert_offline(&els, &html);

    // Hotspots: one bar row per row of `tcpfr hotspots`, with its numbers.
    let expected = json_rows(&ok(&["hotspots", rec.to_str().unwrap(), "--part", "1", "--format", "json"]));
    assert!(!expected.is_empty());
    let start = els.iter().position(|e| e.attr("id") == Some("chart-hotspots")).expect("hotspot chart");
    let chart: Vec<&El> = els[start..].iter().take_while(|e| !(e.tag == "section" || e.tag == "h2")).collect();
    let rows: Vec<usize> = chart.iter().enumerate().filter(|(_, e)| e.has_class("bar-row")).map(|(i, _)| i).collect();
    assert_eq!(rows.len(), expected.len(), "bars vs hotspots rows");
    for (k, (&at, want)) in rows.iter().zip(&expected).enumerate() {
        assert_eq!(chart[at].attr("data-label"), want["service"].as_str(), "row {k}");
        let end = rows.get(k + 1).copied().unwrap_or(chart.len());
        for metric in ["retrans_segs", "resets", "failed_handshakes"] {
            let shown: Vec<&&El> = chart[at..end].iter().filter(|e| e.has_class("value") && e.attr("data-metric") == Some(metric)).collect();
            assert_eq!(shown.len(), 1, "{metric} of row {k}");
            assert_eq!(shown[0].text.trim().parse::<f64>().unwrap(), number(&want[metric]), "{metric} of {:?}", want["service"]);
            let bar = chart[at..end].iter().find(|e| e.tag == "rect" && e.attr("data-metric") == Some(metric)).unwrap();
            assert_eq!(bar.attr("data-value").unwrap().parse::<f64>().unwrap(), number(&want[metric]));
        }
    }
    // Bars are drawn to scale: the first row's retransmits bar is the widest.
    let widths: Vec<f64> = chart.iter().filter(|e| e.tag == "rect" && e.attr("data-metric") == Some("retrans_segs")).map(|e| e.attr("width").unwrap().parse().unwrap()).collect();
    assert!(widths[0] > 0.0 && widths.iter().all(|w| *w <= widths[0]), "{widths:?}");

    // The findings are the terminal report's, word for word.
    let text = ok(&["report", rec.to_str().unwrap()]);
    let bullets: Vec<String> = text.split("What stands out:").nth(1).unwrap().split("\n\n").next().unwrap().lines().filter_map(|l| l.trim().strip_prefix("• ")).map(str::to_string).collect();
    let sec = els.iter().position(|e| e.attr("id") == Some("findings")).unwrap();
    let items: Vec<String> = els[sec..].iter().take_while(|e| e.tag != "h3").filter(|e| e.tag == "li").map(|e| e.text.trim().to_string()).collect();
    assert_eq!(items, bullets);

    // No handshake failures or resets in this sample: said in words, no empty frame.
    for what in ["handshakes", "resets"] {
        let msg = els.iter().find(|e| e.attr("id") == Some(&format!("{what}-nodata"))).unwrap_or_else(|| panic!("no {what} no-data message"));
        assert!(msg.has_class("nodata") && msg.text.starts_with("No "), "{msg:?}");
        assert!(!els.iter().any(|e| e.attr("id") == Some(&format!("chart-{what}"))), "{what} chart drawn without data");
    }
    // The capture next to the kernel: both series, and the xref totals.
    assert!(els.iter().any(|e| e.attr("id") == Some("chart-wire")));
    for s in ["kernel (recording)", "wire (capture)"] {
        assert!(els.iter().any(|e| e.tag == "path" && e.attr("data-series") == Some(s)), "{s}");
    }
    let xref = ok(&["xref", rec.to_str().unwrap(), "--pcap", pcap.to_str().unwrap(), "--format", "json"]);
    let totals = json_rows(xref.lines().nth(1).unwrap());
    let summary = els.iter().find(|e| e.has_class("xref-summary")).unwrap();
    let kernel = totals[0]["kernel_segments"].as_u64().unwrap();
    assert!(summary.text.contains(&format!("Kernel: {kernel} retransmitted segments; matched on the wire: {};", totals[0]["matched"])), "{}", summary.text);

    // The screenshot: a real picture, not a blank page.
    let shot = dir.path().join("shot.png");
    chromium(dir.path(), &page, &[format!("--screenshot={}", shot.display()), "--window-size=1100,1600".into()]);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.len() > 20_000, "screenshot is {} bytes", png.len());
    let (w, h, colours, top) = png_colours(&png);
    assert_eq!((w, h), (1100, 1600));
    assert!(colours > 50 && top < 0.97, "{colours} colours, commonest covers {:.1}%", top * 100.0);
}

#[test]
fn empty_charts_say_so_and_the_window_is_marked() {
    let dir = tempfile::tempdir().unwrap();
    let rec = sample("refused").join("recording");
    let (page, html) = render(dir.path(), &[rec.to_str().unwrap(), "--from", "+1s", "--to", "+2500ms"]);
    let els = parse_dom(&chromium(dir.path(), &page, &["--dump-dom".into()]));
    assert_offline(&els, &html);
    // No retransmits in this sample at all.
    let msg = els.iter().find(|e| e.attr("id") == Some("retransmits-nodata")).expect("no-data message");
    assert_eq!(msg.text, "No retransmitted segments in this time range.");
    assert!(!els.iter().any(|e| e.attr("id") == Some("chart-retransmits")));
    // Refused handshakes are drawn, by cause, and the window is shaded on the charts.
    let causes: Vec<&str> = els.iter().filter(|e| e.tag == "rect" && e.has_class("bar")).filter_map(|e| e.attr("data-series")).collect();
    assert!(causes.contains(&"refused"), "{causes:?}");
    let marks = els.iter().filter(|e| e.tag == "rect" && e.has_class("mark") && e.has_class("window")).count();
    assert!(marks >= 2, "window marked on {marks} charts");
    // The hotspots count the window only, as `tcpfr hotspots` does.
    let want = json_rows(&ok(&["hotspots", rec.to_str().unwrap(), "--from", "+1s", "--to", "+2500ms", "--part", "1", "--format", "json"]));
    let shown: f64 = els.iter().filter(|e| e.has_class("value") && e.attr("data-metric") == Some("failed_handshakes")).map(|e| e.text.parse::<f64>().unwrap()).sum();
    assert_eq!(shown, want.iter().map(|r| number(&r["failed_handshakes"])).sum::<f64>());
}

#[test]
fn names_from_the_data_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let evil = r#"<img src=x onerror=alert(1)>&amp;"'</svg><script>x</script>"#;
    let map = dir.path().join("services.toml");
    std::fs::write(&map, format!("[[service]]\nname = '''{evil}'''\nrport = \"5432\"\n")).unwrap();
    let rec = sample("services").join("recording");
    let (page, html) = render(dir.path(), &[rec.to_str().unwrap(), "--services", map.to_str().unwrap()]);
    assert!(!html.contains("<img") && !html.contains("<script"), "markup from the data got through");
    let els = parse_dom(&chromium(dir.path(), &page, &["--dump-dom".into()]));
    assert_offline(&els, &html);
    let row = els.iter().find(|e| e.has_class("bar-row")).unwrap();
    assert_eq!(row.attr("data-label"), Some(evil), "the name survives as text");
    assert!(els.iter().any(|e| e.has_class("legend-item") && e.text == evil));
}

#[test]
fn bad_uses_get_clear_errors() {
    let rec = sample("services").join("recording");
    let r = tcpfr(&["report", rec.to_str().unwrap(), "--pcap", "x.pcap"]);
    assert!(!r.ok && r.stderr.contains("--html"), "{}", r.stderr);
    let r = tcpfr(&["report", rec.to_str().unwrap(), "--html", "/nonexistent-dir/r.html"]);
    assert!(!r.ok && r.stderr.contains("cannot write") && !r.stderr.contains("panicked"), "{}", r.stderr);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_snapshot_window_is_marked() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("snap");
    copy_dir(&sample("syn-blackhole").join("recording"), &rec);
    // The manifest's snapshot record, as the recorder writes it (schema/src/manifest.rs).
    let path = rec.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m["snapshot"] = serde_json::json!({
        "trigger": "2026-11-23T12:42:55Z", "reason": "<b>SYN timeouts</b>", "source": "SIGUSR1", "triggers": 1,
        "window_start": "2026-11-23T12:42:53Z", "window_end": "2026-11-23T12:43:00Z", "cut_short": false
    });
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let (page, html) = render(dir.path(), &[rec.to_str().unwrap()]);
    let els = parse_dom(&chromium(dir.path(), &page, &["--dump-dom".into()]));
    assert_offline(&els, &html);
    let shaded = els.iter().filter(|e| e.tag == "rect" && e.has_class("mark") && e.has_class("snapshot")).count();
    let trigger = els.iter().filter(|e| e.tag == "line" && e.has_class("mark") && e.has_class("trigger")).count();
    assert!(shaded >= 2 && trigger == shaded, "{shaded} snapshot windows, {trigger} trigger lines");
    assert!(!els.iter().any(|e| e.tag == "b"), "the snapshot's reason is data, not markup");
    assert!(els.iter().any(|e| e.tag == "td" && e.text.contains("SIGUSR1: <b>SYN timeouts</b>")));
}
