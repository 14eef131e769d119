#!/bin/sh
# Run by LocalStack (docker-compose.yml) once it is ready: create the bucket Chronik uses.
awslocal s3 mb "s3://${BUCKET:-chronik}" 2>/dev/null || true
