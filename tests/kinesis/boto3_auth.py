"""boto3 against a server with an auth file: SigV4 signatures made by the real SDK verify,
a wrong secret is InvalidSignatureException, an unknown key UnrecognizedClientException, a
principal without the grant AccessDeniedException, and listing shows only readable streams.

usage: boto3_auth.py http://127.0.0.1:PORT
The server's auth file gives AKIDADMIN (secret admin-secret) everything, and AKIDREADER
(secret reader-secret) read on streams matching `auth-*`.
"""

import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = sys.argv[1]


def client(key, secret):
    return boto3.client(
        "kinesis",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 1}),
    )


def refused(call, code):
    try:
        call()
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {e}"
        return e.response["Error"]["Message"]
    raise AssertionError(f"expected {code}, the call passed")


admin = client("AKIDADMIN", "admin-secret")
reader = client("AKIDREADER", "reader-secret")

admin.create_stream(StreamName="auth-orders", ShardCount=1)
admin.create_stream(StreamName="secret-ledger", ShardCount=1)
admin.put_record(StreamName="auth-orders", Data=b"hello", PartitionKey="k")

shard = reader.list_shards(StreamName="auth-orders")["Shards"][0]["ShardId"]
iterator = reader.get_shard_iterator(
    StreamName="auth-orders", ShardId=shard, ShardIteratorType="TRIM_HORIZON"
)["ShardIterator"]
records = reader.get_records(ShardIterator=iterator)["Records"]
assert [r["Data"] for r in records] == [b"hello"], records

listed = reader.list_streams()["StreamNames"]
assert listed == ["auth-orders"], listed

message = refused(
    lambda: reader.put_record(StreamName="auth-orders", Data=b"x", PartitionKey="k"),
    "AccessDeniedException",
)
assert "kinesis:PutRecord" in message, message
refused(lambda: reader.describe_stream(StreamName="secret-ledger"), "AccessDeniedException")
refused(
    lambda: client("AKIDADMIN", "not-the-secret").list_streams(), "InvalidSignatureException"
)
refused(lambda: client("AKIDNOBODY", "x").list_streams(), "UnrecognizedClientException")
print("boto3 auth checks passed")
