//! Bloom filter lookups against an object store: what they cost in requests and how they
//! fail.

use std::sync::Arc;

use object_store::ObjectStoreExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use rand::{Rng as _, SeedableRng};
use skein_format::Error;
use skein_format::TraceId;
use skein_format::bloom::{BloomFilter, block_range, may_contain_remote};
use skein_testkit::counting::CountingStore;

fn random_id(rng: &mut rand::rngs::SmallRng) -> TraceId {
    TraceId(rng.random())
}

fn id(hex: &str) -> TraceId {
    TraceId::from_hex(hex).expect("test ids are valid hex")
}

fn sequential(n: u128) -> TraceId {
    TraceId(n.to_be_bytes())
}

#[tokio::test]
async fn remote_lookup_is_one_32_byte_get() {
    let counting = CountingStore::new(Arc::new(InMemory::new()));
    let path = Path::from("tenant/block/bloom");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
    let inserted: Vec<_> = (0..1000).map(|_| random_id(&mut rng)).collect();
    let mut filter = BloomFilter::with_capacity(inserted.len());
    inserted.iter().for_each(|id| filter.insert(id));
    counting.put(&path, filter.to_bytes().into()).await.unwrap();
    counting.reset();

    let n = filter.num_blocks();
    for id in &inserted[..10] {
        assert!(
            may_contain_remote(counting.as_ref(), &path, n, id)
                .await
                .unwrap()
        );
    }
    let absent = random_id(&mut rng);
    assert_eq!(
        may_contain_remote(counting.as_ref(), &path, n, &absent)
            .await
            .unwrap(),
        filter.may_contain(&absent)
    );

    let counts = counting.snapshot();
    assert_eq!(
        (counts.gets, counts.get_bytes, counts.heads),
        (11, 11 * 32, 0)
    );
    let reads = counting.reads();
    assert!(
        reads
            .iter()
            .all(|r| r.path == "tenant/block/bloom" && r.bytes == 32)
    );
    assert_eq!(reads[0].range, Some(block_range(n, &inserted[0])));
}

#[tokio::test]
async fn remote_lookup_errors() {
    let counting = CountingStore::new(Arc::new(InMemory::new()));
    let path = Path::from("bloom");
    let err = may_contain_remote(counting.as_ref(), &path, 4, &id("1"))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");

    // A zero block count is refused before any request.
    counting.reset();
    let err = may_contain_remote(counting.as_ref(), &path, 0, &id("1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert_eq!(counting.snapshot().gets, 0);

    // A block count larger than the object's: the read fails or comes back short (unless
    // the ID maps to block 0, which exists).
    let filter = BloomFilter::with_capacity(16);
    counting.put(&path, filter.to_bytes().into()).await.unwrap();
    let beyond_block_0 = (1..50)
        .map(sequential)
        .filter(|t| block_range(1000, t).start > 16);
    for trace in beyond_block_0 {
        assert!(
            may_contain_remote(counting.as_ref(), &path, 1000, &trace)
                .await
                .is_err()
        );
    }
}
