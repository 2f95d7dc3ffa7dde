//! `kill -9` in the middle of appends loses no acknowledged record: this test binary re-runs
//! itself as a child process that appends through the group committer with `fsync=always`
//! from several tasks, printing every acknowledgement; the parent kills it and checks the log.

mod storage_support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use shardlog::fsio::RealIo;
use shardlog::storage::commit::CommitConfig;
use shardlog::storage::{Committer, FsyncPolicy, LogConfig, ShardLog, StoredRecord};
use storage_support::*;

/// Set in the child's environment: the shard directory to append to.
const CHILD_DIR_ENV: &str = "SHARDLOG_CRASH_CHILD_DIR";
/// Set in the child's environment: which round of kills this child is (tags its records).
const CHILD_ROUND_ENV: &str = "SHARDLOG_CRASH_CHILD_ROUND";
/// The hidden test that is the child.
const CHILD_TEST: &str = "crash_child_appends_until_killed";
/// Appending tasks in the child.
const CHILD_TASKS: u32 = 8;
/// Acknowledgements the parent waits for before each kill.
const ACKS_BEFORE_KILL: usize = 300;
/// Kill rounds on the same directory: each child recovers what the previous one left.
const ROUNDS: u32 = 3;
/// A child that has not printed enough acknowledgements by then is killed and the test fails.
const CHILD_DEADLINE: Duration = Duration::from_secs(120);

/// Segments small enough that the child seals several while it runs.
fn child_config() -> LogConfig {
    LogConfig {
        segment_max_bytes: 64 * 1024,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    }
}

/// The `k`-th record of batch `n` of task `task` in round `round`: its key names it, so any
/// record found in the log can be checked against what the child appended.
fn child_record(round: u32, task: u32, n: u64, k: u64) -> Rec {
    let key = format!("r{round}-t{task}-n{n}-k{k}");
    let len = 40 + ((n * 7 + k * 13) % 300) as usize;
    let data: Vec<u8> = key.bytes().cycle().take(len).collect();
    Rec::plain(&key, &data)
}

fn child_batch(round: u32, task: u32, n: u64) -> Vec<Rec> {
    (0..1 + n % 4)
        .map(|k| child_record(round, task, n, k))
        .collect()
}

/// A check derived from a batch's payloads, printed by the child and recomputed by the parent.
fn batch_check(records: &[Rec]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    for r in records {
        hasher.update(r.key.as_bytes());
        hasher.update(&r.data);
    }
    hasher.finalize()
}

#[test]
#[ignore = "the child process of kill_9_during_appends_loses_no_acknowledged_record"]
fn crash_child_appends_until_killed() {
    let dir = std::env::var(CHILD_DIR_ENV).expect("run only as the crash test's child");
    let round: u32 = std::env::var(CHILD_ROUND_ENV).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let log = ShardLog::open(RealIo::shared(), Path::new(&dir), child_config()).unwrap();
        let committer = Committer::spawn(
            Arc::new(log),
            CommitConfig {
                policy: FsyncPolicy::Always,
                ..CommitConfig::default()
            },
        );
        let tasks: Vec<_> = (0..CHILD_TASKS)
            .map(|task| {
                let committer = committer.clone();
                tokio::spawn(async move {
                    for n in 0u64.. {
                        let records = child_batch(round, task, n);
                        let ack = committer.append(encode(&records)).await.unwrap();
                        // Written straight to the pipe (not through the test harness's capture)
                        // and flushed, so the parent sees every acknowledgement at once.
                        let line = format!(
                            "ACK {} {} {task} {n} {}\n",
                            ack.base_sequence,
                            ack.record_count,
                            batch_check(&records)
                        );
                        let mut out = std::io::stdout().lock();
                        out.write_all(line.as_bytes()).unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// One acknowledged batch as the child printed it.
#[derive(Debug, Clone, Copy)]
struct Ack {
    base: u64,
    count: u64,
    round: u32,
    task: u32,
    n: u64,
    check: u32,
}

fn parse_ack(line: &str, round: u32) -> Option<Ack> {
    let fields: Vec<&str> = line
        .strip_prefix("ACK ")?
        .strip_suffix('\n')?
        .split(' ')
        .collect();
    let [base, count, task, n, check] = fields[..] else {
        return None;
    };
    Some(Ack {
        base: base.parse().ok()?,
        count: count.parse().ok()?,
        round,
        task: task.parse().ok()?,
        n: n.parse().ok()?,
        check: check.parse().ok()?,
    })
}

/// Runs one child on `dir` until it has acknowledged enough, kills it with SIGKILL, and
/// returns every acknowledgement it printed (including those still in the pipe).
fn run_and_kill_child(dir: &Path, round: u32) -> Vec<Ack> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            CHILD_TEST,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let pid = child.id();
    // A child that hangs is killed at the deadline, which ends the pipe and fails the count.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(CHILD_DEADLINE).is_err() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut acks = Vec::new();
    let mut line = String::new();
    while acks.len() < ACKS_BEFORE_KILL {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        acks.extend(parse_ack(&line, round));
    }
    child.kill().expect("SIGKILL the child");
    let status = child.wait().unwrap();
    let _ = done_tx.send(());
    watchdog.join().unwrap();
    // Acknowledgements printed before the kill but not read yet count too; a line cut short
    // by the kill (no newline) is not one.
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        acks.extend(parse_ack(&line, round));
    }
    assert!(
        acks.len() >= ACKS_BEFORE_KILL,
        "the child acknowledged only {} batches before it ended ({status:?})",
        acks.len()
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "the child died of SIGKILL");
    acks
}

/// Checks that `record` is one the child appended: its key names it and its data matches.
fn assert_child_record(record: &StoredRecord) {
    let key = std::str::from_utf8(&record.partition_key).expect("key is text");
    let parts: Vec<u64> = key
        .split('-')
        .map(|p| p[1..].parse().expect("key field is a number"))
        .collect();
    let [round, task, n, k] = parts[..] else {
        panic!("unexpected key {key}")
    };
    let expected = child_record(round as u32, task as u32, n, k);
    assert!(
        expected.is_stored_as(record),
        "record {} is damaged",
        record.sequence
    );
}

#[test]
fn kill_9_during_appends_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut all_acks: Vec<Ack> = Vec::new();
    for round in 0..ROUNDS {
        all_acks.extend(run_and_kill_child(dir.path(), round));

        let log = open_real(dir.path(), child_config());
        assert_eq!(log.first_sequence(), seq(0));
        let recovered = read_all(&log).unwrap();
        assert_eq!(
            recovered.len() as u64,
            log.next_sequence().get(),
            "sequences contiguous from 0"
        );
        for r in &recovered {
            assert_child_record(r);
        }
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for ack in &all_acks {
            let expected = child_batch(ack.round, ack.task, ack.n);
            assert_eq!(ack.count, expected.len() as u64);
            assert_eq!(ack.check, batch_check(&expected));
            let end = ack.base + ack.count;
            assert!(
                end <= recovered.len() as u64,
                "acknowledged batch {}..{end} lost: only {} records recovered",
                ack.base,
                recovered.len()
            );
            assert_records(
                &recovered[ack.base as usize..end as usize],
                &expected,
                seq(ack.base),
            );
            ranges.push((ack.base, end));
        }
        ranges.sort_unstable();
        for pair in ranges.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "two acknowledgements share sequences: {pair:?}"
            );
        }
        assert!(
            log.stats().segments > 1 || round == 0,
            "the children sealed segments"
        );
    }
}
