//! A key-value store on any block device (`kv::block(block)`), re-exported
//! as [`kv::Block`](crate::kv::Block): how a unikernel keeps a store on the
//! disk its monitor serves it.
//!
//! The format and its guarantees are documented on [`Block`], the one public
//! item, so that they show where users find the store.
use crate::{
    block::{BlockError, BlockInfo},
    kv::{keys_with_prefix, lookup, validate_key, KvError},
    Block as BlockDevice, BoxFuture, IoError, Kv, KvRo,
};
use alloc::{boxed::Box, collections::BTreeMap, string::String, vec, vec::Vec};
use core::{
    future::Future,
    ops::Bound,
    task::{Poll, Waker},
};

/// The first bytes of every header.
const MAGIC: &[u8; 8] = b"NYMKV001";
/// The bytes of a header that mean something.
const HEADER_LEN: usize = 52;
/// The smallest sector a header fits in (a power of two).
const MIN_SECTOR_SIZE: u32 = 64;

const NOT_A_STORE: &str = "kv::block: the device holds neither a store nor zeros \
    (it is corrupt, or something else wrote it); refusing to use it";
const MALFORMED: &str = "kv::block: the newest snapshot passes its checksum but does not parse";
const RESIZED: &str = "kv::block: the device's geometry differs from the one the store was written on (was it resized?)";
const TOO_SMALL: &str =
    "kv::block: the device is too small for a store (it needs at least 4 sectors)";
const SECTORS_TOO_SMALL: &str =
    "kv::block: the device's sectors are too small for a store header (at least 64 bytes)";
const EXHAUSTED: &str = "kv::block: the store has used up its generation numbers";
const BAD_REQUEST: &str = "kv::block: the device refused a request that fits its geometry";

/// A key-value store kept on the block device `B` (`kv::block(block)`).
///
/// ## On disk
///
/// The device is cut into two equal *slots*, A (from sector 0) and B (from
/// sector `sectors / 2`); an odd last sector is unused. A slot is a header
/// sector followed by payload sectors. The payload is the whole store, one
/// snapshot, all integers little-endian:
///
/// ```text
/// count: u32, then count × (key_len: u32, key, value_len: u32, value)
/// ```
///
/// with the keys in ascending order. The header's first 52 bytes are
///
/// ```text
/// 0  magic "NYMKV001"      8  generation: u64     16 payload length: u64
/// 24 payload FNV-1a-64     32 sector size: u32    36 slot sectors: u64
/// 44 FNV-1a-64 of bytes 0..44
/// ```
///
/// and the rest of the sector is zeros. Generations count commits from 1;
/// odd ones live in slot A, even ones in slot B, so a commit always
/// overwrites the older slot and never the newest. A store holds at most
/// `(sectors / 2 - 1) × sector size` bytes of payload; a write that would not
/// fit fails with [`KvError::NoSpace`] and changes nothing.
///
/// ## Crash safety
///
/// A commit writes the payload, flushes, writes the header, and flushes
/// again, so a header on the disk means its payload is there too, even on a
/// device that reorders writes between flushes. Opening reads both headers
/// and takes the newest slot whose header and payload checksums hold; a
/// crash at any point leaves the previous snapshot intact in the other slot,
/// so every value is old or new, never torn, and the store always opens.
/// This assumes what every such format assumes: writing one sector leaves
/// it old or new.
///
/// A device whose two header sectors are all zeros has never been written:
/// it is an empty store. A device with no valid slot that is *not* zeros
/// is refused with a [`KvError::Io`] that says so (it is corrupt, or
/// something else wrote it), so the store never silently discards, or
/// overwrites, data it cannot read. So is a store whose headers name
/// another geometry than the device's (the device was resized).
///
/// ## Concurrency
///
/// [`Block::new`] touches nothing; the store is read on first use and then
/// kept in memory, so reads never wait for the disk. Loads and commits take
/// a small async lock (its waiters sleep, they do not spin) held across
/// their I/O, so commits reach the disk one at a time and in order. A
/// commit changes the in-memory store only once it is durable; if its I/O
/// fails, what reached the disk is unknown, so the store forgets its
/// in-memory copy and reads the disk again on next use.
pub struct Block<B> {
    device: B,
    /// Held by whoever loads the store or commits to it, across their I/O.
    io: AsyncLock,
    /// The committed store, once loaded; readers look here without waiting.
    state: spin::Mutex<Option<State>>,
}

/// The store as it is on the disk.
struct State {
    map: BTreeMap<String, Vec<u8>>,
    /// The newest snapshot's generation; 0 for a device never written.
    generation: u64,
}

impl<B: BlockDevice> Block<B> {
    /// A store on `device`. Nothing is read until the store is first used, so
    /// a corrupt device is reported by the first operation, not here.
    pub fn new(device: B) -> Self {
        Self {
            device,
            io: AsyncLock::default(),
            state: spin::Mutex::new(None),
        }
    }

    /// Runs `f` on the loaded store, loading it first if needed.
    async fn read<T>(&self, f: impl FnOnce(&State) -> T) -> Result<T, KvError> {
        loop {
            if let Some(state) = &*self.state.lock() {
                return Ok(f(state));
            }
            let _io = self.io.lock().await;
            let missing = self.state.lock().is_none();
            if missing {
                let state = self.load().await?;
                *self.state.lock() = Some(state);
            }
        }
    }

    /// Stores `value` under `key`, or removes `key` if `value` is `None`.
    async fn commit(&self, key: &str, value: Option<&[u8]>) -> Result<(), KvError> {
        validate_key(key)?;
        let info = self.device.info();
        if !info.writable {
            return Err(KvError::ReadOnly);
        }
        let layout = Layout::of(info)?;
        let _io = self.io.lock().await;
        let planned = loop {
            if let Some(state) = &*self.state.lock() {
                break plan(state, key, value, layout.capacity())?;
            }
            let state = self.load().await?;
            *self.state.lock() = Some(state);
        };
        let Some((generation, payload)) = planned else {
            return Ok(());
        };
        if let Err(e) = self.write_snapshot(layout, generation, payload).await {
            // Whether the snapshot reached the disk is unknown: forget what
            // we think is there and read it again on next use.
            *self.state.lock() = None;
            return Err(e);
        }
        if let Some(state) = &mut *self.state.lock() {
            match value {
                Some(value) => {
                    state.map.insert(key.into(), value.to_vec());
                }
                None => {
                    state.map.remove(key);
                }
            }
            state.generation = generation;
        }
        Ok(())
    }

    /// Reads the newest valid snapshot from the device.
    async fn load(&self) -> Result<State, KvError> {
        let layout = Layout::of(self.device.info())?;
        let mut blank = true;
        let mut found = Vec::new();
        for slot in [0, 1] {
            let mut sector = vec![0; layout.sector_bytes()];
            self.device
                .read(layout.start(slot), &mut sector)
                .await
                .map_err(kv_error)?;
            blank &= sector.iter().all(|&b| b == 0);
            if let Some(header) = Header::decode(&sector) {
                if slot_of(header.generation) == slot {
                    found.push((slot, header));
                }
            }
        }
        found.sort_by_key(|(_, h)| core::cmp::Reverse(h.generation));
        for (slot, header) in found {
            if header.sector_size != layout.sector_size
                || header.slot_sectors != layout.slot_sectors
            {
                return Err(corrupt(RESIZED));
            }
            if header.len > layout.capacity() {
                continue;
            }
            let len = usize::try_from(header.len).map_err(|_| corrupt(NOT_A_STORE))?;
            let mut payload = vec![0; layout.padded(len)];
            self.device
                .read(layout.start(slot) + 1, &mut payload)
                .await
                .map_err(kv_error)?;
            payload.truncate(len);
            if fnv1a(&payload) == header.checksum {
                return Ok(State {
                    map: decode(&payload).ok_or(corrupt(MALFORMED))?,
                    generation: header.generation,
                });
            }
            // A commit that did not finish: the other slot has the one before.
        }
        if blank {
            Ok(State {
                map: BTreeMap::new(),
                generation: 0,
            })
        } else {
            Err(corrupt(NOT_A_STORE))
        }
    }

    /// Writes `payload` as snapshot `generation`, durably.
    async fn write_snapshot(
        &self,
        layout: Layout,
        generation: u64,
        mut payload: Vec<u8>,
    ) -> Result<(), KvError> {
        let slot = slot_of(generation);
        let header = Header {
            generation,
            len: payload.len() as u64,
            checksum: fnv1a(&payload),
            sector_size: layout.sector_size,
            slot_sectors: layout.slot_sectors,
        };
        payload.resize(layout.padded(payload.len()), 0);
        self.device
            .write(layout.start(slot) + 1, &payload)
            .await
            .map_err(kv_error)?;
        // The payload must be durable before a header vouches for it.
        self.device.flush().await.map_err(kv_error)?;
        let mut sector = vec![0; layout.sector_bytes()];
        header.encode(&mut sector);
        self.device
            .write(layout.start(slot), &sector)
            .await
            .map_err(kv_error)?;
        self.device.flush().await.map_err(kv_error)
    }
}

impl<B: BlockDevice> KvRo for Block<B> {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, KvError>> {
        Box::pin(async move {
            validate_key(key)?;
            self.read(|state| lookup(&state.map, key)).await?
        })
    }
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, KvError>> {
        Box::pin(async move {
            self.read(|state| keys_with_prefix(&state.map, prefix))
                .await
        })
    }
}

impl<B: BlockDevice> Kv for Block<B> {
    fn set<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(self.commit(key, Some(value)))
    }
    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(self.commit(key, None))
    }
}

/// Where the slots are on a device.
#[derive(Debug, Clone, Copy)]
struct Layout {
    sector_size: u32,
    /// Sectors per slot, the header's included.
    slot_sectors: u64,
}

impl Layout {
    fn of(info: BlockInfo) -> Result<Layout, KvError> {
        if info.sector_size < MIN_SECTOR_SIZE {
            return Err(corrupt(SECTORS_TOO_SMALL));
        }
        let slot_sectors = info.sectors / 2;
        if slot_sectors < 2 {
            return Err(corrupt(TOO_SMALL));
        }
        Ok(Layout {
            sector_size: info.sector_size,
            slot_sectors,
        })
    }

    fn sector_bytes(self) -> usize {
        self.sector_size as usize
    }

    /// The header sector of slot 0 (A) or 1 (B).
    fn start(self, slot: u64) -> u64 {
        slot * self.slot_sectors
    }

    /// The most payload bytes a slot holds.
    fn capacity(self) -> u64 {
        (self.slot_sectors - 1).saturating_mul(u64::from(self.sector_size))
    }

    /// `len` rounded up to whole sectors.
    fn padded(self, len: usize) -> usize {
        len.div_ceil(self.sector_bytes()) * self.sector_bytes()
    }
}

/// The slot holding generation `generation`: odd ones in A, even ones in B.
fn slot_of(generation: u64) -> u64 {
    if generation % 2 == 1 {
        0
    } else {
        1
    }
}

/// A slot's header, checked: one that [`Header::decode`] returns was written
/// whole by a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    generation: u64,
    len: u64,
    checksum: u64,
    sector_size: u32,
    slot_sectors: u64,
}

impl Header {
    /// Writes the header to the start of `sector` (zeros, a sector long).
    fn encode(&self, sector: &mut [u8]) {
        sector[..8].copy_from_slice(MAGIC);
        sector[8..16].copy_from_slice(&self.generation.to_le_bytes());
        sector[16..24].copy_from_slice(&self.len.to_le_bytes());
        sector[24..32].copy_from_slice(&self.checksum.to_le_bytes());
        sector[32..36].copy_from_slice(&self.sector_size.to_le_bytes());
        sector[36..44].copy_from_slice(&self.slot_sectors.to_le_bytes());
        let own = fnv1a(&sector[..44]);
        sector[44..HEADER_LEN].copy_from_slice(&own.to_le_bytes());
    }

    /// The header at the start of `sector`, if it is one and is whole.
    fn decode(sector: &[u8]) -> Option<Header> {
        let bytes = sector.get(..HEADER_LEN)?;
        if &bytes[..8] != MAGIC || fnv1a(&bytes[..44]) != u64_at(bytes, 44)? {
            return None;
        }
        let header = Header {
            generation: u64_at(bytes, 8)?,
            len: u64_at(bytes, 16)?,
            checksum: u64_at(bytes, 24)?,
            sector_size: u32::from_le_bytes(bytes.get(32..36)?.try_into().ok()?),
            slot_sectors: u64_at(bytes, 36)?,
        };
        (header.generation != 0).then_some(header)
    }
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The snapshot `state` would become with `key` set to `value` (removed if
/// `None`), with its generation; `None` if that changes nothing.
fn plan(
    state: &State,
    key: &str,
    value: Option<&[u8]>,
    capacity: u64,
) -> Result<Option<(u64, Vec<u8>)>, KvError> {
    let unchanged = match value {
        Some(value) => state.map.get(key).is_some_and(|old| old == value),
        None => !state.map.contains_key(key),
    };
    if unchanged {
        return Ok(None);
    }
    fn entry<'m>((k, v): (&'m String, &'m Vec<u8>)) -> (&'m str, &'m [u8]) {
        (k.as_str(), v.as_slice())
    }
    let before = state
        .map
        .range::<str, _>((Bound::Unbounded, Bound::Excluded(key)))
        .map(entry);
    let after = state
        .map
        .range::<str, _>((Bound::Excluded(key), Bound::Unbounded))
        .map(entry);
    let payload = encode(before.chain(value.map(|v| (key, v))).chain(after), capacity)?;
    let generation = state.generation.checked_add(1).ok_or(corrupt(EXHAUSTED))?;
    Ok(Some((generation, payload)))
}

/// The payload holding `entries` (in key order), if it fits in `capacity`.
fn encode<'e>(
    entries: impl Iterator<Item = (&'e str, &'e [u8])> + Clone,
    capacity: u64,
) -> Result<Vec<u8>, KvError> {
    let mut count = 0u32;
    let mut size = 4u64;
    for (key, value) in entries.clone() {
        count = count.checked_add(1).ok_or(KvError::NoSpace)?;
        u32::try_from(value.len()).map_err(|_| KvError::NoSpace)?;
        size = size.saturating_add(8 + key.len() as u64 + value.len() as u64);
    }
    if size > capacity {
        return Err(KvError::NoSpace);
    }
    let mut out = Vec::with_capacity(usize::try_from(size).map_err(|_| KvError::NoSpace)?);
    out.extend_from_slice(&count.to_le_bytes());
    for (key, value) in entries {
        // Both lengths fit: keys are at most MAX_KEY_LEN, values were checked above.
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
    Ok(out)
}

/// The store in `payload`, if it is well formed: valid keys in strictly
/// ascending order and nothing after the last entry.
fn decode(payload: &[u8]) -> Option<BTreeMap<String, Vec<u8>>> {
    let mut r = Reader(payload);
    let mut map = BTreeMap::new();
    for _ in 0..r.u32()? {
        let key_len = r.u32()?;
        let key = core::str::from_utf8(r.take(key_len)?).ok()?;
        validate_key(key).ok()?;
        if map
            .last_key_value()
            .is_some_and(|(last, _): (&String, _)| last.as_str() >= key)
        {
            return None;
        }
        let value_len = r.u32()?;
        map.insert(String::from(key), r.take(value_len)?.to_vec());
    }
    r.0.is_empty().then_some(map)
}

/// The unread rest of a payload.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: u32) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(usize::try_from(n).ok()?)?;
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// FNV-1a, 64 bits: catches torn and partial writes (it is no defence
/// against someone forging a snapshot, which needs no defence here).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn corrupt(why: &'static str) -> KvError {
    KvError::Io(IoError::Other(why))
}

fn kv_error(e: BlockError) -> KvError {
    match e {
        BlockError::ReadOnly => KvError::ReadOnly,
        BlockError::Io(e) => KvError::Io(e),
        BlockError::OutOfRange { .. } | BlockError::Unaligned { .. } => corrupt(BAD_REQUEST),
    }
}

/// A mutual-exclusion lock that may be held across `.await`: a task that
/// finds it taken sleeps until it is released.
///
/// Releasing wakes every waiter and they race for the lock again. That is
/// not fair, but it is simple and safe when a waiting future is dropped (its
/// stale waker is woken for nothing and nobody is left asleep); commits to
/// one store are rarely contended.
#[derive(Default)]
struct AsyncLock {
    inner: spin::Mutex<LockInner>,
}

#[derive(Default)]
struct LockInner {
    locked: bool,
    waiters: Vec<Waker>,
}

struct AsyncLockGuard<'a>(&'a AsyncLock);

impl AsyncLock {
    fn lock(&self) -> impl Future<Output = AsyncLockGuard<'_>> + Send + '_ {
        core::future::poll_fn(move |cx| {
            let mut inner = self.inner.lock();
            if !inner.locked {
                inner.locked = true;
                return Poll::Ready(AsyncLockGuard(self));
            }
            if !inner.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                inner.waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
    }
}

impl Drop for AsyncLockGuard<'_> {
    fn drop(&mut self) {
        let waiters = {
            let mut inner = self.0.inner.lock();
            inner.locked = false;
            core::mem::take(&mut inner.waiters)
        };
        for waker in waiters {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{block::Mem, job::block_on};
    use alloc::{string::ToString, sync::Arc};
    use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    type Contents = BTreeMap<String, Vec<u8>>;

    fn disk(sectors: u64) -> Arc<Mem> {
        Arc::new(Mem::new(sectors, 512))
    }

    /// Everything in `store`, read through its public interface.
    async fn contents(store: &impl KvRo) -> Result<Contents, KvError> {
        let mut out = BTreeMap::new();
        for key in store.list("").await? {
            let value = store.get(&key).await?;
            out.insert(key, value);
        }
        Ok(out)
    }

    /// Everything on `disk`, read by a store opened afresh.
    fn reopened(disk: &Arc<Mem>) -> Result<Contents, KvError> {
        block_on(contents(&Block::new(disk.clone())))
    }

    fn raw(disk: &Mem) -> Vec<u8> {
        let info = disk.info();
        let mut all = vec![0; (info.sectors * u64::from(info.sector_size)) as usize];
        block_on(disk.read(0, &mut all)).unwrap();
        all
    }

    fn is_refusal(result: Result<impl core::fmt::Debug, KvError>, what: &str) -> bool {
        matches!(result, Err(KvError::Io(IoError::Other(m))) if m.contains(what))
    }

    #[test]
    fn set_get_list_remove() {
        let store = Block::new(disk(64));
        block_on(async {
            store.set("b", b"2").await.unwrap();
            store.set("a/1", b"1").await.unwrap();
            store.set("a/2", b"x").await.unwrap();
            store.set("a/2", b"y").await.unwrap();
            assert_eq!(store.get("a/1").await.unwrap(), b"1");
            assert_eq!(store.get("a/2").await.unwrap(), b"y");
            assert_eq!(
                store.list("a/").await.unwrap(),
                vec!["a/1".to_string(), "a/2".into()]
            );
            store.remove("a/1").await.unwrap();
            store.remove("never-set").await.unwrap();
            assert_eq!(store.get("a/1").await, Err(KvError::NotFound("a/1".into())));
            assert_eq!(store.list("").await.unwrap(), vec!["a/2", "b"]);
            assert_eq!(
                store.set("", b"").await,
                Err(KvError::InvalidKey(crate::kv::InvalidKey::Empty))
            );
            assert_eq!(
                store.get("a\nb").await,
                Err(KvError::InvalidKey(crate::kv::InvalidKey::ControlChar))
            );
        });
    }

    #[test]
    fn a_zeroed_device_is_an_empty_store() {
        let store = Block::new(disk(64));
        block_on(async {
            assert_eq!(store.list("").await.unwrap(), Vec::<String>::new());
            assert_eq!(store.get("k").await, Err(KvError::NotFound("k".into())));
        });
    }

    #[test]
    fn the_store_survives_reopening_after_every_commit() {
        let disk = disk(64);
        let mut model = Contents::new();
        for i in 0..12u8 {
            let store = Block::new(disk.clone());
            let key = ["k0", "k1", "k2"][usize::from(i % 3)];
            if i % 4 == 3 {
                block_on(store.remove(key)).unwrap();
                model.remove(key);
            } else {
                let value = vec![i; 100 * usize::from(i)];
                block_on(store.set(key, &value)).unwrap();
                model.insert(key.into(), value);
            }
            assert_eq!(reopened(&disk), Ok(model.clone()), "after commit {i}");
        }
    }

    #[test]
    fn a_write_that_does_not_fit_fails_and_changes_nothing() {
        // 8 sectors: two slots of 4, each a header and 3 × 512 bytes of payload.
        let disk = disk(8);
        let store = Block::new(disk.clone());
        block_on(async {
            store.set("a", &[1; 1000]).await.unwrap();
            assert_eq!(store.set("b", &[2; 600]).await, Err(KvError::NoSpace));
            assert_eq!(store.set("a", &[3; 1600]).await, Err(KvError::NoSpace));
            assert_eq!(store.get("a").await.unwrap(), [1; 1000]);
            assert_eq!(store.get("b").await, Err(KvError::NotFound("b".into())));
            assert_eq!(reopened(&disk).unwrap().len(), 1);
            // 4 + (9 + 1000) + (9 + 500) bytes: just fits.
            store.set("b", &[2; 500]).await.unwrap();
        });
        let all = reopened(&disk).unwrap();
        assert_eq!((all["a"].len(), all["b"].len()), (1000, 500));
    }

    #[test]
    fn a_device_that_is_neither_a_store_nor_zeros_is_refused_and_left_alone() {
        let disk = disk(64);
        let mut noise = vec![0u8; 64 * 512];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for b in &mut noise {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        block_on(disk.write(0, &noise)).unwrap();
        let store = Block::new(disk.clone());
        block_on(async {
            assert!(is_refusal(
                store.get("k").await,
                "neither a store nor zeros"
            ));
            assert!(is_refusal(
                store.list("").await,
                "neither a store nor zeros"
            ));
            assert!(is_refusal(
                store.set("k", b"v").await,
                "neither a store nor zeros"
            ));
        });
        assert_eq!(raw(&disk), noise, "nothing was written");
    }

    #[test]
    fn a_damaged_newest_snapshot_gives_the_one_before_and_two_are_refused() {
        let disk = disk(64);
        let store = Block::new(disk.clone());
        block_on(async {
            store.set("a", b"1").await.unwrap(); // generation 1, slot A (sector 0)
            store.set("b", b"2").await.unwrap(); // generation 2, slot B (sector 32)
        });
        let flip = |sector: u64| {
            let mut buf = [0u8; 512];
            block_on(disk.read(sector, &mut buf)).unwrap();
            buf[5] ^= 1;
            block_on(disk.write(sector, &buf)).unwrap();
        };
        flip(33);
        assert_eq!(
            reopened(&disk),
            Ok([("a".to_string(), b"1".to_vec())].into())
        );
        flip(0);
        assert!(is_refusal(reopened(&disk), "neither a store nor zeros"));
    }

    #[test]
    fn a_resized_device_is_refused() {
        let small = disk(64);
        block_on(Block::new(small.clone()).set("k", b"v")).unwrap();
        let big = disk(128);
        block_on(big.write(0, &raw(&small))).unwrap();
        assert!(is_refusal(reopened(&big), "geometry"));
    }

    #[test]
    fn a_device_too_small_is_reported() {
        let store = Block::new(disk(3));
        assert!(is_refusal(block_on(store.set("k", b"v")), "too small"));
    }

    #[test]
    fn a_read_only_device_serves_reads_and_refuses_writes() {
        struct ReadOnly(Arc<Mem>);
        impl BlockDevice for ReadOnly {
            fn info(&self) -> BlockInfo {
                BlockInfo {
                    writable: false,
                    ..self.0.info()
                }
            }
            fn read<'a>(
                &'a self,
                s: u64,
                b: &'a mut [u8],
            ) -> BoxFuture<'a, Result<(), BlockError>> {
                self.0.read(s, b)
            }
            fn write<'a>(&'a self, _: u64, _: &'a [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
                Box::pin(async { Err(BlockError::ReadOnly) })
            }
            fn flush(&self) -> BoxFuture<'_, Result<(), BlockError>> {
                self.0.flush()
            }
        }
        let disk = disk(64);
        block_on(Block::new(disk.clone()).set("k", b"v")).unwrap();
        let store = Block::new(ReadOnly(disk));
        block_on(async {
            assert_eq!(store.get("k").await.unwrap(), b"v");
            assert_eq!(store.set("k", b"w").await, Err(KvError::ReadOnly));
            assert_eq!(store.remove("k").await, Err(KvError::ReadOnly));
        });
    }

    /// A device whose every operation first waits once, so that futures
    /// polled together interleave their I/O.
    struct Yielding(Arc<Mem>);

    impl BlockDevice for Yielding {
        fn info(&self) -> BlockInfo {
            self.0.info()
        }
        fn read<'a>(&'a self, s: u64, b: &'a mut [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
            Box::pin(async move {
                crate::task::yield_now().await;
                self.0.read(s, b).await
            })
        }
        fn write<'a>(&'a self, s: u64, d: &'a [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
            Box::pin(async move {
                crate::task::yield_now().await;
                self.0.write(s, d).await
            })
        }
        fn flush(&self) -> BoxFuture<'_, Result<(), BlockError>> {
            Box::pin(async move {
                crate::task::yield_now().await;
                self.0.flush().await
            })
        }
    }

    #[test]
    fn concurrent_writes_commit_one_at_a_time() {
        let disk = disk(64);
        let store = Block::new(Yielding(disk.clone()));
        let mut futures = [
            store.set("a", b"1"),
            store.set("b", b"2"),
            store.set("c", b"3"),
            store.remove("a"),
        ]
        .map(Some);
        let mut done = 0;
        block_on(core::future::poll_fn(|cx| {
            for slot in &mut futures {
                if let Some(fut) = slot {
                    if let Poll::Ready(result) = fut.as_mut().poll(cx) {
                        assert_eq!(result, Ok(()));
                        *slot = None;
                        done += 1;
                    }
                }
            }
            if done == 4 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }));
        let expected: Contents = [("b".into(), b"2".to_vec()), ("c".into(), b"3".to_vec())].into();
        assert_eq!(block_on(contents(&store)), Ok(expected.clone()));
        assert_eq!(reopened(&disk), Ok(expected));
        assert_eq!(
            store.state.lock().as_ref().map(|s| s.generation),
            Some(4),
            "four commits, none lost"
        );
    }

    /// One change to a store, for the crash tests.
    #[derive(Clone)]
    enum Op {
        Set(&'static str, Vec<u8>),
        Remove(&'static str),
    }

    impl Op {
        async fn run(&self, store: &impl Kv) -> Result<(), KvError> {
            match self {
                Op::Set(key, value) => store.set(key, value).await,
                Op::Remove(key) => store.remove(key).await,
            }
        }

        fn apply(&self, map: &mut Contents) {
            match self {
                Op::Set(key, value) => {
                    map.insert((*key).into(), value.clone());
                }
                Op::Remove(key) => {
                    map.remove(*key);
                }
            }
        }
    }

    /// Crash scenarios: the commits that fill the store, then the commit
    /// that is cut short. Together they cut a commit to each slot, the very
    /// first one (when the other slot is blank) included, with payloads of
    /// several sectors.
    fn scenarios() -> Vec<(Vec<Op>, Op)> {
        let set = |k, n: usize, b: u8| Op::Set(k, vec![b; n]);
        vec![
            (vec![], set("a", 700, 1)),
            (vec![set("a", 600, 2)], set("b", 300, 3)),
            (vec![set("a", 600, 2), set("b", 300, 3)], set("a", 900, 4)),
            (
                vec![set("a", 600, 2), set("b", 300, 3), set("c", 10, 5)],
                Op::Remove("b"),
            ),
        ]
    }

    /// A fresh disk holding `before`, with its contents.
    fn prepared(before: &[Op]) -> (Arc<Mem>, Contents) {
        let disk = disk(64);
        let store = Block::new(disk.clone());
        let mut model = Contents::new();
        for op in before {
            block_on(op.run(&store)).unwrap();
            op.apply(&mut model);
        }
        (disk, model)
    }

    /// What a [`PowerCut`] does once its power is cut.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Cut {
        /// Writes and flushes fail.
        Fail,
        /// Writes and flushes seem to succeed but change nothing.
        Lose,
    }

    /// A device whose power is cut after `budget` sector writes, applied in
    /// order: the next write or flush fails or is lost, and so is everything
    /// after it.
    struct PowerCut {
        disk: Arc<Mem>,
        budget: AtomicUsize,
        written: AtomicUsize,
        off: AtomicBool,
        cut: Cut,
    }

    impl PowerCut {
        fn new(disk: Arc<Mem>, budget: usize, cut: Cut) -> Self {
            Self {
                disk,
                budget: AtomicUsize::new(budget),
                written: AtomicUsize::new(0),
                off: AtomicBool::new(false),
                cut,
            }
        }

        fn outcome(&self) -> Result<(), BlockError> {
            match self.cut {
                Cut::Fail => Err(BlockError::Io(IoError::Other("power cut"))),
                Cut::Lose => Ok(()),
            }
        }
    }

    impl BlockDevice for PowerCut {
        fn info(&self) -> BlockInfo {
            self.disk.info()
        }
        fn read<'a>(&'a self, s: u64, b: &'a mut [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
            self.disk.read(s, b)
        }
        fn write<'a>(&'a self, s: u64, d: &'a [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
            Box::pin(async move {
                crate::block::check_request(&self.info(), s, d.len())?;
                for (n, sector) in (s..).zip(d.chunks(512)) {
                    if self.off.load(Ordering::Relaxed) || self.budget.load(Ordering::Relaxed) == 0
                    {
                        self.off.store(true, Ordering::Relaxed);
                        return self.outcome();
                    }
                    self.budget.fetch_sub(1, Ordering::Relaxed);
                    self.written.fetch_add(1, Ordering::Relaxed);
                    self.disk.write(n, sector).await?;
                }
                Ok(())
            })
        }
        fn flush(&self) -> BoxFuture<'_, Result<(), BlockError>> {
            Box::pin(async move {
                if self.off.load(Ordering::Relaxed) || self.budget.load(Ordering::Relaxed) == 0 {
                    self.off.store(true, Ordering::Relaxed);
                    return self.outcome();
                }
                self.disk.flush().await
            })
        }
    }

    #[test]
    fn a_power_cut_after_any_sector_write_leaves_the_old_store_or_the_new() {
        for (before, op) in scenarios() {
            let (disk, old) = prepared(&before);
            let mut new = old.clone();
            op.apply(&mut new);
            let counter = Arc::new(PowerCut::new(disk, usize::MAX, Cut::Fail));
            block_on(op.run(&Block::new(counter.clone()))).unwrap();
            let writes = counter.written.load(Ordering::Relaxed);
            assert!(writes >= 3, "the payload spans sectors: {writes} writes");

            for budget in 0..=writes {
                for cut in [Cut::Fail, Cut::Lose] {
                    let (disk, _) = prepared(&before);
                    let store = Block::new(Arc::new(PowerCut::new(disk.clone(), budget, cut)));
                    let result = block_on(op.run(&store));
                    let what = alloc::format!("{cut:?} after {budget} of {writes} writes");
                    let after = reopened(&disk).unwrap_or_else(|e| panic!("{what}: {e}"));
                    // The header is the commit's last write: until it lands,
                    // the old snapshot is the newest whole one.
                    let expected = if budget < writes { &old } else { &new };
                    assert_eq!(&after, expected, "{what}");
                    if cut == Cut::Fail {
                        // Even with every write done, the last flush fails.
                        assert!(result.is_err(), "{what}");
                        assert_eq!(
                            block_on(contents(&store)).as_ref(),
                            Ok(expected),
                            "{what}: after a failed commit the store reads the disk again"
                        );
                    }
                }
            }
        }
    }

    /// A device with a volatile write cache: a write is durable only once
    /// flushed. The power is cut at flush number `flushes` (from 0): that
    /// flush and everything after it does nothing, and [`WriteBack::crash`]
    /// then lets any subset of the cached sectors reach the disk, in any
    /// order, as a real disk's cache might.
    struct WriteBack {
        disk: Arc<Mem>,
        flushes: AtomicUsize,
        off: AtomicBool,
        cached: spin::Mutex<Vec<(u64, Vec<u8>)>>,
    }

    impl WriteBack {
        fn new(disk: Arc<Mem>, flushes: usize) -> Self {
            Self {
                disk,
                flushes: AtomicUsize::new(flushes),
                off: AtomicBool::new(false),
                cached: spin::Mutex::new(Vec::new()),
            }
        }

        /// Writes the cached sectors whose bit is set in `survivors`.
        fn crash(&self, survivors: u32) {
            for (i, (sector, data)) in self.cached.lock().iter().enumerate() {
                if survivors & (1 << i) != 0 {
                    block_on(self.disk.write(*sector, data)).unwrap();
                }
            }
        }
    }

    impl BlockDevice for WriteBack {
        fn info(&self) -> BlockInfo {
            self.disk.info()
        }
        fn read<'a>(&'a self, s: u64, b: &'a mut [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
            Box::pin(async move {
                self.disk.read(s, b).await?;
                for (sector, data) in self.cached.lock().iter() {
                    if let Some(i) = sector.checked_sub(s).map(|i| i as usize * 512) {
                        if let Some(dst) = b.get_mut(i..i + 512) {
                            dst.copy_from_slice(data);
                        }
                    }
                }
                Ok(())
            })
        }
        fn write<'a>(&'a self, s: u64, d: &'a [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
            Box::pin(async move {
                crate::block::check_request(&self.info(), s, d.len())?;
                if !self.off.load(Ordering::Relaxed) {
                    let mut cached = self.cached.lock();
                    for (n, sector) in (s..).zip(d.chunks(512)) {
                        cached.retain(|(c, _)| *c != n);
                        cached.push((n, sector.to_vec()));
                    }
                }
                Ok(())
            })
        }
        fn flush(&self) -> BoxFuture<'_, Result<(), BlockError>> {
            Box::pin(async move {
                if self.off.load(Ordering::Relaxed) || self.flushes.load(Ordering::Relaxed) == 0 {
                    self.off.store(true, Ordering::Relaxed);
                    return Ok(());
                }
                self.flushes.fetch_sub(1, Ordering::Relaxed);
                let cached = core::mem::take(&mut *self.cached.lock());
                for (sector, data) in cached {
                    self.disk.write(sector, &data).await?;
                }
                self.disk.flush().await
            })
        }
    }

    #[test]
    fn a_power_cut_that_loses_any_unflushed_writes_leaves_the_old_store_or_the_new() {
        for (before, op) in scenarios() {
            let (_, old) = prepared(&before);
            let mut new = old.clone();
            op.apply(&mut new);
            let mut outcomes = (false, false);
            // A commit flushes twice; 2 lets it finish.
            for flushes in 0..=2 {
                let cached = {
                    let (disk, _) = prepared(&before);
                    let device = Arc::new(WriteBack::new(disk, flushes));
                    block_on(op.run(&Block::new(device.clone()))).unwrap();
                    let n = device.cached.lock().len();
                    n
                };
                assert!(cached <= 8, "{cached} cached sectors: too many subsets");
                for survivors in 0..1u32 << cached {
                    let (disk, _) = prepared(&before);
                    let device = Arc::new(WriteBack::new(disk.clone(), flushes));
                    block_on(op.run(&Block::new(device.clone()))).unwrap();
                    device.crash(survivors);
                    let what = alloc::format!("cut at flush {flushes}, survivors {survivors:b}");
                    let after = reopened(&disk).unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert!(after == old || after == new, "{what}: {after:?}");
                    outcomes.0 |= after == old;
                    outcomes.1 |= after == new;
                }
            }
            assert_eq!(outcomes, (true, true), "both outcomes were reached");
        }
    }
}
