//! Decode throughput on a ~1 MB torrent file made by libtorrent (see data/README.md).
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let torrent = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/data/big.torrent"
    ))
    .expect("benches/data/big.torrent");
    let mut g = c.benchmark_group("bencode");
    g.throughput(Throughput::Bytes(torrent.len() as u64));
    g.bench_function("decode_1mb_torrent", |b| {
        b.iter(|| {
            let v = estudely_bencode::decode(std::hint::black_box(&torrent)).expect("decodes");
            std::hint::black_box(v.get(b"info").map(|i| i.raw().len()))
        })
    });
    let v = estudely_bencode::decode(&torrent).expect("decodes");
    let owned = estudely_bencode::OwnedValue::from(&v);
    g.bench_function("encode_1mb_torrent", |b| {
        b.iter(|| std::hint::black_box(owned.to_bytes()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
