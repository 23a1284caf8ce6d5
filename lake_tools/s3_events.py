"""Wire a raw bucket's S3 event notifications to an SQS queue, for the raw-arrival sensor's event mode.

It makes (or reuses) the queue, gives it the policy that lets S3 send to it from that bucket alone,
and sets the bucket's notification for `s3:ObjectCreated:*` and `s3:ObjectRemoved:*` under the raw
zone's prefix. It speaks to whatever boto3 is pointed at: AWS, or moto's server (tests, the bench).
SeaweedFS, behind `make run-s3`, sends no S3 event notifications: there the sensor lists.

    python -m lake_tools.s3_events wire --bucket my-lake --prefix lake/raw/ --queue lake-raw-events
    python -m lake_tools.s3_events policy --bucket my-lake --queue-arn arn:aws:sqs:...   # the JSON only
"""

import argparse
import json

EVENTS = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
# Unread messages outlive a long daemon outage; the sensor's hourly listing catches anything older.
RETENTION_S = 4 * 24 * 3600


def queue_policy(bucket: str, queue_arn: str, account: str | None = None) -> dict:
    """S3 may send to the queue for this bucket only (and this account's bucket, when known)."""
    condition: dict = {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}}
    if account:
        condition["StringEquals"] = {"aws:SourceAccount": account}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "raw-bucket-notifications",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": condition,
            }
        ],
    }


def notification(queue_arn: str, prefix: str) -> dict:
    rule = {"QueueArn": queue_arn, "Events": EVENTS}
    if prefix:
        rule["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
    return {"QueueConfigurations": [rule]}


def wire(s3, sqs, bucket: str, queue: str, prefix: str = "", account: str | None = None) -> str:
    """The queue's URL, once the bucket notifies it."""
    url = sqs.create_queue(QueueName=queue, Attributes={"MessageRetentionPeriod": str(RETENTION_S)})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(queue_policy(bucket, arn, account))})
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=notification(arn, prefix))
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lake_tools.s3_events", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    wiring = commands.add_parser("wire", help="create the queue and set the bucket's notification")
    wiring.add_argument("--bucket", required=True)
    wiring.add_argument("--queue", default="lake-raw-events")
    wiring.add_argument("--prefix", default="", help="the raw zone's key prefix, e.g. lake/raw/")
    wiring.add_argument("--account", help="the bucket owner's account id, to pin the policy to it")
    policy = commands.add_parser("policy", help="print the queue policy and the notification")
    policy.add_argument("--bucket", required=True)
    policy.add_argument("--queue-arn", required=True)
    policy.add_argument("--prefix", default="")
    policy.add_argument("--account")
    args = parser.parse_args(argv)
    if args.command == "policy":
        print(json.dumps({"QueuePolicy": queue_policy(args.bucket, args.queue_arn, args.account)}, indent=2))
        print(json.dumps({"BucketNotification": notification(args.queue_arn, args.prefix)}, indent=2))
        return 0
    import boto3

    url = wire(boto3.client("s3"), boto3.client("sqs"), args.bucket, args.queue, args.prefix, args.account)
    print(f"s3://{args.bucket}/{args.prefix} notifies {url}\nset LAKE_RAW_EVENTS_QUEUE={url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
