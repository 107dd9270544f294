//! Builds the eBPF object (`recorder-ebpf`) with the pinned nightly and bpf-linker, so
//! that `cargo build` of the recorder is all it takes. `AYA_BUILD_SKIP=1` skips it (the
//! recorder then cannot run, but the rest of the workspace builds without the eBPF
//! toolchain). Anything missing fails the build with what to run, instead of the
//! warnings cargo would otherwise bury it in.

use std::path::PathBuf;
use std::process::Command;

/// Keep in sync with scripts/bootstrap.sh.
const NIGHTLY: &str = "nightly-2026-05-20";

fn main() {
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    println!("cargo:rerun-if-env-changed=TCPFR_TOOLS");
    println!("cargo:rerun-if-env-changed=TCPFR_NIGHTLY");
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    // The event layouts the programs write live in the schema crate.
    println!("cargo:rerun-if-changed={}", root.join("schema/src").display());
    println!("cargo:rerun-if-changed={}", root.join("recorder-ebpf/src").display());

    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("tcpfr-recorder-ebpf");
    if std::env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        // An empty object: the recorder refuses to start with a clear message.
        std::fs::write(&out, b"").unwrap();
        return;
    }

    let nightly = std::env::var("TCPFR_NIGHTLY").unwrap_or_else(|_| NIGHTLY.to_string());
    let tools = std::env::var("TCPFR_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/tcpfr-tools"));
    let bin = tools.join("bin");
    let path = std::env::var("PATH").unwrap_or_default();
    // SAFETY (edition 2021: safe): build scripts are single-threaded here.
    std::env::set_var("PATH", format!("{}:{path}", bin.display()));

    let fail = |what: &str| -> ! {
        panic!(
            "\n\ntcpfr-recorder: cannot build the eBPF programs: {what}.\n\
             Run `scripts/bootstrap.sh` (installs {nightly} with rust-src and bpf-linker into {}),\n\
             or set AYA_BUILD_SKIP=1 to build everything else without them.\n",
            tools.display()
        )
    };
    match Command::new("rustup").args(["run", &nightly, "rustc", "--version"]).output() {
        Ok(o) if o.status.success() => {}
        _ => fail(&format!("toolchain {nightly} is not installed")),
    }
    match Command::new("bpf-linker").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => fail(&format!("bpf-linker does not run: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(_) => fail("bpf-linker is not installed"),
    }

    let ebpf_dir = root.join("recorder-ebpf");
    let pkg = aya_build::Package {
        name: "tcpfr-recorder-ebpf",
        root_dir: ebpf_dir.to_str().unwrap(),
        ..Default::default()
    };
    if let Err(e) = aya_build::build_ebpf([pkg], aya_build::Toolchain::Custom(&nightly)) {
        fail(&format!("{e:#}"));
    }
    match std::fs::metadata(&out) {
        Ok(m) if m.len() > 0 => {}
        _ => fail(&format!("the build reported success but {} is missing", out.display())),
    }
}
