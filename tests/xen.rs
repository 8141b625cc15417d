//! The xen target end to end, on a real Xen 4.17 hypervisor running in
//! QEMU: the image boots as Xen's PVH dom0, talks to Xen through its
//! hypercall page (console_io, shared-info clock, SCHEDOP_poll,
//! SCHEDOP_shutdown), and its output and status come back to nym.
mod common;
use common::{nym, project, rewrite, run, stderr, stdout, xen_available};

#[test]
fn hello_and_kv_on_xen_print_what_they_print_in_process() {
    if !xen_available() {
        return;
    }
    let (_tmp, dir) = project("xenhello", "hello");
    let unix = run(nym(&dir).args(["run", "--", "--count", "3", "--pause", "300ms"]));
    let xen = run(nym(&dir).args([
        "run", "--target", "xen", "--", "--count", "3", "--pause", "300ms",
    ]));
    assert!(xen.status.success(), "exit {:?}", xen.status);
    assert_eq!(
        stdout(&xen),
        stdout(&unix),
        "the clock and the sleeps work under Xen too"
    );

    let (_tmp2, kv) = project("xenstore", "kv");
    let unix = run(nym(&kv).arg("run"));
    let xen = run(nym(&kv).args(["run", "--target", "xen"]));
    assert!(xen.status.success(), "exit {:?}", xen.status);
    assert_eq!(stdout(&xen), stdout(&unix));
}

#[test]
fn build_for_xen_writes_an_xl_config() {
    if !xen_available() {
        return;
    }
    let (_tmp, dir) = project("xencfg", "hello");
    let out = run(nym(&dir).args(["build", "--target", "xen", "--", "--count", "5"]));
    assert!(out.status.success());
    let cfg = std::path::PathBuf::from(stdout(&out).trim());
    assert_eq!(cfg, dir.join("target/nym/xen/xencfg.cfg"));
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("type = \"pvh\""), "{text}");
    assert!(
        text.contains(&format!(
            "kernel = \"{}\"",
            dir.join("target/nym/xen/xencfg.elf").display()
        )),
        "{text}"
    );
    assert!(text.contains("on_crash = \"destroy\""), "{text}");
    assert!(
        text.contains("cmdline = \"--count 5\""),
        "the keys go on the command line: {text}"
    );
    assert!(dir.join("target/nym/xen/xencfg.elf").is_file());
}

#[test]
fn a_guest_that_panics_under_xen_reports_it_and_fails() {
    if !xen_available() {
        return;
    }
    let (_tmp, dir) = project("xenpanic", "hello");
    rewrite(
        &dir,
        "#![no_std]\nuse libos::Console;\npub async fn start(c: impl Console) {\n    let _ = c.log(\"about to panic\").await;\n    panic!(\"xen guest gave up\");\n}\n",
        "let j = job xenpanic::start(console::default());\nregister(\"xenpanic\", [j]);\n",
    );
    let out = run(nym(&dir).args(["run", "--target", "xen"]));
    assert_eq!(out.status.code(), Some(101), "{}", stderr(&out));
    assert!(stdout(&out).contains("about to panic"));
    assert!(
        stdout(&out).contains("xen guest gave up"),
        "the panic message: {}",
        stdout(&out)
    );
}
