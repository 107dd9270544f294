//! The packaging in `packaging/` grants exactly the capabilities the recorder's own
//! check asks for (`tcpfr_recorder::privileges::CAPABILITIES`), and each piece passes its
//! tool's checks: the systemd unit `systemd-analyze verify` (with an exposure no worse
//! than the README says), the DaemonSet Kubernetes' schema (kubernetes-validate
//! --strict), the Containerfile hadolint. No container engine, cluster or running
//! systemd is needed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tcpfr_recorder::privileges::CAPABILITIES;

fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging")
}

/// `CAP_BPF`, … as the recorder names them.
fn capabilities() -> BTreeSet<String> {
    CAPABILITIES.iter().map(|n| n.cap.to_string()).collect()
}

/// A tool from PATH or from scripts/bootstrap.sh's tool directory.
fn tool(name: &str, args: &[&str]) -> Output {
    let tools = std::env::var("TCPFR_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/tcpfr-tools"));
    let path = format!("{}:{}", tools.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    Command::new(name)
        .args(args)
        .env("PATH", path)
        .output()
        .unwrap_or_else(|e| panic!("{name}: {e} (scripts/bootstrap.sh installs it)"))
}

fn words_of(unit: &str, key: &str) -> BTreeSet<String> {
    let lines: Vec<&str> = unit.lines().filter_map(|l| l.strip_prefix(&format!("{key}="))).collect();
    assert_eq!(lines.len(), 1, "one {key}= line");
    lines[0].split_whitespace().map(str::to_string).collect()
}

#[test]
fn the_unit_grants_exactly_the_recorders_capabilities() {
    let unit = std::fs::read_to_string(packaging().join("tcpfr-recorder.service")).unwrap();
    assert_eq!(words_of(&unit, "AmbientCapabilities"), capabilities());
    assert_eq!(words_of(&unit, "CapabilityBoundingSet"), capabilities());
    for line in ["User=tcpfr", "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/tcpfr", "PrivateTmp=yes", "ProtectHome=yes"] {
        assert!(unit.lines().any(|l| l == line), "{line} in the unit");
    }
}

/// The exposure figure the README's "Install on a host" gives.
fn documented_exposure() -> f64 {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let at = readme.find("exposure level of ").expect("README gives the unit's exposure level");
    let figure: String = readme[at..].split_whitespace().nth(3).unwrap().chars().filter(|c| c.is_ascii_digit() || *c == '.').collect();
    figure.parse().unwrap_or_else(|_| panic!("exposure figure in README: {figure:?}"))
}

#[test]
fn systemd_verifies_the_unit_and_its_exposure_is_as_documented() {
    // verify wants ExecStart's binary to exist: the unit as installed, pointed at ours.
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(packaging().join("tcpfr-recorder.service"))
        .unwrap()
        .replace("/usr/bin/tcpfr-recorder", env!("CARGO_BIN_EXE_tcpfr-recorder"));
    let path = dir.path().join("tcpfr-recorder.service");
    std::fs::write(&path, unit).unwrap();
    let p = path.to_str().unwrap();
    let out = tool("systemd-analyze", &["verify", "--man=no", p]);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");

    let out = tool("systemd-analyze", &["security", "--offline=true", "--no-pager", p]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("{text}"));
    let exposure: f64 = line.split(": ").nth(1).and_then(|r| r.split_whitespace().next()).unwrap().parse().unwrap();
    eprintln!("{line}");
    assert!(exposure <= documented_exposure(), "exposure {exposure} is worse than the README's {}", documented_exposure());
}

/// The DaemonSet as JSON (PyYAML reads it; python3-yaml is a bootstrap package).
fn daemonset() -> serde_json::Value {
    let out = tool(
        "python3",
        &["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))", packaging().join("k8s/daemonset.yaml").to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_daemonset_grants_exactly_the_recorders_capabilities_and_passes_the_schema() {
    let file = packaging().join("k8s/daemonset.yaml");
    let out = tool("kubernetes-validate", &["--strict", "--quiet", file.to_str().unwrap()]);
    assert!(out.status.success(), "kubernetes-validate: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    let ds = daemonset();
    assert_eq!(ds["kind"], "DaemonSet");
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["hostPID"], true, "socket owners are found in the node's /proc");
    assert_eq!(spec["hostNetwork"], true, "host counters are the node's");
    let containers = spec["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let sc = &containers[0]["securityContext"];
    let add: BTreeSet<String> =
        sc["capabilities"]["add"].as_array().unwrap().iter().map(|c| format!("CAP_{}", c.as_str().unwrap())).collect();
    assert_eq!(add, capabilities());
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);

    // Every mount the recorder reads from the host, each backed by a host path.
    let volumes: Vec<(&str, &str)> = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["hostPath"]["path"].as_str().unwrap()))
        .collect();
    for (path, read_only) in [("/var/lib/tcpfr", false), ("/sys/fs/cgroup", true), ("/sys/kernel/tracing", true), ("/sys/kernel/btf", true)] {
        let m = containers[0]["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"] == path)
            .unwrap_or_else(|| panic!("{path} is mounted"));
        assert_eq!(m["readOnly"].as_bool().unwrap_or(false), read_only, "{path} read-only: {read_only}");
        let host = volumes.iter().find(|(n, _)| Some(*n) == m["name"].as_str()).unwrap().1;
        assert_eq!(host, path, "{path} is the host's");
    }
}

#[test]
fn the_containerfile_installs_the_package_and_documents_the_same_capabilities() {
    let file = packaging().join("Containerfile");
    let out = tool("hadolint", &[file.to_str().unwrap()]);
    assert!(out.status.success(), "hadolint: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    let text = std::fs::read_to_string(&file).unwrap();
    let instructions: Vec<&str> = text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty() && !l.starts_with(' ')).collect();
    assert!(instructions[0].starts_with("FROM debian:"), "{instructions:?}");
    assert!(text.contains("apt-get install -y --no-install-recommends /tmp/tcpfr-recorder_"), "installs the .deb");
    assert!(instructions.contains(&r#"ENTRYPOINT ["/usr/bin/tcpfr-recorder"]"#), "{instructions:?}");
    // The run line in its header: drop all, add exactly the set.
    assert!(text.contains("--cap-drop=ALL"));
    let added = text.lines().find_map(|l| l.split("--cap-add=").nth(1)).expect("a --cap-add= line");
    let added: BTreeSet<String> = added.split_whitespace().next().unwrap().split(',').map(str::to_string).collect();
    assert_eq!(added, capabilities());
}
