"""Records in and out: readers and writers of every format, compressed and sharded files, and
the durable (atomic, fsync'd) replacement of files that every part of guard writes with."""
