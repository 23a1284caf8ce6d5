"""Storage backends behind one interface: see `base.Storage`."""

from lake_assets.storage.base import ObjectInfo, Storage
from lake_assets.storage.local import LocalStorage

__all__ = ["ObjectInfo", "Storage", "LocalStorage", "LakeStorageError", "open_storage"]


def __getattr__(name: str):
    if name == "LakeStorageError":  # lives with boto3, which is imported only when S3 is used
        from lake_assets.storage.s3 import LakeStorageError

        return LakeStorageError
    raise AttributeError(name)


def open_storage(root: str, **s3_options) -> Storage:
    """The backend for a lake root: `s3://bucket/prefix` or a local folder."""
    if root.startswith(("s3://", "s3a://")):
        from lake_assets.storage.s3 import S3Storage  # boto3 is imported only when S3 is used

        return S3Storage(root, **s3_options)
    return LocalStorage(root)
