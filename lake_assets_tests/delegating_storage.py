"""A storage that passes every call to another one: tests subclass it to inject failures, pauses
and interleavings at exact points of the publish protocol."""

from lake_assets.lib.storage.base import Storage


class DelegatingStorage(Storage):
    def __init__(self, inner: Storage):
        self.inner = inner
        self.root_uri = inner.root_uri

    def put_file(self, local_path, key):
        self.inner.put_file(local_path, key)

    def put_bytes(self, data, key):
        self.inner.put_bytes(data, key)

    def get_bytes(self, key):
        return self.inner.get_bytes(key)

    def get_with_etag(self, key):
        return self.inner.get_with_etag(key)

    def put_bytes_if(self, data, key, *, expected_etag):
        return self.inner.put_bytes_if(data, key, expected_etag=expected_etag)

    def get_range(self, key, start, length):
        return self.inner.get_range(key, start, length)

    def open_read(self, key):
        return self.inner.open_read(key)

    def download(self, key, local_path):
        self.inner.download(key, local_path)

    def copy(self, source_key, key):
        self.inner.copy(source_key, key)

    def list(self, prefix, start_after=None):
        return self.inner.list(prefix, start_after)

    def delete(self, keys):
        self.inner.delete(keys)
