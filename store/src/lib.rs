//! ringmq-store: the disk layer (see README.md and ../shared/DESIGN.md).
