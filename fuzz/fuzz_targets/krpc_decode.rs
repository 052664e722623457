//! Arbitrary datagrams into the KRPC decoder: no panic; a decoded message round-trips.
#![no_main]
use estudely_krpc::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Message::salvage_query_tid(data);
    if let Ok(m) = Message::decode(data) {
        let bytes = m.encode();
        assert_eq!(Message::decode(&bytes).expect("our encoding decodes"), m);
    }
});
