#!/usr/bin/env python3
"""Prints every item of a DynamoDB table as one JSON line (DynamoDB's typed form), read with
boto3, an independent client: scan.py ENDPOINT_URL TABLE REGION"""
import base64
import json
import sys

import boto3

client = boto3.client("dynamodb", endpoint_url=sys.argv[1], region_name=sys.argv[3],
                      aws_access_key_id="test", aws_secret_access_key="test")
args = {"TableName": sys.argv[2], "ConsistentRead": True}
while True:
    page = client.scan(**args)
    for item in page["Items"]:
        # Binary attributes (bytes) as base64, as DynamoDB's own JSON writes them.
        print(json.dumps(item, sort_keys=True, ensure_ascii=False,
                         default=lambda b: base64.b64encode(b).decode()))
    if "LastEvaluatedKey" not in page:
        break
    args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
