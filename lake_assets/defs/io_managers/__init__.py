"""IO managers: the only code that knows where an asset's data lives.

`raw.RawZoneIOManager` lands files and JSON records and hands the trusted assets what they read;
`trusted.TrustedParquetIOManager` publishes a contracted DataFrame to the trusted Iceberg tables and
loads their current snapshot. Every asset runs unchanged on the local lake and on S3.
"""
