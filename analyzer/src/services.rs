//! The services map (`tcpfr-services`: its TOML rules, the decision in Rust, and its
//! SQL form, documented there), as the analyzer applies it: `--services FILE`, else
//! `$TCPFR_SERVICES`, else `~/.config/tcpfr/services.toml`, compiled to the `service`
//! column of the views. The tests here check the SQL against the Rust decision in a
//! real session.

pub use tcpfr_services::ServiceMap;

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = r#"
        [[service]]
        name = "db"
        rport = "5432"
        [[service]]
        name = "api"
        lport = "8000-8100"
        [[service]]
        name = "internal"
        cidr = "10.64.0.0/10"
        [[service]]
        name = "ingress"
        process = "nginx*"
        [[service]]
        name = "pods"
        cgroup = "/kubepods/*"
        rport = "9000-9100"
        [[service]]
        name = "literal"
        process = "a_b%c"
    "#;

    #[test]
    fn first_match_wins_then_well_known_then_process() {
        let m = ServiceMap::parse(MAP).unwrap();
        assert_eq!(m.name(40000, 5432, "192.168.1.1", Some("api"), None), "db");
        assert_eq!(m.name(8050, 40000, "192.168.1.1", Some("x"), None), "api");
        assert_eq!(m.name(1, 2, "10.66.0.34", None, None), "internal");
        assert_eq!(m.name(1, 2, "10.128.0.1", Some("nginx-worker"), None), "ingress");
        assert_eq!(m.name(40000, 6379, "1.2.3.4", Some("app"), None), "redis");
        assert_eq!(m.name(6379, 40000, "1.2.3.4", Some("redis-server"), None), "redis");
        assert_eq!(m.name(40000, 40001, "1.2.3.4", Some("app"), None), "app");
        assert_eq!(m.name(40000, 40001, "1.2.3.4", None, None), "unknown");
    }

    #[test]
    fn bad_maps_are_explained() {
        assert!(ServiceMap::parse("[[service]]\nname='x'").unwrap_err().to_string().contains("no condition"));
        let e = format!("{:#}", ServiceMap::parse("[[service]]\nname='x'\ncidr='10.0.0.300/8'").unwrap_err());
        assert!(e.contains("bad cidr"), "{e}");
        let e = format!("{:#}", ServiceMap::parse("[[service]]\nname='x'\nport=1").unwrap_err());
        assert!(e.contains("unknown field"), "{e}");
        assert!(ServiceMap::parse("[[service]]\nname='x'\nrport='90-80'").is_err());
    }

    /// The SQL the views use and the Rust reference decide the same, row by row.
    #[tokio::test]
    async fn sql_agrees_with_the_reference() {
        use datafusion::arrow::array::{Array, RecordBatch, StringArray, UInt16Array};
        use std::sync::Arc;
        let map = ServiceMap::parse(&format!("{MAP}\n[[service]]\nname = \"v6net\"\ncidr = \"fd00:66::/32\"\n")).unwrap();
        let addrs = ["10.66.0.34", "10.128.0.1", "192.168.1.1", "fd00:66::2", "fd00:67::2"];
        // `a_b%c` must match only itself (LIKE's `_` and `%` escaped), `axbyc` not.
        let comms = [Some("nginx-1"), Some("api"), Some("a_b%c"), Some("axbyc"), None];
        let cgroups = [Some("/kubepods/pod1/c1"), Some("/system.slice/x"), None];
        let ports = [5432u16, 8050, 6379, 9050, 40000];
        let (mut l, mut r, mut a, mut f, mut c, mut g, mut expect) = (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for &lp in &ports {
            for &rp in &ports {
                for addr in addrs {
                    for comm in comms {
                        for cg in cgroups {
                            l.push(lp);
                            r.push(rp);
                            a.push(addr);
                            f.push(if addr.contains(':') { "ipv6" } else { "ipv4" });
                            c.push(comm);
                            g.push(cg);
                            expect.push(map.name(lp, rp, addr, comm, cg));
                        }
                    }
                }
            }
        }
        let batch = RecordBatch::try_from_iter([
            ("lport", Arc::new(UInt16Array::from(l)) as _),
            ("rport", Arc::new(UInt16Array::from(r)) as _),
            ("raddr", Arc::new(StringArray::from(a)) as _),
            ("family", Arc::new(StringArray::from(f)) as _),
            ("comm", Arc::new(StringArray::from(c)) as _),
            ("cgroup", Arc::new(StringArray::from(g)) as _),
        ])
        .unwrap();
        // A session over no recordings still has the views' functions (cidr_contains).
        let ctx = crate::session::context(&crate::env::Env::default(), &crate::dataset::Dataset::default(), &crate::window::Window::default(), &map).await.unwrap();
        ctx.register_batch("t", batch).unwrap();
        let df = ctx.sql(&format!("SELECT {} AS svc FROM t", map.sql().unwrap())).await.unwrap();
        let got: Vec<String> = df
            .collect()
            .await
            .unwrap()
            .iter()
            .flat_map(|b| {
                let a = b.column(0).as_any().downcast_ref::<StringArray>().unwrap().clone();
                (0..a.len()).map(move |i| a.value(i).to_string())
            })
            .collect();
        assert_eq!(got, expect);
        for name in ["db", "api", "internal", "ingress", "pods", "literal", "v6net", "redis", "postgres", "axbyc", "unknown"] {
            assert!(expect.iter().any(|e| e == name), "the table exercises {name}");
        }
    }
}
