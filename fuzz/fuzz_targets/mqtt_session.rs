//! The MQTT session (`core::mqtt`) over a whole broker in memory: any bytes
//! after (or instead of) a valid CONNECT and a SUBSCRIBE to `#`, fed in
//! pieces of any size, with the output taken, time passing (keepalive,
//! timers) and the connection ending at last. Invariant: nothing panics,
//! every input is taken or kept whole (`used <= len`), and the output is
//! MQTT packets the codec decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringmq_fuzz::mqtt::run(data));
