"""Concurrent writers of one folder (the issue "Concurrent publishes lose data"), on the local lake and
on a real S3 server (SeaweedFS):

- the compare-and-swap primitive: exactly one of many simultaneous conditional writes wins;
- the issue's interleaving (A commits, B commits, A cleans up) and its neighbours, replayed step by
  step with the protocol's phases, and the old protocol failing the same replay (the control);
- commits whose answer was lost;
- N writers x M rounds, in threads and in separate processes, the folder read back after every round.
"""

import json
import multiprocessing
import queue
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import pytest
from botocore.exceptions import ConnectionClosedError

from lake_assets.lib.storage import CommitConflict, LocalStorage, open_storage
from lake_assets.lib.storage.publish import MANIFEST, Publication, publish, read_version
from lake_assets.lib.storage.s3 import S3Storage
from lake_assets_tests.delegating_storage import DelegatingStorage

PREFIX = "trusted/tmdb/dt=2024-03-31"
FILES_PER_WRITER = 3
BARRIER_TIMEOUT = 120  # seconds; a writer stuck this long fails the test instead of hanging it


# --- what a writer writes, and how a test reads the folder back --------------------------------


def _content(writer: str, round_: int, part: int) -> bytes:
    # ~40 KB, so that uploads take long enough to overlap.
    return f"writer={writer} round={round_} part={part}\n".encode() * 1000


def _writer_files(folder: Path, writer: str, round_: int) -> dict[str, Path]:
    """This writer's version: its parts named with a write id (as Spark's are), its content naming it."""
    folder.mkdir(parents=True, exist_ok=True)
    write_id = uuid.uuid4().hex[:8]
    files = {}
    for part in range(FILES_PER_WRITER):
        name = f"part-{part:05d}-{writer}-r{round_}-{write_id}.bin"
        (folder / name).write_bytes(_content(writer, round_, part))
        files[name] = folder / name
    return files


def _read_back(storage, *, exact: bool = True) -> tuple[str, int] | None:
    """The folder as one writer's version: (writer, round) when the current manifest's files all
    exist and are exactly one writer's parts of one round, and (`exact`) the folder holds nothing
    else; raises AssertionError otherwise; None when nothing was ever committed. Reads through the
    plain storage API (list + get), not through the protocol's readers."""
    prefix = PREFIX
    manifest = f"{prefix}/{MANIFEST}"
    listed = {obj.key for obj in storage.list(f"{prefix}/")} - {manifest}
    current = read_version(storage, prefix)
    if current is None:
        return None
    missing = sorted(set(current.keys) - listed)
    assert not missing, f"the manifest of version {current.id} names files that do not exist: {missing}"
    assert not exact or listed == set(current.keys), f"files beside version {current.id}: {sorted(listed - set(current.keys))}"
    owners = set()
    for key in current.keys:
        name = key.rsplit("/", 1)[1]
        part, writer, round_ = int(name.split("-")[1]), name.split("-")[2], int(name.split("-")[3][1:])
        assert storage.get_bytes(key) == _content(writer, round_, part), f"{key} does not hold its writer's bytes"
        owners.add((writer, round_, part))
    versions = {(writer, round_) for writer, round_, _ in owners}
    assert len(versions) == 1 and len(owners) == FILES_PER_WRITER, f"not one writer's whole version: {sorted(owners)}"
    return versions.pop()


# --- the primitive -------------------------------------------------------------------------------


def test_conditional_put_creates_once_and_swaps_only_the_expected_version(storage_backend):
    storage = storage_backend
    key = "t/_manifest.json"
    first = storage.put_bytes_if(b"one", key, expected_etag=None)
    assert storage.get_with_etag(key) == (b"one", first)
    with pytest.raises(CommitConflict):
        storage.put_bytes_if(b"two", key, expected_etag=None)  # it exists
    assert storage.get_bytes(key) == b"one"

    second = storage.put_bytes_if(b"two", key, expected_etag=first)
    assert second != first and storage.get_with_etag(key) == (b"two", second)
    with pytest.raises(CommitConflict):
        storage.put_bytes_if(b"three", key, expected_etag=first)  # stale: another writer replaced it
    assert storage.get_bytes(key) == b"two"

    with pytest.raises(CommitConflict):
        storage.put_bytes_if(b"x", "t/gone.json", expected_etag=second)
    assert storage.get_with_etag("t/gone.json") is None
    assert [obj.key for obj in storage.list("t/")] == [key]  # no lock or temporary file beside it


def test_exactly_one_of_many_simultaneous_conditional_writes_wins(storage_backend):
    storage = storage_backend
    for trial in range(3):
        key = f"race/{trial}/_manifest.json"
        outcomes = _race(16, lambda writer, key=key: storage.put_bytes_if(f"create {writer}".encode(), key, expected_etag=None))
        (winner,) = [writer for writer, won in outcomes.items() if won]
        data, tag = storage.get_with_etag(key)
        assert data == f"create {winner}".encode()

        outcomes = _race(
            8, lambda writer, key=key, tag=tag: storage.put_bytes_if(f"swap {writer}".encode(), key, expected_etag=tag)
        )
        (winner,) = [writer for writer, won in outcomes.items() if won]
        assert storage.get_bytes(key) == f"swap {winner}".encode()


def _race(writers: int, write) -> dict[int, bool]:
    barrier = threading.Barrier(writers)
    outcomes = {}

    def run(writer: int) -> None:
        barrier.wait(BARRIER_TIMEOUT)
        try:
            write(writer)
            outcomes[writer] = True
        except CommitConflict:
            outcomes[writer] = False

    threads = [threading.Thread(target=run, args=(writer,)) for writer in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BARRIER_TIMEOUT)
    assert len(outcomes) == writers
    return outcomes


# --- interleavings, step by step -----------------------------------------------------------------


class _OldProtocol:
    """The control: the protocol before the compare-and-swap, in the same phases. Its commit is a plain
    PUT of the manifest, and its clean-up deletes every file its own manifest does not name."""

    def __init__(self, storage, prefix: str, files: dict[str, Path]):
        self.storage, self.prefix = storage, prefix
        self.files = {f"{prefix}/{name}": path for name, path in files.items()}

    def upload(self):
        for key, path in self.files.items():
            self.storage.put_file(path, key)

    def commit(self, retries: int = 0):
        files = [{"name": key[len(self.prefix) + 1 :], "bytes": 0} for key in sorted(self.files)]
        self.storage.put_bytes(json.dumps({"version": uuid.uuid4().hex, "files": files}).encode(), f"{self.prefix}/{MANIFEST}")

    def clean_up(self):
        keep = {*self.files, f"{self.prefix}/{MANIFEST}"}
        self.storage.delete([obj.key for obj in self.storage.list(f"{self.prefix}/") if obj.key not in keep])


def _replay(storage, steps: str, tmp_path: Path, retries: int, protocol=Publication) -> dict:
    """Run `steps` ("A.begin B.begin A.upload ...") for writers A and B over an existing version of
    writer V, checking after every step that the current manifest's files all exist and are exactly
    one writer's version (other writers' uploads may lie beside them: they are in flight).
    A writer whose commit raised CommitConflict takes no further steps. Returns the writers' state."""
    publish(storage, PREFIX, _writer_files(tmp_path / "V", "V", 0))
    writers = {name: {"files": _writer_files(tmp_path / name, name, 0)} for name in "AB"}
    seen = []
    for step in steps.split():
        name, phase = step.split(".")
        writer = writers[name]
        if "error" in writer:
            continue
        try:
            if phase == "begin":
                writer["publication"] = protocol(storage, PREFIX, writer["files"])
            elif phase == "commit":
                writer["published"] = writer["publication"].commit(retries)
            else:
                getattr(writer["publication"], phase)()
        except CommitConflict as conflict:
            writer["error"] = conflict
        seen.append((step, _read_back(storage, exact=False)))
    return {"seen": seen, **writers}


ISSUE = "A.begin B.begin A.upload B.upload A.commit B.commit A.clean_up B.clean_up"
INTERLEAVINGS = {
    "issue: A commits, B commits, A cleans up": ISSUE,
    "A cleans up while B has uploaded but not committed": "A.begin B.begin A.upload B.upload A.commit A.clean_up B.commit B.clean_up",
    "B uploads after A commits, before A cleans up": "A.begin B.begin A.upload A.commit B.upload A.clean_up B.commit B.clean_up",
    "B starts after A committed, A cleans up late": "A.begin A.upload A.commit B.begin B.upload B.commit A.clean_up B.clean_up",
}


def test_the_old_protocol_loses_the_partition_in_the_issues_interleaving(storage_backend, tmp_path):
    """The control: the same replay and checks catch the bug the issue describes."""
    with pytest.raises(AssertionError, match="names files that do not exist"):
        _replay(storage_backend, ISSUE, tmp_path, retries=0, protocol=_OldProtocol)
    current = read_version(storage_backend, PREFIX)
    existing = {obj.key for obj in storage_backend.list(f"{PREFIX}/")}
    assert current.keys and not set(current.keys) & existing  # B's manifest, and none of B's files: the partition is gone


@pytest.mark.parametrize("retries", [0, 1], ids=["fail", "retry-once"])
@pytest.mark.parametrize("steps", INTERLEAVINGS.values(), ids=INTERLEAVINGS.keys())
def test_no_committed_file_disappears_in_any_interleaving(storage_backend, tmp_path, steps, retries):
    state = _replay(storage_backend, steps, tmp_path, retries)
    final = _read_back(storage_backend)  # and now nothing else is left in the folder
    committed = [name for name in "AB" if "published" in state[name]]
    failed = [name for name in "AB" if "error" in state[name]]
    assert sorted(committed + failed) == ["A", "B"]
    # The last writer to commit holds the folder, whole; every step in between read back as one version.
    last = max(committed, key=lambda name: steps.split().index(f"{name}.commit"))
    assert final == (last, 0)
    assert read_version(storage_backend, PREFIX).id == state[last]["published"].version
    for name in failed:
        message = str(state[name]["error"])
        assert "\n" not in message and storage_backend.uri(PREFIX) in message
        assert f"another writer committed version {state[last]['published'].version} first" in message
    if steps == ISSUE:
        # Retrying, B rebases on A's version and replaces it; failing, B leaves A's version intact.
        assert (committed, failed) == ((["A", "B"], []) if retries else (["A"], ["B"]))
        if retries:
            assert state["B"]["published"].previous == state["A"]["published"].version


class _AnswerLost(DelegatingStorage):
    """The manifest write reaches the storage, but its answer does not reach the writer; `meanwhile`
    runs before the writer hears of it (another writer acting in that gap)."""

    def __init__(self, inner, meanwhile=lambda: None):
        super().__init__(inner)
        self.meanwhile = meanwhile

    def put_bytes_if(self, data, key, *, expected_etag):
        self.inner.put_bytes_if(data, key, expected_etag=expected_etag)
        self.meanwhile()
        raise OSError("injected: connection reset before the answer")


def test_a_commit_whose_answer_was_lost_is_recognised_as_committed(storage_backend, tmp_path):
    storage = storage_backend
    publish(storage, PREFIX, _writer_files(tmp_path / "V", "V", 0))
    published = publish(_AnswerLost(storage), PREFIX, _writer_files(tmp_path / "A", "A", 0))
    assert _read_back(storage) == ("A", 0)  # committed, its files kept, V's removed
    assert read_version(storage, PREFIX).id == published.version

    # Committed, then replaced by B before A could even read: A must neither retry nor delete.
    late = {}

    def b_commits_on_top():
        late["B"] = publish(storage, PREFIX, _writer_files(tmp_path / "B", "B", 0))

    c = publish(_AnswerLost(storage, b_commits_on_top), PREFIX, _writer_files(tmp_path / "C", "C", 0))
    assert (c.previous, late["B"].previous) == (published.version, c.version)  # A, then C, then B
    assert _read_back(storage) == ("B", 0)  # B's whole version; A's files removed by C, C's by B


def test_a_commit_that_failed_without_writing_removes_its_files(storage_backend, tmp_path):
    class _Unreachable(DelegatingStorage):
        def put_bytes_if(self, data, key, *, expected_etag):
            raise OSError("injected: connection refused")

    storage = storage_backend
    publish(storage, PREFIX, _writer_files(tmp_path / "V", "V", 0))
    with pytest.raises(OSError, match="connection refused"):
        publish(_Unreachable(storage), PREFIX, _writer_files(tmp_path / "A", "A", 0))
    assert _read_back(storage) == ("V", 0)


def test_s3_retry_after_a_lost_answer_is_not_taken_for_a_lost_race(s3_lake_root, tmp_path):
    """On S3 the lost answer is real: the first PUT is applied, the connection then drops, botocore
    retries, and the retry meets 412. That is "outcome unknown", never "another writer won"."""
    import os

    storage = S3Storage(s3_lake_root, endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    publish(storage, PREFIX, _writer_files(tmp_path / "V", "V", 0))
    other = S3Storage(s3_lake_root, endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    dropped = []

    def apply_then_drop(request, **_):
        expected = request.headers.get("If-Match")
        if expected is None or dropped:
            return  # data uploads, and the retry
        expected = expected.decode() if isinstance(expected, bytes) else expected
        body = request.body
        if hasattr(body, "read"):
            position = body.tell()
            body, _ = body.read(), body.seek(position)
        other.put_bytes_if(body, f"{PREFIX}/{MANIFEST}", expected_etag=expected.strip('"'))
        dropped.append(request.url)
        raise ConnectionClosedError(endpoint_url=request.url)

    storage.client.meta.events.register("before-send.s3.PutObject", apply_then_drop)
    published = publish(storage, PREFIX, _writer_files(tmp_path / "A", "A", 0))
    assert dropped, "the conditional PUT was not intercepted"
    assert read_version(storage, PREFIX).id == published.version
    assert _read_back(storage) == ("A", 0)


# --- N writers x M rounds ------------------------------------------------------------------------


class Outcome(NamedTuple):
    writer: str
    round: int
    kind: str  # committed | conflict | error
    detail: str  # the version committed, or the message
    commit_attempts: int


class _CountedCommits(DelegatingStorage):
    """Counts commit attempts; with `gate`, the first one waits until every writer reaches its commit,
    so that they all race on the same base version."""

    def __init__(self, inner, gate):
        super().__init__(inner)
        self.gate, self.attempts = gate, 0

    def put_bytes_if(self, data, key, *, expected_etag):
        self.attempts += 1
        if self.gate is not None and self.attempts == 1:
            self.gate.wait(BARRIER_TIMEOUT)
        return self.inner.put_bytes_if(data, key, expected_etag=expected_etag)


def _publish_round(storage, writer: str, round_: int, workdir: Path, gate) -> Outcome:
    counted = _CountedCommits(storage, gate)
    try:
        published = publish(counted, PREFIX, _writer_files(workdir / f"{writer}-r{round_}", writer, round_))
        return Outcome(writer, round_, "committed", published.version, counted.attempts)
    except CommitConflict as conflict:
        return Outcome(writer, round_, "conflict", str(conflict), counted.attempts)
    except Exception as error:  # the test fails on it, with this message
        return Outcome(writer, round_, "error", f"{type(error).__name__}: {error}", counted.attempts)


def _writer_loop(root: str, endpoint: str | None, writer: str, rounds: int, workdir: str, start, gate, done, results) -> None:
    """One writer (a thread, or a process of its own), publishing once per round."""
    storage = open_storage(root, endpoint_url=endpoint, region_name="us-east-1") if endpoint else open_storage(root)
    for round_ in range(rounds):
        start.wait(BARRIER_TIMEOUT)
        results.put(_publish_round(storage, writer, round_, Path(workdir), gate))
        done.wait(BARRIER_TIMEOUT)


@pytest.mark.parametrize("gated", [True, False], ids=["commits-at-once", "free-running"])
@pytest.mark.parametrize("kind, writers, rounds", [("threads", 4, 8), ("processes", 4, 5)])
def test_n_writers_m_rounds_never_lose_a_committed_file(storage_backend, tmp_path, kind, writers, rounds, gated):
    import os

    storage = storage_backend
    endpoint = os.environ["AWS_ENDPOINT_URL"] if isinstance(storage, S3Storage) else None
    root = storage.root_uri
    if kind == "threads":
        make_barrier, results, spawn = threading.Barrier, queue.Queue(), threading.Thread
    else:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no boto3 state copied by fork
        make_barrier, results, spawn = context.Barrier, context.Queue(), context.Process
    start, done = make_barrier(writers + 1), make_barrier(writers + 1)
    gate = make_barrier(writers) if gated else None
    names = [f"w{index}" for index in range(writers)]
    workers = [
        spawn(target=_writer_loop, args=(root, endpoint, name, rounds, str(tmp_path), start, gate, done, results))
        for name in names
    ]
    for worker in workers:
        worker.start()
    totals, finished = Counter(), False
    try:
        for round_ in range(rounds):
            start.wait(BARRIER_TIMEOUT)
            done.wait(BARRIER_TIMEOUT)
            outcomes = [results.get(timeout=BARRIER_TIMEOUT) for _ in names]
            assert sorted(o.writer for o in outcomes) == names and {o.round for o in outcomes} == {round_}
            assert not [o for o in outcomes if o.kind == "error"]
            committed = {o.detail: o.writer for o in outcomes if o.kind == "committed"}
            assert committed, f"round {round_}: every writer failed"
            # The folder is exactly the version of a writer that committed in this round.
            winner = _read_back(storage)
            assert winner[1] == round_ and winner[0] == committed[read_version(storage, PREFIX).id]
            for outcome in outcomes:
                if outcome.kind == "conflict":
                    assert "\n" not in outcome.detail and "another writer committed version" in outcome.detail
            if gated:  # all raced on one base: the compare-and-swap let exactly one through at first
                assert sum(o.kind == "committed" and o.commit_attempts == 1 for o in outcomes) == 1
            totals.update(
                commits=len(committed),
                rebased=sum(o.kind == "committed" and o.commit_attempts > 1 for o in outcomes),
                failed=sum(o.kind == "conflict" for o in outcomes),
                lost_races=sum(o.commit_attempts - (o.kind == "committed") for o in outcomes),
            )
        finished = True
    finally:
        for barrier in (start, done, gate) if not finished else ():
            if barrier is not None:
                barrier.abort()  # a failed check must not leave writers waiting for the next round
        for worker in workers:
            worker.join(BARRIER_TIMEOUT)
            if kind == "processes" and worker.is_alive():
                worker.terminate()
    backend = "S3 (SeaweedFS)" if endpoint else "local"
    print(
        f"\n{kind} x {backend}, {'commits at once' if gated else 'free-running'}: {writers} writers x {rounds} rounds = "
        f"{writers * rounds} publishes: {totals['commits']} committed ({totals['rebased']} after rebasing on a winner), "
        f"{totals['failed']} failed cleanly, {totals['lost_races']} lost races; every round read back as one writer's whole version"
    )
    assert totals["commits"] + totals["failed"] == writers * rounds
    if gated:
        assert totals["lost_races"] >= (writers - 1) * rounds


def test_local_conditional_writes_exclude_each_other_across_processes_too(tmp_path):
    """The folder lock is a kernel flock: held across processes, released when its holder ends."""
    storage = LocalStorage(tmp_path / "lake")
    tag = storage.put_bytes_if(b"base", "t/_manifest.json", expected_etag=None)
    context = multiprocessing.get_context("spawn")
    outcomes, start = context.Queue(), context.Barrier(8)
    racers = [
        context.Process(target=_swap_in_process, args=(str(tmp_path / "lake"), tag, racer, start, outcomes)) for racer in range(8)
    ]
    for racer in racers:
        racer.start()
    won = [outcomes.get(timeout=BARRIER_TIMEOUT) for _ in racers]
    for racer in racers:
        racer.join(BARRIER_TIMEOUT)
    winners = [racer for racer, success in won if success]
    assert len(winners) == 1 and storage.get_bytes("t/_manifest.json") == f"racer {winners[0]}".encode()


def _swap_in_process(root: str, tag: str, racer: int, start, outcomes) -> None:
    storage = LocalStorage(root)
    start.wait(BARRIER_TIMEOUT)
    try:
        storage.put_bytes_if(f"racer {racer}".encode(), "t/_manifest.json", expected_etag=tag)
        outcomes.put((racer, True))
    except CommitConflict:
        outcomes.put((racer, False))
