//! Arbitrary bytes cut into frames (each a 2-byte length, then that many
//! bytes) go to netd as a guest's frames: netd must not panic, and must
//! still answer a well-formed ARP request afterwards. The bounded version
//! runs in the test suite (`nym-hvt`'s `net::frames_from_a_hostile_guest`).
#![no_main]

use libfuzzer_sys::fuzz_target;

const GUEST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0f];

fn arp_request() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend(GUEST_MAC);
    f.extend([0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend(GUEST_MAC);
    f.extend(nym_hvt_abi::NET_GUEST_IP);
    f.extend([0; 6]);
    f.extend(nym_hvt_abi::NET_HOST_IP);
    f
}

fuzz_target!(|data: &[u8]| {
    let mut frames: Vec<&[u8]> = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 && frames.len() < 64 {
        let n = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        frames.push(&rest[2..2 + n]);
        rest = &rest[2 + n..];
    }
    let arp = arp_request();
    frames.push(&arp);
    let back = nym_hvt::net::fuzz_frames(&frames).expect("netd starts");
    assert!(
        back.iter().any(|f| f.len() >= 42 && f[12..14] == [8, 6] && f[20..22] == [0, 2]),
        "netd stopped answering ARP"
    );
});
