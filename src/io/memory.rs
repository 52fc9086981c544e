//! Memory watch: the process's resident set and the machine's RAM, from /proc,
//! for the memory high watermark (RabbitMQ's `vm_memory_high_watermark`).

/// Resident bytes of this process (VmRSS), 0 if /proc cannot be read.
pub fn rss_bytes() -> u64 {
    proc_kib("/proc/self/status", "VmRSS:")
}

/// Total RAM of the machine (MemTotal), 0 if /proc cannot be read.
pub fn ram_bytes() -> u64 {
    proc_kib("/proc/meminfo", "MemTotal:")
}

/// The `<key> <n> kB` line of a /proc file, in bytes.
fn proc_kib(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with(key))?;
            line[key.len()..].split_whitespace().next()?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_uses_some_of_the_ram() {
        let (rss, ram) = (super::rss_bytes(), super::ram_bytes());
        assert!(rss > 0 && ram > rss, "rss {rss}, ram {ram}");
    }
}
