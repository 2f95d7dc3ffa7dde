//! A reshard cut short by a crash: the server process aborts (as `kill -9` would) at each step
//! of the switch, chosen through `SHARDLOG_CRASH_AT`, and the restarted server must show either
//! the old layout or the new one — never a mix — with every acknowledged record in place.

mod common;

use common::{list_shards, make_stream, put, ChildServer, Streams};
use shardlog::broker::CRASH_AT_ENV;
use shardlog::proto::v1 as pb;

/// A put acknowledged before the crash: where it went and what it held.
type Acked = (String, u64, String);

async fn put_some(c: &mut Streams, prefix: &str, n: usize) -> Vec<Acked> {
    let mut acked = Vec::new();
    for i in 0..n {
        let data = format!("{prefix}-{i}");
        let r = put(c, "s", &format!("key-{i}"), data.clone()).await;
        acked.push((r.shard_id, r.sequence_number, data));
    }
    acked
}

async fn assert_stored(c: &mut Streams, acked: &[Acked]) {
    for (shard, seq, data) in acked {
        let it = common::iterator(
            c,
            "s",
            shard,
            pb::ShardIteratorType::AtSequenceNumber,
            Some(*seq),
            None,
        )
        .await;
        let got = common::get_records(c, &it, 1).await;
        let r = got
            .records
            .first()
            .unwrap_or_else(|| panic!("{shard}/{seq} lost"));
        assert_eq!((r.sequence_number, &r.data[..]), (*seq, data.as_bytes()));
    }
}

/// Runs `reshard` in a server that aborts at `step`, restarts it, and returns the client of
/// the restarted server, the layout it shows and the records acknowledged before the crash.
async fn crash_during(
    step: &str,
    dir: &std::path::Path,
    reshard: impl AsyncFnOnce(&mut Streams) -> Result<(), tonic::Status>,
) -> (ChildServer, Vec<pb::Shard>, Vec<Acked>) {
    let log = dir.join("server.log");
    let data = dir.join("data");
    let server = ChildServer::spawn_with_env(&data, &log, &[(CRASH_AT_ENV, step)]).await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 2).await;
    let acked = put_some(&mut c, "before", 20).await;
    let outcome = reshard(&mut c).await;
    assert!(outcome.is_err(), "{step}: the server should have aborted");
    let status = server.wait_exit().await;
    assert!(!status.success(), "{step}: aborted, not exited cleanly");
    let server = ChildServer::spawn(&data, &log).await;
    let mut c = server.streams().await;
    let shards = list_shards(&mut c, "s").await;
    (server, shards, acked)
}

/// Splits the stream's first shard (keys below 2^127) at 2^126.
fn split_first_shard() -> pb::SplitShardRequest {
    pb::SplitShardRequest {
        stream_name: "s".into(),
        shard_to_split: "shardId-000000000000".into(),
        new_starting_hash_key: (1u128 << 126).to_string(),
    }
}

fn shard_dirs(data: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join("streams").join("s"))
        .expect("the stream's directory")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_split_cut_short_before_its_switch_leaves_the_old_layout_and_no_orphan_shards() {
    for step in ["reshard:children-opened", "reshard:puts-drained"] {
        let dir = tempfile::tempdir().unwrap();
        let (server, shards, acked) = crash_during(step, dir.path(), async |c| {
            c.split_shard(split_first_shard()).await.map(drop)
        })
        .await;
        let ids: Vec<&str> = shards.iter().map(|s| s.shard_id.as_str()).collect();
        assert_eq!(
            ids,
            ["shardId-000000000000", "shardId-000000000001"],
            "{step}"
        );
        assert!(
            shards.iter().all(|s| s.ending_sequence_number.is_none()),
            "{step}"
        );
        assert_eq!(
            shard_dirs(&dir.path().join("data")),
            ["shardId-000000000000", "shardId-000000000001"],
            "{step}: the new shards' directories are removed"
        );
        let mut c = server.streams().await;
        assert_stored(&mut c, &acked).await;
        // The stream works, and the split can be made now.
        let more = put_some(&mut c, "after", 5).await;
        c.split_shard(split_first_shard())
            .await
            .unwrap_or_else(|e| panic!("{step}: split after restart: {e}"));
        assert_stored(&mut c, &acked).await;
        assert_stored(&mut c, &more).await;
    }
}

#[tokio::test]
async fn a_split_cut_short_after_its_switch_leaves_the_new_layout_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (server, shards, acked) = crash_during("reshard:switched", dir.path(), async |c| {
        c.split_shard(split_first_shard()).await.map(drop)
    })
    .await;
    let in_parent = acked
        .iter()
        .filter(|(s, _, _)| s == "shardId-000000000000")
        .count() as u64;
    assert_eq!(shards.len(), 4);
    assert_eq!(shards[0].ending_sequence_number, Some(in_parent));
    assert_eq!(shards[1].ending_sequence_number, None);
    for child in &shards[2..] {
        assert_eq!(
            child.parent_shard_id.as_deref(),
            Some("shardId-000000000000")
        );
        assert_eq!(child.ending_sequence_number, None);
    }
    let mut c = server.streams().await;
    assert_stored(&mut c, &acked).await;
    // Later puts go to the children and the open parent of old, never to the closed shard.
    let more = put_some(&mut c, "after", 20).await;
    assert!(more.iter().all(|(s, _, _)| s != "shardId-000000000000"));
    assert_stored(&mut c, &more).await;
}

#[tokio::test]
async fn a_scaling_cut_short_after_its_switch_is_whole_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (server, shards, acked) = crash_during("reshard:switched", dir.path(), async |c| {
        c.update_shard_count(pb::UpdateShardCountRequest {
            stream_name: "s".into(),
            target_shard_count: 3,
            scaling_type: pb::ScalingType::UniformScaling as i32,
        })
        .await
        .map(drop)
    })
    .await;
    let open: Vec<_> = shards
        .iter()
        .filter(|s| s.ending_sequence_number.is_none())
        .collect();
    assert_eq!(open.len(), 3);
    let mut c = server.streams().await;
    assert_stored(&mut c, &acked).await;
    let more = put_some(&mut c, "after", 10).await;
    assert!(more
        .iter()
        .all(|(s, _, _)| open.iter().any(|o| &o.shard_id == s)));
}
