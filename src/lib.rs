//! ringmq: the broker library.
