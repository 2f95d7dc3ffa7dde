//! Group commit: concurrent appends through one `Committer` share writes and syncs, every
//! acknowledgement names the right records, and the fsync policies keep their promises.

mod storage_support;

use std::sync::Arc;
use std::time::Duration;

use shardlog::fsio::faulty::FaultyIo;
use shardlog::fsio::Io;
use shardlog::storage::commit::CommitConfig;
use shardlog::storage::{AppendAck, Committer, FsyncPolicy, LogConfig, ShardLog, StorageError};
use storage_support::*;

/// Longest any test here waits for an event before failing instead of hanging.
const EVENT_DEADLINE: Duration = Duration::from_secs(30);

fn spawn(log: ShardLog, policy: FsyncPolicy) -> Committer {
    Committer::spawn(
        Arc::new(log),
        CommitConfig {
            policy,
            ..CommitConfig::default()
        },
    )
}

fn task_batch(task: usize, n: usize) -> Vec<Rec> {
    tagged_batch(&format!("task{task}-n{n}"), 1 + n % 3, 100)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_appenders_share_syncs_and_every_ack_names_their_records() {
    const TASKS: usize = 16;
    const PER_TASK: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let committer = spawn(
        open_real(dir.path(), LogConfig::default()),
        FsyncPolicy::Always,
    );
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let committer = committer.clone();
            tokio::spawn(async move {
                let mut acks = Vec::new();
                for n in 0..PER_TASK {
                    let ack = committer
                        .append(encode(&task_batch(task, n)))
                        .await
                        .unwrap();
                    acks.push((task, n, ack));
                }
                acks
            })
        })
        .collect();
    let mut acks: Vec<(usize, usize, AppendAck)> = Vec::new();
    for t in tasks {
        acks.extend(t.await.unwrap());
    }
    let log = Arc::clone(committer.log());
    let stats = log.stats();
    let batches = (TASKS * PER_TASK) as u64;
    assert_eq!(stats.batches_appended, batches);
    assert!(
        stats.syncs < batches,
        "{} syncs for {batches} batches: no round held more than one batch",
        stats.syncs
    );
    assert!(
        stats.writes < batches,
        "{} writes for {batches} batches",
        stats.writes
    );
    // Every acknowledgement is durable when given: the log's durable mark covers all of them.
    assert_eq!(log.next_sequence(), seq(stats.records_appended));

    acks.sort_by_key(|(_, _, a)| a.base_sequence);
    let mut next = seq(0);
    for (task, n, ack) in &acks {
        assert_eq!(
            ack.base_sequence, next,
            "acknowledged ranges leave no gap and never overlap"
        );
        let expected = task_batch(*task, *n);
        assert_eq!(ack.record_count as usize, expected.len());
        let got = log
            .read(ack.base_sequence, expected.len(), usize::MAX)
            .unwrap();
        assert_records(&got.records, &expected, ack.base_sequence);
        next += u64::from(ack.record_count);
    }
    // Each task's batches were numbered in the order it appended them.
    for task in 0..TASKS {
        let mine: Vec<usize> = acks
            .iter()
            .filter(|(t, _, _)| *t == task)
            .map(|(_, n, _)| *n)
            .collect();
        assert_eq!(mine, (0..PER_TASK).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_never_policy_acknowledges_without_syncing() {
    let dir = tempfile::tempdir().unwrap();
    let committer = spawn(
        open_real(dir.path(), LogConfig::default()),
        FsyncPolicy::Never,
    );
    let mut expected = Vec::new();
    for n in 0..20 {
        let batch = task_batch(0, n);
        committer.append(encode(&batch)).await.unwrap();
        expected.extend(batch);
    }
    let log = committer.log();
    assert_eq!(log.stats().syncs, 0);
    assert_records(&read_all(log).unwrap(), &expected, seq(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interval_policy_syncs_a_quiet_shard_without_another_append() {
    let dir = tempfile::tempdir().unwrap();
    let committer = spawn(
        open_real(dir.path(), LogConfig::default()),
        FsyncPolicy::Interval(Duration::from_millis(100)),
    );
    let log = Arc::clone(committer.log());
    let mut durable = log.subscribe();
    committer.append(encode(&task_batch(0, 0))).await.unwrap();
    // The append made the batch readable; the timer's sync publishes the mark again.
    tokio::time::timeout(EVENT_DEADLINE, async {
        while log.stats().syncs == 0 {
            durable.changed().await.unwrap();
        }
    })
    .await
    .expect("the periodic sync came");
    assert_eq!(log.stats().syncs, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_handle_closes_the_log_after_a_final_sync() {
    let dir = tempfile::tempdir().unwrap();
    let committer = spawn(
        open_real(dir.path(), LogConfig::default()),
        FsyncPolicy::Never,
    );
    let log = Arc::clone(committer.log());
    committer.append(encode(&task_batch(0, 0))).await.unwrap();
    let mut durable = log.subscribe();
    durable.borrow_and_update();
    let other = committer.clone();
    drop(committer);
    other.append(encode(&task_batch(0, 1))).await.unwrap();
    durable.borrow_and_update();
    drop(other);
    tokio::time::timeout(EVENT_DEADLINE, durable.changed())
        .await
        .expect("the committer closed the log")
        .unwrap();
    assert_eq!(log.stats().syncs, 1);
    let err = log
        .append(&mut [encode(&task_batch(0, 2))], true)
        .unwrap_err();
    assert!(matches!(err, StorageError::Closed { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_round_and_the_committer_goes_on_without_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let log = open_with(
        Arc::new(io.clone()) as Arc<dyn Io>,
        dir.path(),
        LogConfig::default(),
    );
    let committer = spawn(log, FsyncPolicy::Always);
    let first = committer.append(encode(&task_batch(0, 1))).await.unwrap();
    assert_eq!(first.base_sequence, seq(0));
    io.set_space_left(Some(10));
    let err = committer
        .append(encode(&task_batch(0, 2)))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::DiskFull { .. }), "{err:?}");
    io.set_space_left(None);
    let next = committer.append(encode(&task_batch(0, 3))).await.unwrap();
    assert_eq!(next.base_sequence, seq(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_fails_the_round_and_poisons_every_later_append() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let log = open_with(
        Arc::new(io.clone()) as Arc<dyn Io>,
        dir.path(),
        LogConfig::default(),
    );
    let committer = spawn(log, FsyncPolicy::Always);
    committer.append(encode(&task_batch(0, 0))).await.unwrap();
    io.fail_syncs(true);
    let err = committer
        .append(encode(&task_batch(0, 1)))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    io.fail_syncs(false);
    let err = committer
        .append(encode(&task_batch(0, 2)))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Poisoned { .. }), "{err:?}");
    assert_eq!(
        committer.log().next_sequence(),
        seq(1),
        "the failed round was never acknowledged"
    );
}

#[test]
fn fsync_policies_parse_from_their_names() {
    assert_eq!("always".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Always));
    assert_eq!("never".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Never));
    assert!(matches!(
        "interval".parse::<FsyncPolicy>(),
        Ok(FsyncPolicy::Interval(_))
    ));
    assert!("sometimes".parse::<FsyncPolicy>().is_err());
    assert_eq!(FsyncPolicy::default(), FsyncPolicy::Always);
}

#[test]
fn appends_through_a_log_of_its_own_share_nothing_with_another_shard() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let la = ShardLog::open(
        shardlog::fsio::RealIo::shared(),
        a.path(),
        LogConfig::default(),
    )
    .unwrap();
    let lb = ShardLog::open(
        shardlog::fsio::RealIo::shared(),
        b.path(),
        LogConfig::default(),
    )
    .unwrap();
    la.append(&mut [encode(&task_batch(0, 0))], true).unwrap();
    assert_eq!(lb.next_sequence(), seq(0));
    assert_eq!(la.next_sequence(), seq(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ack_survives_a_power_loss_even_when_syncs_start_failing_midway() {
    const TASKS: usize = 16;
    const PER_TASK: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    // Small segments: rounds seal segments while earlier rounds are still syncing.
    let log = open_with(
        Arc::new(io.clone()) as Arc<dyn Io>,
        dir.path(),
        small_config(),
    );
    let committer = spawn(log, FsyncPolicy::Always);
    let log = Arc::clone(committer.log());
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let committer = committer.clone();
            let io = io.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for n in 0..PER_TASK {
                    match committer.append(encode(&task_batch(task, n))).await {
                        Ok(ack) => acked.push((task, n, ack)),
                        Err(e) => {
                            assert!(
                                matches!(
                                    e,
                                    StorageError::Io { .. } | StorageError::Poisoned { .. }
                                ),
                                "{e:?}"
                            );
                            break;
                        }
                    }
                    if task == 0 && n == 10 {
                        io.fail_syncs(true);
                    }
                }
                acked
            })
        })
        .collect();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(
        acked.len() > 10,
        "some appends were acknowledged before the failures"
    );
    assert!(log.poisoned().is_some());
    // The committer ends (and lets go of the log) once every handle is gone.
    drop(committer);
    tokio::time::timeout(EVENT_DEADLINE, async {
        while Arc::strong_count(&log) > 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the committer stopped");
    drop(log);

    io.fail_syncs(false);
    io.power_loss(shardlog::fsio::faulty::Loss::UnsyncedGone);
    let log = open_with(
        Arc::new(io.clone()) as Arc<dyn Io>,
        dir.path(),
        small_config(),
    );
    let recovered = read_all(&log).unwrap();
    for (task, n, ack) in &acked {
        let expected = task_batch(*task, *n);
        let end = ack.base_sequence.get() as usize + expected.len();
        assert!(
            end <= recovered.len(),
            "acknowledged batch {}..{end} lost",
            ack.base_sequence
        );
        assert_records(
            &recovered[ack.base_sequence.get() as usize..end],
            &expected,
            ack.base_sequence,
        );
    }
}
