"""The raw bucket's S3 event notifications, read from an SQS queue: which keys were created or removed.

The raw-arrival sensor uses them as hints of where to look, never as the truth: it lists each touched
folder again and compares data versions, so duplicated, reordered or late events change nothing. It
deletes the messages it read only at its next tick, once the cursor that records their effects is
committed; a tick that dies before that leaves them to reappear after the visibility timeout.
"""

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote_plus, urlsplit

import boto3
from botocore.config import Config

RECEIVE_BATCH = 10  # SQS's most messages per ReceiveMessage
# Long enough that a message is still hidden when the next tick deletes it, short enough that one read
# by a tick that died comes back soon.
VISIBILITY_TIMEOUT_S = 600


@dataclass(frozen=True)
class RawEvent:
    bucket: str
    key: str  # decoded: S3 sends keys URL-encoded, spaces as '+'
    removed: bool


@dataclass
class Batch:
    events: list[RawEvent] = field(default_factory=list)
    receipts: list[str] = field(default_factory=list)  # to delete once the tick's cursor is committed
    test_events: int = 0  # s3:TestEvent, sent when a notification is configured
    unreadable: list[str] = field(default_factory=list)  # message ids whose body is not an S3 event


class EventQueue:
    def __init__(self, client, url: str):
        self.client, self.url = client, url

    def receive(self, max_messages: int) -> Batch:
        """Up to `max_messages` messages, in batches of ten, without waiting for more."""
        batch = Batch()
        received = 0
        while received < max_messages:
            response = self.client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=min(RECEIVE_BATCH, max_messages - received),
                VisibilityTimeout=VISIBILITY_TIMEOUT_S,
                WaitTimeSeconds=0,
            )
            messages = response.get("Messages", [])
            if not messages:
                break
            received += len(messages)
            for message in messages:
                batch.receipts.append(message["ReceiptHandle"])
                try:
                    events = parse(message["Body"])
                except ValueError:
                    batch.unreadable.append(message.get("MessageId", "?"))
                    continue
                if events is None:
                    batch.test_events += 1
                else:
                    batch.events.extend(events)
        return batch

    def delete(self, receipts: Iterable[str]) -> int:
        """Deletes what it can; a receipt that expired (its message is visible again) is skipped:
        that message comes back, and is harmless to read twice. Returns how many were deleted."""
        deleted = 0
        for chunk in _chunks(list(receipts), RECEIVE_BATCH):
            response = self.client.delete_message_batch(
                QueueUrl=self.url, Entries=[{"Id": str(n), "ReceiptHandle": handle} for n, handle in enumerate(chunk)]
            )
            deleted += len(response.get("Successful", []))
        return deleted


def parse(body: str) -> list[RawEvent] | None:
    """The object events of one message (None: a test event). S3 writes straight to SQS, or through
    SNS, which wraps the event in a `Message` string."""
    try:
        document = json.loads(body)
        if isinstance(document, dict) and document.get("Type") == "Notification" and "Message" in document:
            document = json.loads(document["Message"])
    except (json.JSONDecodeError, TypeError) as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError("not an S3 event")
    if document.get("Event") == "s3:TestEvent":
        return None
    records = document.get("Records")
    if not isinstance(records, list):
        raise ValueError("no Records")
    events = []
    for record in records:
        try:
            name, s3 = record["eventName"], record["s3"]
            bucket, key = s3["bucket"]["name"], unquote_plus(s3["object"]["key"])
        except (KeyError, TypeError):
            raise ValueError("a record without eventName, bucket or key") from None
        if name.startswith(("ObjectCreated:", "ObjectRemoved:")):
            events.append(RawEvent(bucket, key, removed=name.startswith("ObjectRemoved:")))
    return events


def open_queue(url: str, *, region_name: str | None = None, max_attempts: int = 5, **credentials) -> EventQueue:
    """A queue client whose endpoint is the queue URL's own host: AWS's regional SQS endpoint, or a
    local server's."""
    parts = urlsplit(url)
    client = boto3.session.Session(region_name=region_name).client(
        "sqs",
        endpoint_url=f"{parts.scheme}://{parts.netloc}",
        config=Config(retries={"mode": "standard", "total_max_attempts": max_attempts}, connect_timeout=5, read_timeout=20),
        **{k: v for k, v in credentials.items() if v},
    )
    return EventQueue(client, url)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
