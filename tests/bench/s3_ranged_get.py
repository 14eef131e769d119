#!/usr/bin/env python3
"""Raw ranged-GET throughput of an S3 endpoint (benchmark scenario W5 (d)).

    s3_ranged_get.py ENDPOINT BUCKET PREFIX [--chunk 4194304] [--suffix .log] [--max-bytes N]

Lists the objects under PREFIX whose key ends with SUFFIX, in key order, and reads each one
sequentially with ranged GETs of CHUNK bytes (one request at a time, like one cache miss after
another), reading every response body to the end. Stops after MAX_BYTES (0: everything). Prints
one JSON line: objects, gets, bytes, seconds, mb_per_s (MB = 10^6 bytes). The listing is not
timed. Needs boto3 (run.sh uses LocalStack's venv); credentials test/test.
"""
import argparse
import json
import time

import boto3
from botocore.config import Config


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("endpoint")
    ap.add_argument("bucket")
    ap.add_argument("prefix")
    ap.add_argument("--chunk", type=int, default=4 << 20)
    ap.add_argument("--suffix", default=".log")
    ap.add_argument("--max-bytes", type=int, default=0)
    a = ap.parse_args()

    s3 = boto3.client("s3", endpoint_url=a.endpoint, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test",
                      config=Config(retries={"max_attempts": 3}, max_pool_connections=1))
    objs = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=a.bucket, Prefix=a.prefix):
        for o in page.get("Contents", []):
            if o["Key"].endswith(a.suffix):
                objs.append((o["Key"], o["Size"]))
    objs.sort()
    gets = total = 0
    t0 = time.monotonic()
    for key, size in objs:
        off = 0
        while off < size and not (a.max_bytes and total >= a.max_bytes):
            end = min(off + a.chunk, size) - 1
            body = s3.get_object(Bucket=a.bucket, Key=key, Range=f"bytes={off}-{end}")["Body"]
            n = 0
            while True:
                b = body.read(1 << 20)
                if not b:
                    break
                n += len(b)
            if n != end - off + 1:
                raise SystemExit(f"{key} bytes {off}-{end}: got {n} bytes")
            gets += 1
            total += n
            off = end + 1
    secs = time.monotonic() - t0
    print(json.dumps({"objects": len(objs), "gets": gets, "bytes": total, "seconds": round(secs, 3),
                      "mb_per_s": round(total / secs / 1e6, 2) if secs > 0 else None}))


if __name__ == "__main__":
    main()
