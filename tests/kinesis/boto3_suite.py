#!/usr/bin/env python3
"""Drives shardlog's Kinesis endpoint with the real boto3/botocore client.

Usage: python3 tests/kinesis/boto3_suite.py http://127.0.0.1:PORT

Every check is a function named check_*; they run in the order they are defined, each on
streams of its own (named uniquely per run), and each prints one line when it passes. A
failing check prints its name and the reason to stderr; the suite goes on with the other
checks and exits 1 at the end if any failed, 0 if all passed.
"""

import datetime
import hashlib
import re
import signal
import sys
import time
import traceback
import uuid

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

ACCOUNT = "000000000000"
REGION = "us-east-1"
MAX_HASH_KEY = 2**128 - 1
DECIMAL = re.compile(r"^(0|[1-9][0-9]*)$")
# How long one check may take before it is failed (a hung read must not hang the suite).
CHECK_TIMEOUT_SECS = 45

if len(sys.argv) != 2:
    print(f"usage: {sys.argv[0]} http://127.0.0.1:PORT", file=sys.stderr)
    sys.exit(2)
ENDPOINT = sys.argv[1]
RUN = uuid.uuid4().hex[:10]


def make_client(**config):
    return boto3.client(
        "kinesis",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(connect_timeout=5, read_timeout=20, **config),
    )


kinesis = make_client()
# The same client without botocore's own input checks, so the server's are what answers.
unchecked = make_client(parameter_validation=False)

_created = []
_counter = [0]


def name(tag):
    """A stream or consumer name unique to this run."""
    _counter[0] += 1
    return f"sdk-{RUN}-{_counter[0]:03d}-{tag}"


def stream_arn(stream):
    return f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{stream}"


def create(tag, shards=1, **extra):
    """Creates a stream of `shards` shards (None: leave ShardCount out) and returns its name."""
    stream = name(tag)
    args = dict(StreamName=stream, **extra)
    if shards is not None:
        args["ShardCount"] = shards
    kinesis.create_stream(**args)
    _created.append(stream)
    return stream


def shards_of(stream):
    out, token = [], None
    for _ in range(1000):
        page = (
            kinesis.list_shards(NextToken=token)
            if token
            else kinesis.list_shards(StreamName=stream)
        )
        out.extend(page["Shards"])
        token = page.get("NextToken")
        if not token:
            return out
    raise AssertionError("ListShards paging did not end")


def hash_range(shard):
    r = shard["HashKeyRange"]
    return int(r["StartingHashKey"]), int(r["EndingHashKey"])


def md5_key(partition_key):
    return int.from_bytes(hashlib.md5(partition_key.encode()).digest(), "big")


def shard_holding(shards, key):
    holding = [s["ShardId"] for s in shards if hash_range(s)[0] <= key <= hash_range(s)[1]]
    assert len(holding) == 1, f"{len(holding)} shards hold hash key {key}: {holding}"
    return holding[0]


def iterator(stream, shard_id, kind, **extra):
    return kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard_id, ShardIteratorType=kind, **extra
    )["ShardIterator"]


def read_all(shard_iterator, limit=None):
    """Follows NextShardIterator until an empty answer; returns every record read."""
    out = []
    for _ in range(10_000):
        args = dict(ShardIterator=shard_iterator)
        if limit:
            args["Limit"] = limit
        got = kinesis.get_records(**args)
        if not got["Records"]:
            return out
        out.extend(got["Records"])
        shard_iterator = got["NextShardIterator"]
    raise AssertionError("GetRecords did not catch up after 10000 calls")


def datas(records):
    return [r["Data"] for r in records]


def eq(actual, expected, what):
    assert actual == expected, f"{what}: expected {expected!r}, got {actual!r}"


def expect_error(code, call, *args, **kwargs):
    """Runs `call`, which must fail with error `code`; returns the ClientError."""
    try:
        result = call(*args, **kwargs)
    except ClientError as e:
        got = e.response.get("Error", {}).get("Code")
        assert got == code, (
            f"expected {code}, got {got}: {e.response.get('Error')} "
            f"(HTTP {e.response.get('ResponseMetadata', {}).get('HTTPStatusCode')})"
        )
        return e
    raise AssertionError(f"expected {code}, but the call succeeded: {result!r}")


def error_message(e):
    return e.response["Error"].get("Message", "")


# ---------------------------------------------------------------------------------------------
# Streams
# ---------------------------------------------------------------------------------------------


def check_create_stream_provisioned():
    stream = create("prov", 3)
    d = kinesis.describe_stream(StreamName=stream)["StreamDescription"]
    eq(d["StreamName"], stream, "StreamName")
    eq(d["StreamARN"], stream_arn(stream), "StreamARN")
    eq(d["StreamStatus"], "ACTIVE", "StreamStatus")
    eq(d["StreamModeDetails"]["StreamMode"], "PROVISIONED", "StreamMode")
    eq(d["HasMoreShards"], False, "HasMoreShards")
    eq(d["RetentionPeriodHours"], 24, "RetentionPeriodHours")
    eq(d["EncryptionType"], "NONE", "EncryptionType")
    assert isinstance(d["StreamCreationTimestamp"], datetime.datetime), d
    ids = [s["ShardId"] for s in d["Shards"]]
    eq(ids, [f"shardId-{i:012d}" for i in range(3)], "shard ids")
    # The ranges split the whole hash key space, in order, without gaps or overlaps.
    ranges = [hash_range(s) for s in d["Shards"]]
    eq(ranges[0][0], 0, "first StartingHashKey")
    eq(ranges[-1][1], MAX_HASH_KEY, "last EndingHashKey")
    for (_, end), (start, _) in zip(ranges, ranges[1:]):
        eq(start, end + 1, "adjacent hash key ranges")
    for s in d["Shards"]:
        assert DECIMAL.match(s["SequenceNumberRange"]["StartingSequenceNumber"]), s
        assert "EndingSequenceNumber" not in s["SequenceNumberRange"], f"open shard closed: {s}"


def check_create_stream_on_demand():
    stream = create("ondemand", None, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    eq(len(shards_of(stream)), 4, "shards of an on-demand stream")
    summary = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    eq(summary["StreamModeDetails"]["StreamMode"], "ON_DEMAND", "StreamMode")
    eq(summary["OpenShardCount"], 4, "OpenShardCount")


def check_describe_stream_paging():
    stream = create("descpage", 3)
    first = kinesis.describe_stream(StreamName=stream, Limit=2)["StreamDescription"]
    eq([s["ShardId"] for s in first["Shards"]], ["shardId-000000000000", "shardId-000000000001"],
       "first page")
    eq(first["HasMoreShards"], True, "HasMoreShards of the first page")
    rest = kinesis.describe_stream(
        StreamName=stream, Limit=2, ExclusiveStartShardId=first["Shards"][-1]["ShardId"]
    )["StreamDescription"]
    eq([s["ShardId"] for s in rest["Shards"]], ["shardId-000000000002"], "second page")
    eq(rest["HasMoreShards"], False, "HasMoreShards of the last page")


def check_describe_stream_summary():
    stream = create("summary", 3)
    s = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    eq(s["StreamName"], stream, "StreamName")
    eq(s["StreamARN"], stream_arn(stream), "StreamARN")
    eq(s["StreamStatus"], "ACTIVE", "StreamStatus")
    eq(s["StreamModeDetails"]["StreamMode"], "PROVISIONED", "StreamMode")
    eq(s["RetentionPeriodHours"], 24, "RetentionPeriodHours")
    eq(s["OpenShardCount"], 3, "OpenShardCount")
    eq(s["ConsumerCount"], 0, "ConsumerCount")
    eq(s["EncryptionType"], "NONE", "EncryptionType")
    eq(s["EnhancedMonitoring"], [{"ShardLevelMetrics": []}], "EnhancedMonitoring")
    assert isinstance(s["StreamCreationTimestamp"], datetime.datetime), s
    # By ARN as well.
    by_arn = kinesis.describe_stream_summary(StreamARN=stream_arn(stream))
    eq(by_arn["StreamDescriptionSummary"]["StreamName"], stream, "StreamName by ARN")


def check_list_streams_paging():
    mine = [create(f"list{i}") for i in range(3)]
    seen, summaries, token, pages = [], [], None, 0
    for _ in range(10_000):
        page = (
            kinesis.list_streams(Limit=2, NextToken=token)
            if token
            else kinesis.list_streams(Limit=2)
        )
        pages += 1
        assert len(page["StreamNames"]) <= 2, f"page over the limit: {page['StreamNames']}"
        eq([s["StreamName"] for s in page["StreamSummaries"]], page["StreamNames"],
           "StreamSummaries' names")
        for s in page["StreamSummaries"]:
            eq(s["StreamARN"], stream_arn(s["StreamName"]), "summary StreamARN")
            eq(s["StreamStatus"], "ACTIVE", "summary StreamStatus")
            assert s["StreamModeDetails"]["StreamMode"] in ("PROVISIONED", "ON_DEMAND"), s
            assert isinstance(s["StreamCreationTimestamp"], datetime.datetime), s
        seen.extend(page["StreamNames"])
        summaries.extend(page["StreamSummaries"])
        token = page.get("NextToken")
        eq(page["HasMoreStreams"], bool(token), "HasMoreStreams against NextToken")
        if not token:
            break
    else:
        raise AssertionError("ListStreams paging did not end")
    eq(len(seen), len(set(seen)), f"no stream listed twice ({pages} pages)")
    eq(seen, sorted(seen), "streams listed in order")
    for m in mine:
        assert m in seen, f"{m} not listed"
    # ExclusiveStartStreamName starts after the name given.
    after = kinesis.list_streams(Limit=1, ExclusiveStartStreamName=mine[0])
    eq(after["StreamNames"], [mine[1]], "first stream after ExclusiveStartStreamName")


def check_list_shards_paging_and_filters():
    stream = create("listshards", 3)
    first = kinesis.list_shards(StreamName=stream, MaxResults=2)
    eq([s["ShardId"] for s in first["Shards"]], ["shardId-000000000000", "shardId-000000000001"],
       "first page")
    assert first.get("NextToken"), f"no NextToken on a partial page: {first}"
    rest = kinesis.list_shards(NextToken=first["NextToken"])
    eq([s["ShardId"] for s in rest["Shards"]], ["shardId-000000000002"], "second page")
    assert not rest.get("NextToken"), f"NextToken on the last page: {rest.get('NextToken')}"
    latest = kinesis.list_shards(StreamName=stream, ShardFilter={"Type": "AT_LATEST"})
    eq(len(latest["Shards"]), 3, "open shards under AT_LATEST")
    after = kinesis.list_shards(StreamName=stream, ExclusiveStartShardId="shardId-000000000000")
    eq([s["ShardId"] for s in after["Shards"]], ["shardId-000000000001", "shardId-000000000002"],
       "shards after ExclusiveStartShardId")
    e = expect_error(
        "InvalidArgumentException",
        kinesis.list_shards,
        StreamName=stream,
        NextToken=first["NextToken"],
    )
    eq(e.response["ResponseMetadata"]["HTTPStatusCode"], 400, "HTTP status")


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


def check_put_record():
    stream = create("put", 3)
    shards = shards_of(stream)
    for pk in ("alpha", "beta", "gamma", "delta"):
        out = kinesis.put_record(StreamName=stream, PartitionKey=pk, Data=pk.encode())
        assert isinstance(out["SequenceNumber"], str) and DECIMAL.match(out["SequenceNumber"]), (
            f"SequenceNumber is not a decimal string: {out['SequenceNumber']!r}"
        )
        eq(out["ShardId"], shard_holding(shards, md5_key(pk)), f"shard of partition key {pk}")
    by_arn = kinesis.put_record(StreamARN=stream_arn(stream), PartitionKey="a", Data=b"x")
    assert DECIMAL.match(by_arn["SequenceNumber"]), by_arn


def check_put_records_500():
    stream = create("putrecords", 3)
    shards = shards_of(stream)
    entries = [
        {"PartitionKey": f"pk-{i}", "Data": f"d-{i}".encode()} for i in range(500)
    ]
    out = kinesis.put_records(StreamName=stream, Records=entries)
    eq(out["FailedRecordCount"], 0, "FailedRecordCount")
    eq(len(out["Records"]), 500, "result entries")
    per_shard = {}
    for i, (entry, result) in enumerate(zip(entries, out["Records"])):
        assert "ErrorCode" not in result, f"entry {i} failed: {result}"
        assert DECIMAL.match(result["SequenceNumber"]), result
        eq(result["ShardId"], shard_holding(shards, md5_key(entry["PartitionKey"])),
           f"shard of entry {i}")
        per_shard.setdefault(result["ShardId"], []).append((int(result["SequenceNumber"]), i))
    # Within a shard, entries are appended in request order, and each result names its entry:
    # reading the shard back gives the entries' data at the sequence numbers they were given.
    for shard_id, placed in per_shard.items():
        seqs = [s for s, _ in placed]
        eq(seqs, sorted(seqs), f"sequence numbers in {shard_id} follow the request order")
        records = read_all(iterator(stream, shard_id, "TRIM_HORIZON"))
        got = [(int(r["SequenceNumber"]), r["Data"], r["PartitionKey"]) for r in records]
        want = [(s, entries[i]["Data"], entries[i]["PartitionKey"]) for s, i in placed]
        eq(got, want, f"records of {shard_id}")


def check_explicit_hash_key_routing():
    stream = create("ehk", 3)
    shards = shards_of(stream)
    for s in shards:
        start, end = hash_range(s)
        for key in (start, (start + end) // 2, end):
            out = kinesis.put_record(
                StreamName=stream, PartitionKey="same-key", Data=b"x", ExplicitHashKey=str(key)
            )
            eq(out["ShardId"], s["ShardId"], f"shard of ExplicitHashKey {key}")
    out = kinesis.put_records(
        StreamName=stream,
        Records=[
            {"PartitionKey": "same-key", "Data": b"y", "ExplicitHashKey": str(hash_range(s)[1])}
            for s in shards
        ],
    )
    eq([r["ShardId"] for r in out["Records"]], [s["ShardId"] for s in shards],
       "PutRecords shards by ExplicitHashKey")


def check_shard_iterator_types():
    stream = create("iters")
    shard = "shardId-000000000000"
    seqs = [
        kinesis.put_record(StreamName=stream, PartitionKey="k", Data=f"r{i}".encode())[
            "SequenceNumber"
        ]
        for i in range(3)
    ]
    # Boto3 sends AT_TIMESTAMP in whole seconds: put the next records after a second boundary.
    boundary = int(time.time()) + 1
    while time.time() < boundary + 0.05:
        time.sleep(0.02)
    seqs += [
        kinesis.put_record(StreamName=stream, PartitionKey="k", Data=f"r{i}".encode())[
            "SequenceNumber"
        ]
        for i in range(3, 5)
    ]
    want = [f"r{i}".encode() for i in range(5)]
    eq(datas(read_all(iterator(stream, shard, "TRIM_HORIZON"))), want, "TRIM_HORIZON")
    latest = iterator(stream, shard, "LATEST")
    eq(kinesis.get_records(ShardIterator=latest)["Records"], [], "LATEST before a put")
    seqs.append(kinesis.put_record(StreamName=stream, PartitionKey="k", Data=b"r5")["SequenceNumber"])
    want.append(b"r5")
    eq(datas(read_all(latest)), [b"r5"], "LATEST after a put")
    at = iterator(stream, shard, "AT_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[2])
    eq(datas(read_all(at)), want[2:], "AT_SEQUENCE_NUMBER")
    after = iterator(stream, shard, "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[2])
    eq(datas(read_all(after)), want[3:], "AFTER_SEQUENCE_NUMBER")
    when = datetime.datetime.fromtimestamp(boundary, tz=datetime.timezone.utc)
    at_time = iterator(stream, shard, "AT_TIMESTAMP", Timestamp=when)
    eq(datas(read_all(at_time)), want[3:], f"AT_TIMESTAMP {when.isoformat()}")
    past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    eq(datas(read_all(iterator(stream, shard, "AT_TIMESTAMP", Timestamp=past))), want,
       "AT_TIMESTAMP before every record")


def check_get_records_limit_and_lag():
    stream = create("limit")
    shard = "shardId-000000000000"
    kinesis.put_record(StreamName=stream, PartitionKey="k", Data=b"r0")
    time.sleep(0.4)
    for i in range(1, 5):
        kinesis.put_record(StreamName=stream, PartitionKey="k", Data=f"r{i}".encode())
    it = iterator(stream, shard, "TRIM_HORIZON")
    first = kinesis.get_records(ShardIterator=it, Limit=1)
    eq(datas(first["Records"]), [b"r0"], "first record under Limit=1")
    assert first["MillisBehindLatest"] >= 300, (
        f"MillisBehindLatest {first['MillisBehindLatest']} of a reader 400 ms behind"
    )
    assert first["NextShardIterator"], first
    second = kinesis.get_records(ShardIterator=first["NextShardIterator"], Limit=2)
    eq(datas(second["Records"]), [b"r1", b"r2"], "next two records under Limit=2")
    third = kinesis.get_records(ShardIterator=second["NextShardIterator"], Limit=2)
    eq(datas(third["Records"]), [b"r3", b"r4"], "last two records")
    eq(third["MillisBehindLatest"], 0, "MillisBehindLatest at the tip")
    empty = kinesis.get_records(ShardIterator=third["NextShardIterator"], Limit=2)
    eq(empty["Records"], [], "records past the tip")
    eq(empty["MillisBehindLatest"], 0, "MillisBehindLatest past the tip")
    assert empty.get("NextShardIterator"), f"an open shard gives a next iterator: {empty}"


def check_binary_data_round_trips():
    stream = create("binary")
    data = bytes(range(256))
    seq = kinesis.put_record(StreamName=stream, PartitionKey="bin", Data=data)["SequenceNumber"]
    it = iterator(stream, "shardId-000000000000", "AT_SEQUENCE_NUMBER", StartingSequenceNumber=seq)
    records = kinesis.get_records(ShardIterator=it, Limit=1)["Records"]
    eq(len(records), 1, "records read")
    eq(records[0]["Data"], data, "data of all 256 byte values")
    eq(records[0]["PartitionKey"], "bin", "PartitionKey")
    eq(records[0]["SequenceNumber"], seq, "SequenceNumber")
    assert isinstance(records[0]["ApproximateArrivalTimestamp"], datetime.datetime), records[0]
    blobs = [data[i:] + data[:i] for i in (0, 1, 128, 255)] + [b"", b"\x00", b"\xff" * 1000]
    out = kinesis.put_records(
        StreamName=stream, Records=[{"PartitionKey": "bin", "Data": b} for b in blobs]
    )
    eq(out["FailedRecordCount"], 0, "FailedRecordCount")
    it = iterator(
        stream, "shardId-000000000000", "AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=out["Records"][0]["SequenceNumber"],
    )
    eq(datas(read_all(it)), blobs, "PutRecords binary data")


# ---------------------------------------------------------------------------------------------
# Stream settings
# ---------------------------------------------------------------------------------------------


def check_retention_period():
    stream = create("retention")
    kinesis.increase_stream_retention_period(StreamName=stream, RetentionPeriodHours=48)
    d = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    eq(d["RetentionPeriodHours"], 48, "retention after increasing")
    e = expect_error(
        "InvalidArgumentException",
        kinesis.increase_stream_retention_period,
        StreamName=stream,
        RetentionPeriodHours=30,
    )
    assert error_message(e), "the error has a message"
    kinesis.decrease_stream_retention_period(StreamName=stream, RetentionPeriodHours=24)
    d = kinesis.describe_stream(StreamName=stream)["StreamDescription"]
    eq(d["RetentionPeriodHours"], 24, "retention after decreasing")
    expect_error(
        "InvalidArgumentException",
        kinesis.decrease_stream_retention_period,
        StreamName=stream,
        RetentionPeriodHours=48,
    )


def check_update_stream_mode():
    stream = create("mode", 2)
    kinesis.update_stream_mode(
        StreamARN=stream_arn(stream), StreamModeDetails={"StreamMode": "ON_DEMAND"}
    )
    d = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    eq(d["StreamModeDetails"]["StreamMode"], "ON_DEMAND", "mode after the update")
    kinesis.update_stream_mode(
        StreamARN=stream_arn(stream), StreamModeDetails={"StreamMode": "PROVISIONED"}
    )
    d = kinesis.describe_stream(StreamName=stream)["StreamDescription"]
    eq(d["StreamModeDetails"]["StreamMode"], "PROVISIONED", "mode after updating back")


def check_describe_limits():
    create("limits", 2)
    create("limitsod", None, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    out = kinesis.describe_limits()
    for field in ("ShardLimit", "OpenShardCount", "OnDemandStreamCount", "OnDemandStreamCountLimit"):
        assert isinstance(out.get(field), int), f"{field} is not an integer: {out}"
    assert out["OpenShardCount"] >= 6, f"OpenShardCount {out['OpenShardCount']} < 6"
    assert out["OnDemandStreamCount"] >= 1, f"OnDemandStreamCount {out['OnDemandStreamCount']}"
    assert out["ShardLimit"] >= 2, out


def check_stream_tags():
    stream = create("tags")
    kinesis.add_tags_to_stream(StreamName=stream, Tags={"team": "data", "env": "test"})
    out = kinesis.list_tags_for_stream(StreamName=stream)
    eq(sorted((t["Key"], t["Value"]) for t in out["Tags"]), [("env", "test"), ("team", "data")],
       "tags")
    eq(out["HasMoreTags"], False, "HasMoreTags")
    page = kinesis.list_tags_for_stream(StreamName=stream, Limit=1)
    eq(len(page["Tags"]), 1, "tags under Limit=1")
    eq(page["HasMoreTags"], True, "HasMoreTags under Limit=1")
    rest = kinesis.list_tags_for_stream(
        StreamName=stream, ExclusiveStartTagKey=page["Tags"][0]["Key"]
    )
    eq(len(rest["Tags"]), 1, "tags after ExclusiveStartTagKey")
    kinesis.remove_tags_from_stream(StreamName=stream, TagKeys=["env"])
    out = kinesis.list_tags_for_stream(StreamName=stream)
    eq([(t["Key"], t["Value"]) for t in out["Tags"]], [("team", "data")], "tags after removing")


def check_resource_tags():
    stream = create("restags")
    arn = stream_arn(stream)
    kinesis.tag_resource(ResourceARN=arn, Tags={"a": "1", "b": "2"})
    out = kinesis.list_tags_for_resource(ResourceARN=arn)
    eq(sorted((t["Key"], t["Value"]) for t in out["Tags"]), [("a", "1"), ("b", "2")], "tags")
    kinesis.untag_resource(ResourceARN=arn, TagKeys=["a"])
    out = kinesis.list_tags_for_resource(ResourceARN=arn)
    eq([(t["Key"], t["Value"]) for t in out["Tags"]], [("b", "2")], "tags after untagging")
    # The two APIs see the same tags.
    out = kinesis.list_tags_for_stream(StreamName=stream)
    eq([(t["Key"], t["Value"]) for t in out["Tags"]], [("b", "2")], "ListTagsForStream")


def check_enhanced_monitoring():
    stream = create("monitor")
    out = kinesis.enable_enhanced_monitoring(
        StreamName=stream, ShardLevelMetrics=["IncomingBytes", "OutgoingRecords"]
    )
    eq(out["StreamName"], stream, "StreamName")
    eq(sorted(out["CurrentShardLevelMetrics"]), [], "CurrentShardLevelMetrics")
    eq(sorted(out["DesiredShardLevelMetrics"]), ["IncomingBytes", "OutgoingRecords"],
       "DesiredShardLevelMetrics")
    d = kinesis.describe_stream(StreamName=stream)["StreamDescription"]
    eq(sorted(d["EnhancedMonitoring"][0]["ShardLevelMetrics"]),
       ["IncomingBytes", "OutgoingRecords"], "EnhancedMonitoring")
    out = kinesis.disable_enhanced_monitoring(StreamName=stream, ShardLevelMetrics=["IncomingBytes"])
    eq(sorted(out["CurrentShardLevelMetrics"]), ["IncomingBytes", "OutgoingRecords"],
       "CurrentShardLevelMetrics when disabling")
    eq(out["DesiredShardLevelMetrics"], ["OutgoingRecords"], "DesiredShardLevelMetrics")
    out = kinesis.enable_enhanced_monitoring(StreamName=stream, ShardLevelMetrics=["ALL"])
    eq(len(out["DesiredShardLevelMetrics"]), 7, f"metrics of ALL: {out['DesiredShardLevelMetrics']}")
    out = kinesis.disable_enhanced_monitoring(StreamName=stream, ShardLevelMetrics=["ALL"])
    eq(out["DesiredShardLevelMetrics"], [], "metrics after disabling ALL")


def check_start_stream_encryption_has_no_kms():
    stream = create("kms")
    e = expect_error(
        "KMSNotFoundException",
        kinesis.start_stream_encryption,
        StreamName=stream,
        EncryptionType="KMS",
        KeyId="alias/aws/kinesis",
    )
    assert isinstance(e, kinesis.exceptions.KMSNotFoundException), type(e)


# ---------------------------------------------------------------------------------------------
# Consumers
# ---------------------------------------------------------------------------------------------


def check_stream_consumers():
    stream = create("consumers")
    arn = stream_arn(stream)
    registered = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="reader-a")["Consumer"]
    eq(registered["ConsumerName"], "reader-a", "ConsumerName")
    assert registered["ConsumerARN"].startswith(f"{arn}/consumer/reader-a:"), registered
    assert registered["ConsumerStatus"] in ("CREATING", "ACTIVE"), registered
    kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="reader-b")
    expect_error(
        "ResourceInUseException",
        kinesis.register_stream_consumer,
        StreamARN=arn,
        ConsumerName="reader-a",
    )
    by_arn = kinesis.describe_stream_consumer(ConsumerARN=registered["ConsumerARN"])
    d = by_arn["ConsumerDescription"]
    eq(d["ConsumerName"], "reader-a", "ConsumerName by ARN")
    eq(d["ConsumerARN"], registered["ConsumerARN"], "ConsumerARN")
    eq(d["StreamARN"], arn, "StreamARN")
    eq(d["ConsumerStatus"], "ACTIVE", "ConsumerStatus")
    assert isinstance(d["ConsumerCreationTimestamp"], datetime.datetime), d
    by_name = kinesis.describe_stream_consumer(StreamARN=arn, ConsumerName="reader-a")
    eq(by_name["ConsumerDescription"]["ConsumerARN"], registered["ConsumerARN"],
       "ConsumerARN by StreamARN and ConsumerName")
    listed = kinesis.list_stream_consumers(StreamARN=arn)
    eq(sorted(c["ConsumerName"] for c in listed["Consumers"]), ["reader-a", "reader-b"],
       "consumers listed")
    first = kinesis.list_stream_consumers(StreamARN=arn, MaxResults=1)
    eq(len(first["Consumers"]), 1, "consumers under MaxResults=1")
    assert first.get("NextToken"), f"no NextToken: {first}"
    rest = kinesis.list_stream_consumers(StreamARN=arn, NextToken=first["NextToken"])
    eq(len(rest["Consumers"]), 1, "consumers on the second page")
    eq(sorted([first["Consumers"][0]["ConsumerName"], rest["Consumers"][0]["ConsumerName"]]),
       ["reader-a", "reader-b"], "consumers over two pages")
    summary = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    eq(summary["ConsumerCount"], 2, "ConsumerCount")
    kinesis.deregister_stream_consumer(ConsumerARN=registered["ConsumerARN"])
    kinesis.deregister_stream_consumer(StreamARN=arn, ConsumerName="reader-b")
    expect_error(
        "ResourceNotFoundException",
        kinesis.describe_stream_consumer,
        ConsumerARN=registered["ConsumerARN"],
    )
    eq(kinesis.list_stream_consumers(StreamARN=arn)["Consumers"], [], "consumers after deregistering")


def check_delete_stream_with_consumer():
    stream = create("delcons")
    arn = stream_arn(stream)
    kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="holder")
    expect_error("ResourceInUseException", kinesis.delete_stream, StreamName=stream)
    expect_error(
        "ResourceInUseException",
        kinesis.delete_stream,
        StreamName=stream,
        EnforceConsumerDeletion=False,
    )
    eq(kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamName"],
       stream, "the stream is still there")
    kinesis.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
    expect_error("ResourceNotFoundException", kinesis.describe_stream, StreamName=stream)
    # A stream without consumers is deleted without the flag.
    plain = create("delplain")
    kinesis.delete_stream(StreamName=plain)
    expect_error("ResourceNotFoundException", kinesis.describe_stream_summary, StreamName=plain)


def check_subscribe_to_shard():
    stream = create("subscribe")
    shard = "shardId-000000000000"
    consumer = kinesis.register_stream_consumer(
        StreamARN=stream_arn(stream), ConsumerName="fanout"
    )["Consumer"]["ConsumerARN"]
    before = [bytes([i]) * (i + 1) for i in range(3)] + [bytes(range(256))]
    seqs = [
        kinesis.put_record(StreamName=stream, PartitionKey="k", Data=d)["SequenceNumber"]
        for d in before
    ]
    out = kinesis.subscribe_to_shard(
        ConsumerARN=consumer, ShardId=shard, StartingPosition={"Type": "TRIM_HORIZON"}
    )
    events = out["EventStream"]
    after = [b"after-0", b"after-1"]
    received, continuations, put_after = [], [], False
    try:
        for event in events:
            assert "SubscribeToShardEvent" in event, f"unexpected event {event}"
            ev = event["SubscribeToShardEvent"]
            assert isinstance(ev["MillisBehindLatest"], int) and ev["MillisBehindLatest"] >= 0, ev
            assert DECIMAL.match(ev["ContinuationSequenceNumber"]), ev
            if ev["Records"]:
                eq(ev["ContinuationSequenceNumber"], ev["Records"][-1]["SequenceNumber"],
                   "ContinuationSequenceNumber of an event with records")
            continuations.append(ev["ContinuationSequenceNumber"])
            received.extend(ev["Records"])
            if len(received) >= len(before) and not put_after:
                put_after = True
                for d in after:
                    seqs.append(
                        kinesis.put_record(StreamName=stream, PartitionKey="k", Data=d)[
                            "SequenceNumber"
                        ]
                    )
            if len(received) >= len(before) + len(after):
                break
    finally:
        events.close()
    eq(datas(received), before + after, "records pushed, before and after subscribing")
    eq([r["SequenceNumber"] for r in received], seqs, "sequence numbers pushed")
    eq([r["PartitionKey"] for r in received], ["k"] * len(seqs), "partition keys pushed")
    eq(continuations[-1], seqs[-1], "last ContinuationSequenceNumber")
    # Resuming after a continuation sequence number gives what follows it.
    time.sleep(5.2)  # the 5 s interval before the same consumer may subscribe to the shard again
    out = kinesis.subscribe_to_shard(
        ConsumerARN=consumer,
        ShardId=shard,
        StartingPosition={"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": seqs[2]},
    )
    resumed = []
    try:
        for event in out["EventStream"]:
            resumed.extend(event["SubscribeToShardEvent"]["Records"])
            if len(resumed) >= len(seqs) - 3:
                break
    finally:
        out["EventStream"].close()
    eq(datas(resumed), (before + after)[3:], "records after AFTER_SEQUENCE_NUMBER")


def check_subscribe_to_empty_shard_names_a_continuation():
    # ContinuationSequenceNumber is a required member of SubscribeToShardEvent; KCL reads an
    # event without one as the shard's end. On a shard with nothing stored yet there is no
    # sequence number to continue after, so no event may come until one does, and that one
    # names it.
    stream = create("subempty")
    consumer = kinesis.register_stream_consumer(
        StreamARN=stream_arn(stream), ConsumerName="idle"
    )["Consumer"]["ConsumerARN"]
    out = kinesis.subscribe_to_shard(
        ConsumerARN=consumer,
        ShardId="shardId-000000000000",
        StartingPosition={"Type": "TRIM_HORIZON"},
    )
    try:
        kinesis.put_record(StreamName=stream, PartitionKey="k", Data=b"first")
        for event in out["EventStream"]:
            ev = event["SubscribeToShardEvent"]
            assert "ContinuationSequenceNumber" in ev, (
                f"an event has no ContinuationSequenceNumber: {ev}"
            )
            assert DECIMAL.match(ev["ContinuationSequenceNumber"]), ev
            eq([r["Data"] for r in ev["Records"]], [b"first"], "the first event's records")
            eq(ev["ContinuationSequenceNumber"], ev["Records"][-1]["SequenceNumber"], "continuation")
            break
    finally:
        out["EventStream"].close()


# ---------------------------------------------------------------------------------------------
# Errors as botocore parses them
# ---------------------------------------------------------------------------------------------


def check_resource_not_found():
    missing = name("missing")
    e = expect_error("ResourceNotFoundException", kinesis.describe_stream, StreamName=missing)
    assert isinstance(e, kinesis.exceptions.ResourceNotFoundException), type(e)
    eq(error_message(e), f"Stream {missing} under account {ACCOUNT} not found.", "message")
    eq(e.response["ResponseMetadata"]["HTTPStatusCode"], 400, "HTTP status")
    eq(e.response["ResponseMetadata"]["RetryAttempts"], 0, "RetryAttempts")
    expect_error(
        "ResourceNotFoundException",
        kinesis.put_record,
        StreamName=missing,
        PartitionKey="k",
        Data=b"x",
    )
    stream = create("shardnf")
    expect_error(
        "ResourceNotFoundException",
        kinesis.get_shard_iterator,
        StreamName=stream,
        ShardId="shardId-000000000009",
        ShardIteratorType="TRIM_HORIZON",
    )


def check_resource_in_use():
    stream = create("inuse")
    e = expect_error("ResourceInUseException", kinesis.create_stream, StreamName=stream, ShardCount=1)
    assert isinstance(e, kinesis.exceptions.ResourceInUseException), type(e)
    assert stream in error_message(e), f"message does not name the stream: {error_message(e)!r}"


def check_invalid_argument():
    e = expect_error("InvalidArgumentException", kinesis.get_records, ShardIterator="garbage")
    assert isinstance(e, kinesis.exceptions.InvalidArgumentException), type(e)
    assert error_message(e), "the error has a message"
    eq(e.response["ResponseMetadata"]["RetryAttempts"], 0, "RetryAttempts")
    stream = create("badseq")
    expect_error(
        "InvalidArgumentException",
        kinesis.get_shard_iterator,
        StreamName=stream,
        ShardId="shardId-000000000000",
        ShardIteratorType="AT_SEQUENCE_NUMBER",
    )


def check_validation_exception_not_retried():
    e = expect_error("ValidationException", unchecked.create_stream, StreamName=name("zero"),
                     ShardCount=0)
    message = error_message(e)
    assert message.startswith("1 validation error detected:"), f"message {message!r}"
    assert "shardCount" in message, f"message does not name shardCount: {message!r}"
    eq(e.response["ResponseMetadata"]["HTTPStatusCode"], 400, "HTTP status")
    eq(e.response["ResponseMetadata"]["RetryAttempts"], 0, "RetryAttempts of a ValidationException")
    e = expect_error("ValidationException", unchecked.describe_stream, StreamName="has a space")
    message = error_message(e)
    assert message.startswith("1 validation error detected:"), f"message {message!r}"
    assert "streamName" in message, f"message does not name streamName: {message!r}"
    eq(e.response["ResponseMetadata"]["RetryAttempts"], 0, "RetryAttempts of a ValidationException")


# ---------------------------------------------------------------------------------------------


class CheckTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise CheckTimeout(f"the check took longer than {CHECK_TIMEOUT_SECS} s")


def main():
    print(f"boto3 {boto3.__version__}, botocore {botocore.__version__}, endpoint {ENDPOINT}")
    signal.signal(signal.SIGALRM, _on_alarm)
    # One call without retries first: an endpoint that is not there fails the suite at once,
    # instead of every check retrying its way to the timeout.
    probe = make_client(retries={"total_max_attempts": 1})
    try:
        probe.list_streams(Limit=1)
    except (botocore.exceptions.BotoCoreError, ClientError) as e:
        print(f"FAIL the endpoint does not answer ListStreams: {e}", file=sys.stderr)
        sys.exit(1)
    checks = [(n, f) for n, f in globals().items() if n.startswith("check_") and callable(f)]
    failed = []
    for check_name, check in checks:
        signal.alarm(CHECK_TIMEOUT_SECS)
        try:
            check()
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way
            signal.alarm(0)
            failed.append(check_name)
            detail = "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-3))
            print(f"FAIL {check_name}: {type(e).__name__}: {e}\n{detail}", file=sys.stderr)
            continue
        signal.alarm(0)
        print(f"ok   {check_name}")
    for stream in _created:
        try:
            kinesis.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
        except ClientError:
            pass
    if failed:
        print(f"{len(failed)} of {len(checks)} checks failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)
    print(f"all {len(checks)} checks passed")


if __name__ == "__main__":
    main()
