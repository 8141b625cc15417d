//! A `kv_dir::Dir` is one process's: while another process has the store
//! open, opening it is refused (and its temporary files are left alone);
//! once that process is gone, even killed, the store opens again.
//!
//! The test re-executes its own binary as the other process: with
//! `NYM_KV_LOCK_CHILD=<dir>` set, the test function opens the store, says
//! so on standard output and waits to be killed.
use nym_unix::devices::kv_dir::Dir;
use std::{
    env, fs,
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
};

const CHILD_ENV: &str = "NYM_KV_LOCK_CHILD";
const TEST_NAME: &str = "a_store_another_process_has_open_is_refused";

#[test]
fn a_store_another_process_has_open_is_refused() {
    if let Some(dir) = env::var_os(CHILD_ENV) {
        hold(Path::new(&dir));
    }
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let store = tmp.path().join("store");
    let mut child = Command::new(env::current_exe().expect("the test binary's path"))
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &store)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the other process starts");
    let stdout = child.stdout.take().expect("its output");
    let opened = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("store open"));
    assert!(opened, "the other process never opened the store");

    let temp = store.join(".tmp.4242.1");
    fs::write(&temp, b"the other process's write in flight").expect("a temporary file");
    let err = Dir::open(&store)
        .err()
        .expect("a store another process has open is refused");
    assert!(
        err.to_string().contains("the store is already open"),
        "{err}"
    );
    assert!(temp.exists(), "the refused open deleted nothing");

    child.kill().expect("SIGKILL the other process");
    child.wait().expect("reap it");
    Dir::open(&store).expect("the store opens once its owner is gone");
    assert!(!temp.exists(), "and a dead writer's files go");
}

/// The other process: opens the store and keeps it until killed.
fn hold(dir: &Path) -> ! {
    let _kv = Dir::open(dir).expect("the other process opens the store");
    println!("store open");
    loop {
        std::thread::park();
    }
}
