//! Resource alarms (free disk, memory): the state, which `Broker` holds and the
//! management API reads. What an alarm does to the AMQP connections (blocked,
//! unblocked, reading paused) is the session's: `amqp::alarms`.

/// The resource alarms, as RabbitMQ has them: while one is on, publishers are
/// blocked. Set by the io layer (which measures) and by the store (which sees
/// free space where it takes it); read by the management API.
#[derive(Debug, Clone, Copy, Default)]
pub struct Alarms {
    /// Free disk below `disk_free_limit`.
    pub disk: bool,
    /// Resident memory at or above `mem_limit`.
    pub mem: bool,
    /// The free-disk floor in bytes (0: none).
    pub disk_free_limit: u64,
    /// The memory high watermark in bytes (0: none).
    pub mem_limit: u64,
}

impl Alarms {
    /// Whether publishers are blocked.
    pub fn blocking(&self) -> bool {
        self.disk || self.mem
    }
}
