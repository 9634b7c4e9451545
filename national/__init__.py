"""National scale: province partitions as a Parquet dataset and the national indicators on Dask."""
