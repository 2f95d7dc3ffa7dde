// Drives shardlog's Kinesis endpoint with the AWS SDK for JavaScript v3 over HTTP/2 cleartext
// (NodeHttp2Handler on an http:// endpoint: h2c with prior knowledge), every call included.
// The point is SubscribeToShard: an application/vnd.amazon.eventstream body over an HTTP/2
// stream, an initial-response and then SubscribeToShardEvent events.
//
// Usage: node tests/kinesis/node/suite.mjs http://127.0.0.1:PORT
// (after `npm ci --prefix tests/kinesis/node`). Prints one line per passed check; on the first
// failure prints the check and the reason to stderr and exits 1. Exits 1 as well if the whole
// run takes longer than OVERALL_TIMEOUT_MS.

import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

import {
  KinesisClient,
  CreateStreamCommand,
  DeleteStreamCommand,
  DescribeStreamSummaryCommand,
  ListShardsCommand,
  PutRecordCommand,
  PutRecordsCommand,
  RegisterStreamConsumerCommand,
  DescribeStreamConsumerCommand,
  SubscribeToShardCommand,
} from "@aws-sdk/client-kinesis";
import { NodeHttp2Handler } from "@smithy/node-http-handler";

const OVERALL_TIMEOUT_MS = 60_000;
/** How long one wait for a subscription event may take. */
const EVENT_TIMEOUT_MS = 15_000;
/** Kinesis refuses a second SubscribeToShard for a consumer and shard within this time. */
const RESUBSCRIBE_INTERVAL_MS = 5_000;
const ACCOUNT = "000000000000";
const REGION = "us-east-1";
const SHARD = "shardId-000000000000";

const endpoint = process.argv[2];
if (!endpoint) {
  console.error("usage: node suite.mjs http://127.0.0.1:PORT");
  process.exit(2);
}

const overall = setTimeout(() => {
  console.error(`FAIL: the suite did not finish within ${OVERALL_TIMEOUT_MS / 1000} s (last check: ${current})`);
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

/** A NodeHttp2Handler that counts the requests it carries, so the suite can show that every
 * call (SubscribeToShard included) went over HTTP/2. */
class CountingHttp2Handler extends NodeHttp2Handler {
  handled = [];
  handle(request, options) {
    this.handled.push(request.headers["x-amz-target"] ?? request.headers["X-Amz-Target"] ?? "?");
    return super.handle(request, options);
  }
}

const handler = new CountingHttp2Handler({ requestTimeout: 20_000, sessionTimeout: 30_000 });
const client = new KinesisClient({
  endpoint,
  region: REGION,
  credentials: { accessKeyId: "x", secretAccessKey: "x" },
  requestHandler: handler,
  maxAttempts: 1,
});

const run = randomBytes(5).toString("hex");
const stream = `sdk-node-${run}`;
const streamArn = `arn:aws:kinesis:${REGION}:${ACCOUNT}:stream/${stream}`;
let current = "setup";
/** Every subscription's abort controller, so that none outlives the suite. */
const subscriptions = [];

class CheckFailed extends Error {}

function assert(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

function sameBytes(a, b) {
  return Buffer.from(a).equals(Buffer.from(b));
}

function hex(bytes) {
  const s = Buffer.from(bytes).toString("hex");
  return s.length > 80 ? `${s.slice(0, 80)}... (${bytes.length} bytes)` : s;
}

async function expectError(name, promise) {
  try {
    const out = await promise;
    throw new CheckFailed(`expected ${name}, but the call succeeded: ${JSON.stringify(out)}`);
  } catch (e) {
    if (e instanceof CheckFailed) throw e;
    assert(
      e.name === name,
      `expected ${name}, got ${e.name}: ${e.message} (HTTP ${e.$metadata?.httpStatusCode})`,
    );
    assert(e.$metadata?.httpStatusCode === 400, `HTTP status of ${name}: ${e.$metadata?.httpStatusCode}`);
    return e;
  }
}

/** Opens a subscription; returns its async iterator of events and its abort controller. */
async function subscribe(consumerArn, startingPosition) {
  const abort = new AbortController();
  subscriptions.push(abort);
  const out = await client.send(
    new SubscribeToShardCommand({ ConsumerARN: consumerArn, ShardId: SHARD, StartingPosition: startingPosition }),
    { abortSignal: abort.signal },
  );
  assert(out.EventStream, "SubscribeToShard answered without an EventStream");
  return { events: out.EventStream[Symbol.asyncIterator](), abort, metadata: out.$metadata };
}

/** The next SubscribeToShardEvent of a subscription, waited for at most EVENT_TIMEOUT_MS. */
async function nextEvent(sub) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new CheckFailed(`no subscription event within ${EVENT_TIMEOUT_MS / 1000} s`)),
      EVENT_TIMEOUT_MS,
    );
  });
  try {
    const { value, done } = await Promise.race([sub.events.next(), timeout]);
    assert(!done, "the subscription ended early");
    assert(value.SubscribeToShardEvent, `unexpected event: ${JSON.stringify(value)}`);
    const ev = value.SubscribeToShardEvent;
    assert(Array.isArray(ev.Records), `event without Records: ${JSON.stringify(ev)}`);
    assert(typeof ev.MillisBehindLatest === "number" && ev.MillisBehindLatest >= 0,
      `MillisBehindLatest ${ev.MillisBehindLatest}`);
    assert(typeof ev.ContinuationSequenceNumber === "string" && /^(0|[1-9][0-9]*)$/.test(ev.ContinuationSequenceNumber),
      `ContinuationSequenceNumber ${JSON.stringify(ev.ContinuationSequenceNumber)}`);
    if (ev.Records.length > 0) {
      const last = ev.Records[ev.Records.length - 1].SequenceNumber;
      assert(ev.ContinuationSequenceNumber === last,
        `ContinuationSequenceNumber ${ev.ContinuationSequenceNumber} of an event whose last record is ${last}`);
    }
    return ev;
  } finally {
    clearTimeout(timer);
  }
}

/** Reads events until `count` records have arrived; returns them and the events read. */
async function receive(sub, count) {
  const records = [];
  const events = [];
  while (records.length < count) {
    const ev = await nextEvent(sub);
    events.push(ev);
    records.push(...ev.Records);
  }
  return { records, events };
}

function close(sub) {
  sub.abort.abort();
  // Let the iterator see the abort; a rejection here is the abort itself.
  sub.events.return?.().catch(() => {});
}

// ---------------------------------------------------------------------------------------------

const state = {};

const checks = [
  async function create_stream() {
    await client.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 1 }));
    const s = (await client.send(new DescribeStreamSummaryCommand({ StreamName: stream })))
      .StreamDescriptionSummary;
    assert(s.StreamStatus === "ACTIVE", `StreamStatus ${s.StreamStatus}`);
    assert(s.StreamARN === streamArn, `StreamARN ${s.StreamARN}`);
    assert(s.OpenShardCount === 1, `OpenShardCount ${s.OpenShardCount}`);
    const shards = (await client.send(new ListShardsCommand({ StreamName: stream }))).Shards;
    assert(shards.length === 1 && shards[0].ShardId === SHARD, `shards ${JSON.stringify(shards)}`);
  },

  async function register_consumer() {
    const c = (await client.send(
      new RegisterStreamConsumerCommand({ StreamARN: streamArn, ConsumerName: "h2-reader" }),
    )).Consumer;
    assert(c.ConsumerName === "h2-reader", `ConsumerName ${c.ConsumerName}`);
    assert(c.ConsumerARN.startsWith(`${streamArn}/consumer/h2-reader:`), `ConsumerARN ${c.ConsumerARN}`);
    const d = (await client.send(new DescribeStreamConsumerCommand({ ConsumerARN: c.ConsumerARN })))
      .ConsumerDescription;
    assert(d.ConsumerStatus === "ACTIVE", `ConsumerStatus ${d.ConsumerStatus}`);
    assert(d.StreamARN === streamArn, `StreamARN ${d.StreamARN}`);
    state.consumerArn = c.ConsumerARN;
  },

  async function put_records() {
    const all = new Uint8Array(256).map((_, i) => i);
    const datas = [
      all,
      new Uint8Array(0),
      Uint8Array.from(all).reverse(),
      new TextEncoder().encode("héllo, wörld"),
      randomBytes(10_000),
    ];
    const out = await client.send(new PutRecordsCommand({
      StreamName: stream,
      Records: datas.map((Data, i) => ({ Data, PartitionKey: `pk-${i}` })),
    }));
    assert(out.FailedRecordCount === 0, `FailedRecordCount ${out.FailedRecordCount}`);
    assert(out.Records.length === datas.length, `${out.Records.length} results`);
    const one = await client.send(new PutRecordCommand({
      StreamName: stream, PartitionKey: "pk-one", Data: new Uint8Array([0, 255, 0, 255]),
    }));
    datas.push(new Uint8Array([0, 255, 0, 255]));
    const seqs = [...out.Records.map((r) => r.SequenceNumber), one.SequenceNumber];
    for (const s of seqs) assert(/^(0|[1-9][0-9]*)$/.test(s), `SequenceNumber ${s}`);
    state.before = datas;
    state.beforeSeqs = seqs;
  },

  async function subscribe_trim_horizon_reads_everything() {
    const started = Date.now();
    const sub = await subscribe(state.consumerArn, { Type: "TRIM_HORIZON" });
    state.firstSubscribedAt = started;
    state.sub = sub;
    assert(sub.metadata.httpStatusCode === 200, `HTTP status ${sub.metadata.httpStatusCode}`);
    const { records, events } = await receive(sub, state.before.length);
    assert(records.length === state.before.length,
      `${records.length} records pushed, ${state.before.length} put`);
    records.forEach((r, i) => {
      assert(sameBytes(r.Data, state.before[i]),
        `record ${i}: data ${hex(r.Data)}, put ${hex(state.before[i])}`);
      assert(r.SequenceNumber === state.beforeSeqs[i],
        `record ${i}: sequence number ${r.SequenceNumber}, put at ${state.beforeSeqs[i]}`);
      assert(r.ApproximateArrivalTimestamp instanceof Date, `ApproximateArrivalTimestamp ${r.ApproximateArrivalTimestamp}`);
    });
    state.continuation = events[events.length - 1].ContinuationSequenceNumber;
    assert(state.continuation === state.beforeSeqs[state.beforeSeqs.length - 1],
      `ContinuationSequenceNumber ${state.continuation} after the last record ${state.beforeSeqs.at(-1)}`);
  },

  async function second_subscription_within_5s_is_refused() {
    const e = await expectError(
      "ResourceInUseException",
      subscribe(state.consumerArn, { Type: "TRIM_HORIZON" }),
    );
    assert(Date.now() - state.firstSubscribedAt < RESUBSCRIBE_INTERVAL_MS,
      "the check ran too late to say anything about the 5 s interval");
    assert(e.message, "the error has a message");
  },

  async function record_put_after_subscribing_arrives_later() {
    const data = new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0, 1, 2]);
    const put = await client.send(new PutRecordCommand({ StreamName: stream, PartitionKey: "late", Data: data }));
    const { records } = await receive(state.sub, 1);
    assert(records.length === 1, `${records.length} records pushed after one put`);
    assert(sameBytes(records[0].Data, data), `data ${hex(records[0].Data)}`);
    assert(records[0].SequenceNumber === put.SequenceNumber,
      `sequence number ${records[0].SequenceNumber}, put at ${put.SequenceNumber}`);
    assert(records[0].PartitionKey === "late", `PartitionKey ${records[0].PartitionKey}`);
    close(state.sub);
    state.late = { data, seq: put.SequenceNumber };
  },

  async function after_sequence_number_from_continuation() {
    // The same consumer may subscribe to the shard again once the interval has passed.
    const wait = state.firstSubscribedAt + RESUBSCRIBE_INTERVAL_MS + 300 - Date.now();
    if (wait > 0) await sleep(wait);
    const sub = await subscribe(state.consumerArn, {
      Type: "AFTER_SEQUENCE_NUMBER",
      SequenceNumber: state.continuation,
    });
    const { records } = await receive(sub, 1);
    close(sub);
    assert(records.length === 1, `${records.length} records after the continuation, expected 1`);
    assert(records[0].SequenceNumber === state.late.seq,
      `first record after the continuation: ${records[0].SequenceNumber}, expected ${state.late.seq}`);
    assert(sameBytes(records[0].Data, state.late.data), `data ${hex(records[0].Data)}`);
  },

  async function subscribe_unregistered_consumer_is_not_found() {
    const arn = `${streamArn}/consumer/nobody:1700000000`;
    const e = await expectError("ResourceNotFoundException", subscribe(arn, { Type: "LATEST" }));
    assert(e.message, "the error has a message");
  },

  async function every_call_went_through_the_http2_handler() {
    const subscribes = handler.handled.filter((t) => t.endsWith(".SubscribeToShard")).length;
    assert(subscribes === 4, `${subscribes} SubscribeToShard calls through the HTTP/2 handler`);
    assert(handler.handled.every((t) => t.startsWith("Kinesis_20131202.")),
      `targets ${JSON.stringify(handler.handled)}`);
  },
];

let failed = false;
try {
  for (const check of checks) {
    current = check.name;
    await check();
    console.log(`ok   ${check.name}`);
  }
  console.log(`all ${checks.length} checks passed (${handler.handled.length} calls over HTTP/2)`);
} catch (e) {
  failed = true;
  console.error(`FAIL ${current}: ${e instanceof CheckFailed ? e.message : e.stack ?? e}`);
} finally {
  for (const abort of subscriptions) abort.abort();
  try {
    await client.send(new DeleteStreamCommand({ StreamName: stream, EnforceConsumerDeletion: true }));
  } catch {
    // Best effort: the stream may not exist.
  }
  client.destroy();
  clearTimeout(overall);
}
process.exit(failed ? 1 : 0);
