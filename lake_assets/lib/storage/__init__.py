"""Storage backends behind one interface: see `base.Storage`."""

from lake_assets.lib.storage.base import CommitConflict, ObjectInfo, Storage, is_hidden
from lake_assets.lib.storage.local import LocalStorage

__all__ = [
    "CommitConflict",
    "ObjectInfo",
    "Storage",
    "LocalStorage",
    "LakeStorageError",
    "is_hidden",
    "is_s3_root",
    "open_storage",
]


def __getattr__(name: str):
    if name == "LakeStorageError":  # lives with boto3, which is imported only when S3 is used
        from lake_assets.lib.storage.s3 import LakeStorageError

        return LakeStorageError
    raise AttributeError(name)


def is_s3_root(root: str) -> bool:
    return root.startswith(("s3://", "s3a://"))


def open_storage(root: str, *, spark_s3a: bool = False, client=None, **client_options) -> Storage:
    """The backend for a lake root: `s3://bucket/prefix` or a local folder. For S3, `client` is a
    boto3 client to share, else one is made from `client_options` (see `s3.make_s3_client`)."""
    if is_s3_root(root):
        from lake_assets.lib.storage.s3 import S3Storage  # boto3 is imported only when S3 is used

        return S3Storage(root, client=client, spark_s3a=spark_s3a, **client_options)
    return LocalStorage(root)
