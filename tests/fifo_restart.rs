//! Deduplication survives the server going away: the window is rebuilt from the log tail on
//! start, after a graceful restart and after a real `kill -9` of the server process, so a retry
//! is still answered with the first record's shard and sequence and nothing is stored twice.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shardlog::proto::v1 as pb;

use common::fifo::{create, entry, put};
use common::{read_stream, ChildServer, Deadline, Streams, TestServer};

/// Where an acknowledged record went: `(shard_id, sequence_number)`.
type Place = (String, u64);

/// One put of the workload below: what was sent, so it can be sent again.
#[derive(Debug, Clone)]
struct Sent {
    stream: &'static str,
    key: String,
    data: String,
    group: String,
    dedup: String,
}

impl Sent {
    fn request(&self) -> pb::PutRecordRequest {
        put(self.stream, &self.key, &self.data, &self.group, &self.dedup)
    }
}

/// Creates three streams (stream scope over 4 shards, message-group scope, content-based) and
/// puts deduplicated records into them through PutRecord and PutRecords. Returns every put with
/// where its record went.
async fn put_workload(c: &mut Streams) -> Vec<(Sent, Place)> {
    common::make_stream(c, "by-id", 4).await;
    create(c, "by-group", 3, false, 0, pb::DedupScope::MessageGroup).await;
    create(c, "by-content", 2, true, 0, pb::DedupScope::Stream).await;
    let mut sent = Vec::new();
    for i in 0..20 {
        sent.push(Sent {
            stream: "by-id",
            key: format!("key-{i}"),
            data: format!("single-{i}"),
            group: String::new(),
            dedup: format!("single-{i}"),
        });
    }
    for g in ["g-1", "g-2", "g-3"] {
        for i in 0..5 {
            sent.push(Sent {
                stream: "by-group",
                key: String::new(),
                data: format!("{g}/{i}"),
                group: g.into(),
                // The same ids in every group: the scope keeps them apart.
                dedup: format!("id-{i}"),
            });
        }
    }
    for i in 0..6 {
        sent.push(Sent {
            stream: "by-content",
            key: format!("key-{i}"),
            data: format!("content-{i}"),
            group: String::new(),
            dedup: String::new(),
        });
    }
    let mut out = Vec::new();
    for s in sent {
        let r = c.put_record(s.request()).await.expect("put").into_inner();
        assert!(!r.duplicate, "{s:?} is new");
        out.push((s, (r.shard_id, r.sequence_number)));
    }
    // And a PutRecords of fresh ids over all shards.
    let batch: Vec<Sent> = (0..30)
        .map(|i| Sent {
            stream: "by-id",
            key: format!("batch-key-{i}"),
            data: format!("batch-{i}"),
            group: String::new(),
            dedup: format!("batch-{i}"),
        })
        .collect();
    let res = common::put_records(
        c,
        "by-id",
        batch
            .iter()
            .map(|s| entry(&s.key, &s.data, &s.group, &s.dedup))
            .collect(),
    )
    .await;
    assert_eq!(res.failed_record_count, 0);
    for (s, r) in batch.into_iter().zip(res.records) {
        assert!(!r.duplicate);
        out.push((s, (r.shard_id, r.sequence_number)));
    }
    out
}

/// Sends every put again, once with PutRecord and once inside a PutRecords with the partition
/// key changed, and checks each is a duplicate answered with the original's place.
async fn assert_all_duplicates(c: &mut Streams, workload: &[(Sent, Place)]) {
    for (s, place) in workload {
        let r = c
            .put_record(s.request())
            .await
            .expect("re-put")
            .into_inner();
        assert!(r.duplicate, "{s:?} is remembered");
        assert_eq!(&(r.shard_id, r.sequence_number), place, "{s:?}");
    }
    let mut by_stream: BTreeMap<&str, Vec<&(Sent, Place)>> = BTreeMap::new();
    for w in workload {
        by_stream.entry(w.0.stream).or_default().push(w);
    }
    for (stream, puts) in by_stream {
        let res = common::put_records(
            c,
            stream,
            puts.iter()
                .map(|(s, _)| entry(&format!("other-{}", s.key), &s.data, &s.group, &s.dedup))
                .collect(),
        )
        .await;
        for ((s, place), r) in puts.iter().zip(res.records) {
            assert!(r.duplicate, "{s:?} is remembered in PutRecords");
            assert_eq!(&(r.shard_id, r.sequence_number), place, "{s:?}");
        }
    }
}

async fn stored_count(c: &mut Streams) -> usize {
    let mut n = 0;
    for s in ["by-id", "by-group", "by-content"] {
        n += read_stream(c, s).await.len();
    }
    n
}

#[tokio::test]
async fn dedup_ids_are_remembered_across_a_graceful_restart() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let workload = put_workload(&mut c).await;
    let stored = stored_count(&mut c).await;
    assert_eq!(stored, workload.len());

    let server = server.restart().await;
    let mut c = server.streams().await;
    assert_all_duplicates(&mut c, &workload).await;
    assert_eq!(stored_count(&mut c).await, stored, "no retry was stored");

    // New ids are still new, and land after the recovered records.
    let fresh = c
        .put_record(put("by-id", "key-0", "late", "", "never-seen"))
        .await
        .unwrap()
        .into_inner();
    assert!(!fresh.duplicate);
    let before = workload
        .iter()
        .filter(|(s, p)| s.stream == "by-id" && p.0 == fresh.shard_id)
        .map(|(_, p)| p.1)
        .max();
    assert!(before.is_none_or(|b| fresh.sequence_number > b));
    server.stop().await;
}

#[tokio::test]
async fn ids_whose_window_ended_before_a_restart_are_not_remembered_after_it() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    create(&mut c, "short", 2, false, 1, pb::DedupScope::Stream).await;
    common::make_stream(&mut c, "long", 2).await;
    let old = c
        .put_record(put("short", "k", "old", "", "old"))
        .await
        .unwrap()
        .into_inner();
    let kept = c
        .put_record(put("long", "k", "kept", "", "kept"))
        .await
        .unwrap()
        .into_inner();
    // A probe put after `old`: once the probe is new again, `old`'s window has ended too.
    c.put_record(put("short", "k", "probe", "", "probe"))
        .await
        .unwrap();
    let deadline = Deadline::after(Duration::from_secs(15));
    loop {
        let p = c
            .put_record(put("short", "k", "probe", "", "probe"))
            .await
            .unwrap()
            .into_inner();
        if !p.duplicate {
            break;
        }
        assert!(deadline.tick().await, "the probe id never expired");
    }

    let server = server.restart().await;
    let mut c = server.streams().await;
    let again = c
        .put_record(put("short", "k", "old again", "", "old"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !again.duplicate,
        "an expired id is not brought back by the restart"
    );
    assert!(again.sequence_number > old.sequence_number || again.shard_id != old.shard_id);
    let retry = c
        .put_record(put("long", "k", "kept", "", "kept"))
        .await
        .unwrap()
        .into_inner();
    assert!(retry.duplicate, "an id inside its window is remembered");
    assert_eq!(retry.sequence_number, kept.sequence_number);
    server.stop().await;
}

#[tokio::test]
async fn dedup_ids_are_remembered_after_the_server_process_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let server = ChildServer::spawn(&data, &log).await;
    let mut c = server.streams().await;
    let workload = put_workload(&mut c).await;
    server.kill_9();

    let server = ChildServer::spawn(&data, &log).await;
    let mut c = server.streams().await;
    assert_eq!(
        stored_count(&mut c).await,
        workload.len(),
        "every acknowledged record survived"
    );
    assert_all_duplicates(&mut c, &workload).await;
    assert_eq!(
        stored_count(&mut c).await,
        workload.len(),
        "no retry was stored"
    );
    server.kill_9();
}

#[tokio::test]
async fn puts_cut_off_by_a_kill_are_stored_at_most_once_when_retried() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let server = ChildServer::spawn(&data, &log).await;
    let mut c = server.streams().await;
    common::make_stream(&mut c, "crash", 4).await;

    // Producers put ids one after another, recording every attempt and every ack, until the
    // server dies under them.
    const PRODUCERS: usize = 4;
    let attempted: Arc<Mutex<Vec<String>>> = Arc::default();
    let acked: Arc<Mutex<BTreeMap<String, Place>>> = Arc::default();
    let (enough_tx, mut enough_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let mut c = server.streams().await;
        let attempted = Arc::clone(&attempted);
        let acked = Arc::clone(&acked);
        let enough = enough_tx.clone();
        producers.push(tokio::spawn(async move {
            for i in 0.. {
                let id = format!("p{p}-{i}");
                attempted.lock().unwrap().push(id.clone());
                match c.put_record(put("crash", &id, &id, "", &id)).await {
                    Ok(r) => {
                        let r = r.into_inner();
                        assert!(!r.duplicate);
                        acked
                            .lock()
                            .unwrap()
                            .insert(id, (r.shard_id, r.sequence_number));
                        if i == 50 {
                            let _ = enough.try_send(());
                        }
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    drop(enough_tx);
    enough_rx.recv().await.expect("a producer made progress");
    server.kill_9();
    for p in producers {
        p.await.expect("producer");
    }
    let attempted = attempted.lock().unwrap().clone();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50);

    let server = ChildServer::spawn(&data, &log).await;
    let mut c = server.streams().await;
    let recovered = read_stream(&mut c, "crash").await;
    let recovered_ids: Vec<String> = recovered
        .iter()
        .map(|(_, r)| r.deduplication_id.clone())
        .collect();
    for (id, place) in &acked {
        assert!(
            recovered
                .iter()
                .any(|(s, r)| &r.deduplication_id == id
                    && (s, r.sequence_number) == (&place.0, place.1)),
            "acknowledged {id} at {place:?} was recovered in place"
        );
    }
    // Retry every attempt: acknowledged ones are duplicates at their place; the ones cut off
    // are either found in the log (stored before the kill) or stored now — once.
    for id in &attempted {
        let r = c
            .put_record(put("crash", id, id, "", id))
            .await
            .expect("retry")
            .into_inner();
        if let Some(place) = acked.get(id) {
            assert!(r.duplicate, "{id} was acknowledged before the kill");
            assert_eq!(&(r.shard_id, r.sequence_number), place);
        } else if recovered_ids.contains(id) {
            assert!(r.duplicate, "{id} reached the log before the kill");
        } else {
            assert!(!r.duplicate, "{id} never reached the log");
        }
    }
    let after = read_stream(&mut c, "crash").await;
    let ids: Vec<&str> = after
        .iter()
        .map(|(_, r)| r.deduplication_id.as_str())
        .collect();
    let distinct: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), distinct.len(), "no id is stored twice");
    let expected: BTreeSet<&str> = attempted.iter().map(String::as_str).collect();
    assert_eq!(
        distinct, expected,
        "every attempted id is stored exactly once"
    );
    server.kill_9();
}

#[tokio::test]
async fn a_window_of_many_ids_spread_over_many_segments_is_rebuilt_whole() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut config = shardlog::broker::BrokerConfig::new(dir.path());
        // Small segments and a sparse index: the tail to rebuild spans many files.
        config.log.segment_max_bytes = 64 * 1024;
        config.log.index_interval_bytes = 8 * 1024;
        config
    };
    let server = TestServer::start_with(config()).await;
    let mut c = server.streams().await;
    common::make_stream(&mut c, "many", 2).await;
    const REQUESTS: usize = 50;
    const PER_REQUEST: usize = 500;
    let mut places: Vec<(String, Place)> = Vec::new();
    for r in 0..REQUESTS {
        let ids: Vec<String> = (0..PER_REQUEST).map(|i| format!("id-{r}-{i}")).collect();
        let res = common::put_records(
            &mut c,
            "many",
            ids.iter().map(|id| entry(id, id, "", id)).collect(),
        )
        .await;
        assert_eq!(res.failed_record_count, 0);
        for (id, e) in ids.into_iter().zip(res.records) {
            assert!(!e.duplicate);
            places.push((id, (e.shard_id, e.sequence_number)));
        }
    }
    server.stop().await;

    let server = TestServer::start_with(config()).await;
    let mut c = server.streams().await;
    for chunk in places.chunks(PER_REQUEST) {
        let res = common::put_records(
            &mut c,
            "many",
            chunk
                .iter()
                .map(|(id, _)| entry("another-key", "again", "", id))
                .collect(),
        )
        .await;
        for ((id, place), e) in chunk.iter().zip(res.records) {
            assert!(e.duplicate, "{id} is remembered");
            assert_eq!(&(e.shard_id, e.sequence_number), place, "{id}");
        }
    }
    assert_eq!(
        read_stream(&mut c, "many").await.len(),
        REQUESTS * PER_REQUEST
    );
    server.stop().await;
}
