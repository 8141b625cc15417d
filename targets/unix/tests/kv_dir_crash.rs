//! A writer killed at random points never leaves a torn or partial value in
//! a `kv_dir::Dir`.
//!
//! The test re-executes its own binary as the writer: with
//! `NYM_KV_CRASH_CHILD=<dir>` set, the test function opens the store at
//! `<dir>` and rewrites a few keys forever with self-verifying values (a
//! sequence number, a length, a payload derived from both, and an FNV-64
//! checksum). The parent kills it with SIGKILL after a pseudo-random 5–60 ms,
//! reopens the store and checks every value whole; over 25 rounds the kill
//! lands before, inside and after writes of 1 byte to 256 KiB. Set
//! `NYM_KV_CRASH_SEED` to replay the delays of a failed run (the seed is
//! printed).
//!
//! A SIGKILL leaves the page cache intact, so this checks atomicity against
//! a crashed process, not durability against a power cut.
use libos::{Kv, KvRo};
use nym_unix::devices::kv_dir::Dir;
use std::{
    collections::HashSet,
    env, fs,
    io::Read,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime},
};

const CHILD_ENV: &str = "NYM_KV_CRASH_CHILD";
const SEED_ENV: &str = "NYM_KV_CRASH_SEED";
const TEST_NAME: &str = "a_killed_writer_never_leaves_a_torn_value";
const ROUNDS: usize = 25;
/// Rounds stop being started after this, to keep the test short on a slow disk.
const BUDGET: Duration = Duration::from_secs(15);
/// Sequence number and payload length, before the payload.
const HEADER: usize = 16;
/// The checksum, after it.
const TRAILER: usize = 8;

/// The keys the writer rewrites: a plain one, escaped ones, and one too long
/// to encode as a file name.
fn keys() -> Vec<String> {
    vec![
        "plain".into(),
        "dir/with space".into(),
        "ünïcødé/ключ".into(),
        format!("long/{}", "鍵".repeat(60)),
    ]
}

#[test]
fn a_killed_writer_never_leaves_a_torn_value() {
    if let Some(dir) = env::var_os(CHILD_ENV) {
        write_forever(Path::new(&dir));
    }

    let seed = match env::var(SEED_ENV) {
        Ok(s) => s.parse().expect("NYM_KV_CRASH_SEED is a u64"),
        Err(_) => time_seed(),
    };
    eprintln!("kv_dir crash test: seed {seed} (set {SEED_ENV}={seed} to replay the delays)");
    let mut rng = XorShift::new(seed);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let store = tmp.path().join("store");
    let exe = env::current_exe().expect("the test binary's path");
    let keys = keys();
    let start = Instant::now();
    let (mut rounds, mut leftovers, mut values_seen) = (0, 0, HashSet::new());

    while rounds < ROUNDS && start.elapsed() < BUDGET {
        rounds += 1;
        let mut child = Command::new(&exe)
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the writer starts");
        thread::sleep(Duration::from_millis(5 + rng.next() % 56));
        if let Some(status) = child.try_wait().expect("the writer's status") {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            panic!("round {rounds}: the writer stopped by itself ({status}):\n{stderr}");
        }
        child.kill().expect("SIGKILL the writer");
        child.wait().expect("reap the writer");

        leftovers += temp_files(&store);
        let kv = Dir::open(&store).expect("the store reopens after a crash");
        assert_eq!(
            temp_files(&store),
            0,
            "round {rounds}: open deletes the temporary files"
        );
        for key in block_on(kv.list("")).expect("list") {
            assert!(
                keys.contains(&key),
                "round {rounds}: listed a key never written: {key:?}"
            );
            let value = block_on(kv.get(&key)).expect("a listed key reads");
            match check(&value) {
                Ok(seq) => values_seen.insert((key, seq)),
                Err(why) => panic!("round {rounds}, key {key:?}: torn value: {why}"),
            };
        }
    }

    let kv = Dir::open(&store).expect("the store reopens");
    let stored = block_on(kv.list("")).expect("list");
    eprintln!(
        "kv_dir crash test: {rounds} rounds in {:?}, {} distinct values seen, \
         {leftovers} temporary files left by kills, keys at the end: {stored:?}",
        start.elapsed(),
        values_seen.len(),
    );
    assert!(
        !stored.is_empty(),
        "the writer never completed a write in {rounds} rounds, so nothing was checked"
    );
}

/// The child: rewrites every key, round and round, until it is killed.
fn write_forever(dir: &Path) -> ! {
    let kv = Dir::open(dir).expect("the writer opens the store");
    let keys = keys();
    let mut seq = time_seed();
    loop {
        for key in &keys {
            seq = seq.wrapping_add(1);
            block_on(kv.set(key, &value(seq))).expect("the writer's set");
        }
    }
}

/// The self-verifying value for `seq`: its sequence number, the payload's
/// length, the payload, and the FNV-64 of all of those.
fn value(seq: u64) -> Vec<u8> {
    // Lengths are spread over 1 byte to 256 KiB on a logarithmic scale.
    let r = XorShift::new(seq).next();
    let len = 1 + (r >> 8) as usize % (1 << (r % 19));
    let mut v = Vec::with_capacity(HEADER + len + TRAILER);
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(&(len as u64).to_le_bytes());
    v.extend(payload(seq, len));
    let sum = fnv64(&v);
    v.extend_from_slice(&sum.to_le_bytes());
    v
}

fn payload(seq: u64, len: usize) -> impl Iterator<Item = u8> {
    let mut rng = XorShift::new(seq ^ 0xa5a5_a5a5_a5a5_a5a5);
    (0..len).map(move |_| rng.next() as u8)
}

/// The value's sequence number if it is whole, or what is wrong with it.
fn check(v: &[u8]) -> Result<u64, String> {
    if v.len() < HEADER + TRAILER {
        return Err(format!(
            "{} bytes is shorter than a header and a checksum",
            v.len()
        ));
    }
    let word = |at: usize| u64::from_le_bytes(v[at..at + 8].try_into().expect("8 bytes"));
    let (seq, len) = (word(0), word(8));
    if v.len() as u64 != HEADER as u64 + len + TRAILER as u64 {
        return Err(format!("{} bytes for a payload of {len}", v.len()));
    }
    let body = v.len() - TRAILER;
    if fnv64(&v[..body]) != word(body) {
        return Err(format!(
            "checksum mismatch (seq {seq}, payload {len} bytes)"
        ));
    }
    if !v[HEADER..body]
        .iter()
        .copied()
        .eq(payload(seq, len as usize))
    {
        return Err(format!("payload differs from seq {seq}'s"));
    }
    Ok(seq)
}

fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The number of temporary files in the store (names starting `.tmp.`).
fn temp_files(store: &Path) -> usize {
    match fs::read_dir(store) {
        Ok(entries) => entries
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with(".tmp."))
            })
            .count(),
        Err(_) => 0,
    }
}

fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(fut)
}

fn time_seed() -> u64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32)
}

/// Marsaglia's xorshift64: enough to pick delays and fill payloads.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // A zero state would stay zero; mix the seed so nearby seeds diverge.
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[test]
fn values_check_out_whole_and_fail_when_cut_or_changed() {
    for seq in [1, 2, 77, u64::MAX] {
        let v = value(seq);
        assert_eq!(check(&v), Ok(seq));
        assert!(check(&v[..v.len() - 1]).is_err(), "a cut value fails");
        let mut flipped = v.clone();
        flipped[HEADER] ^= 1;
        assert!(check(&flipped).is_err(), "a changed value fails");
    }
    let lens: Vec<usize> = (0..2000)
        .map(|s| value(s).len() - HEADER - TRAILER)
        .collect();
    assert!(lens.iter().all(|&l| (1..=256 * 1024).contains(&l)));
    assert!(
        lens.iter().any(|&l| l > 64 * 1024),
        "large values are written too"
    );
    assert!(lens.iter().any(|&l| l < 16), "and small ones");
}
