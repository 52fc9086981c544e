//! Opening the data directory: a broker of one shard ([`Broker::open`]), or
//! the shards of one broker sharing it ([`Broker::open_shards`],
//! `docs/shards.md`, "one data directory").
//!
//! With several shards, shard 0 alone reads the directory: the users,
//! permissions and parameters files, each vhost's folder (its marker, files
//! and definitions log, which it replays). What it finds it appends to the
//! metadata log, in one section, as ops: the access data as access ops, each
//! vhost's creation with its policies and parameters, then the replayed
//! routing ops as `LoggedOp::Replayed` (applied as the replay applied them).
//! The other shards open nothing themselves: they apply those ops, and each
//! opens the folders of the queues and delayed exchanges it owns as it
//! applies their declares (`recover`). A vhost's folder, log and marker are
//! shared through [`VhostFiles`]; a queue's folder is its owner's.

use std::io;
use std::sync::Arc;

use super::Broker;
use crate::core::access::auth::Users;
use crate::core::access::op::AccessOp;
use crate::core::access::permissions::{PermissionDef, Permissions};
use crate::core::amqp::meta::ShardLog;
use crate::core::config::CoreConfig;
use crate::core::model::ids::VhostName;
use crate::core::model::meta::{ShardId, Shards};
use crate::core::model::policy::PolicyKind;
use crate::core::model::vhost::VHost;
use crate::core::model::vhost_files::VhostFiles;

impl Broker {
    /// Opens the data directory and recovers durable state: a broker of one shard.
    pub fn open(config: CoreConfig, seed: u64) -> io::Result<Broker> {
        Broker::open_first(config, seed, None)
    }

    /// Opens the `n` shards of one broker on one data directory, shard 0
    /// first (which recovers it), each seeded `seed + i`. The brokers are
    /// moved to their threads after; with one shard it is [`Broker::open`].
    pub fn open_shards(config: CoreConfig, seed: u64, n: u16) -> io::Result<Vec<Broker>> {
        if n == 1 {
            return Ok(vec![Broker::open(config, seed)?]);
        }
        let log = ShardLog::new(n);
        let files = VhostFiles::new(n);
        (0..n)
            .map(|i| {
                let shards = Shards::new(ShardId(i), n);
                Broker::open_shard(config.clone(), seed.wrapping_add(u64::from(i)), shards, &log, &files)
            })
            .collect()
    }

    /// Opens shard `shards.me` of a broker whose shards share `log`, `files`
    /// and the data directory: shard 0 recovers the directory into the log;
    /// another shard applies what the log holds (opening the stores of its
    /// queues) and follows it from there.
    pub fn open_shard(
        config: CoreConfig,
        seed: u64,
        shards: Shards,
        log: &Arc<ShardLog>,
        files: &Arc<VhostFiles>,
    ) -> io::Result<Broker> {
        if shards.me == ShardId(0) {
            return Broker::open_first(config, seed, Some((shards, log.clone(), files.clone())));
        }
        let mut b = Broker::unopened(config, seed, Users::default(), Permissions::default());
        b.join_shards(shards, log.clone(), files.clone());
        b.catch_up_meta_or_fail().map_err(|e| io::Error::other(e.to_string()))?;
        Ok(b)
    }

    /// Opens the directory as its first reader: a broker of one shard, or
    /// shard 0 (`join`), which announces what it recovered (see the module's text).
    fn open_first(
        config: CoreConfig,
        seed: u64,
        join: Option<(Shards, Arc<ShardLog>, Arc<VhostFiles>)>,
    ) -> io::Result<Broker> {
        std::fs::create_dir_all(&config.data_dir)?;
        // users.json holds the users once the broker has started once; the first
        // start creates the configured default user (RabbitMQ's guest) in it.
        let mut first_start = false;
        let users = match Users::load(&config.data_dir)? {
            Some(u) => u,
            None => {
                first_start = true;
                let salt = (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32;
                let (name, password, loopback) = &config.default_user;
                let u = Users::with_default_user(name, password, *loopback, salt.to_le_bytes());
                u.save(&config.data_dir)?;
                u
            }
        };
        // The default user gets everything on "/" the first time (as RabbitMQ's
        // guest); a data directory from before permissions existed gets the same.
        let permissions = match Permissions::load(&config.data_dir)? {
            Some(p) if !first_start => p,
            _ => {
                let mut p = Permissions::default();
                p.set(PermissionDef {
                    user: config.default_user.0.clone(),
                    vhost: "/".into(),
                    configure: ".*".into(),
                    write: ".*".into(),
                    read: ".*".into(),
                })
                .expect("valid patterns");
                p.save(&config.data_dir)?;
                p
            }
        };
        let mut b = Broker::unopened(config, seed, users, permissions);
        b.global_parameters = ringmq_store::meta::read_json(
            &b.config
                .data_dir
                .join(crate::core::model::vhost_meta::GLOBAL_PARAMETERS_FILE),
        )?
        .unwrap_or_default();
        if let Some((shards, log, files)) = join {
            b.join_shards(shards, log, files);
        }
        // Every vhost directory is a vhost (its name is in its name file); the
        // first start creates "/". A deleted vhost is renamed before removal:
        // finish removing what a crash left.
        let root = b.config.data_dir.clone();
        for entry in std::fs::read_dir(&root)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "deleted") && path.is_dir() {
                tracing::info!(dir = %path.display(), "removing a vhost deleted before a crash");
                ringmq_store::changes::remove_dir_all(&path)?;
            }
        }
        let mut names: Vec<String> = ringmq_store::layout::list_vhosts(&root)?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        if first_start && !names.iter().any(|n| n == "/") {
            names.insert(0, "/".into());
        }
        b.in_meta_section(|b| {
            b.announce_access();
            names.iter().try_for_each(|name| b.open_vhost_at_start(name))
        })?;
        if let Some(path) = b.config.load_definitions.clone() {
            b.load_definitions_file(&path)?;
            crate::core::definitions::log::sync_now(&mut b.model);
        }
        Ok(b)
    }

    /// Opens a vhost found in the data directory at start: its folder, files
    /// and log, whose records are replayed. With several shards, its creation,
    /// policies, parameters and replayed ops go to the log.
    fn open_vhost_at_start(&mut self, name: &str) -> io::Result<()> {
        let key = vhost_name(name)?;
        let (root, store) = (self.config.data_dir.clone(), self.config.store);
        let (mut vhost, records) = match self.meta.as_ref().map(|m| m.files().clone()) {
            Some(files) => VHost::open_shared(&root, &key, store, &files)?,
            None => VHost::open(&root, &key, store)?,
        };
        crate::core::policy::apply::load(&mut vhost)?;
        // Transient queues never outlive the process: whatever an earlier run left
        // goes aside now and is removed once the broker serves.
        self.trash.extend(vhost.retire_transient()?);
        if self.meta.is_some() {
            let meta = vhost.meta.clone();
            self.keep_made(Some(AccessOp::VhostCreate {
                name: key.clone(),
                meta,
            }));
            for (set, kind) in [
                (&vhost.policies, PolicyKind::User),
                (&vhost.operator_policies, PolicyKind::Operator),
            ] {
                for def in set.defs() {
                    self.keep_made(Some(AccessOp::PolicyPut {
                        vhost: key.clone(),
                        def,
                        kind,
                    }));
                }
            }
            for parameter in vhost.parameters.clone() {
                self.keep_made(Some(AccessOp::ParameterPut {
                    vhost: key.clone(),
                    parameter,
                }));
            }
        }
        self.model.vhosts.insert(key.clone(), vhost);
        self.replaying(|b| crate::core::definitions::replay::replay(&mut b.model, &key, &records))
    }

    /// A vhost created while the broker runs (an access op applied). Its
    /// maker makes its folder: a folder left by a delete that did not finish
    /// is removed first (a new vhost is empty, as in RabbitMQ). Another
    /// shard's copy follows the maker's folder, and reads nothing.
    pub(crate) fn open_vhost(&mut self, name: &str) -> io::Result<()> {
        if self.model.vhosts.contains_key(name) {
            return Ok(());
        }
        let key = vhost_name(name)?;
        let (root, store) = (self.config.data_dir.clone(), self.config.store);
        let files = self.meta.as_ref().map(|m| (m.files().clone(), m.following()));
        if let Some((files, true)) = &files {
            self.model
                .vhosts
                .insert(key.clone(), VHost::follow(&root, &key, store, files));
            return Ok(());
        }
        let left = ringmq_store::layout::vhost_dir(&root, &key);
        if left.exists() {
            tracing::warn!(vhost = name, dir = %left.display(), "removing the folder a deleted vhost left");
            let doomed = left.with_extension("deleted");
            ringmq_store::changes::rename(&left, &doomed)?;
            ringmq_store::changes::remove_dir_all(&doomed)?;
        }
        let (mut vhost, records) = match &files {
            Some((files, _)) => VHost::open_shared(&root, &key, store, files)?,
            None => VHost::open(&root, &key, store)?,
        };
        debug_assert!(records.is_empty(), "a new folder has no records");
        crate::core::policy::apply::load(&mut vhost)?;
        self.model.vhosts.insert(key, vhost);
        Ok(())
    }

    /// With several shards, shard 0's users, permissions and global
    /// parameters as ops, for the others (in a section).
    fn announce_access(&mut self) {
        if self.meta.is_none() {
            return;
        }
        let mut ops: Vec<AccessOp> = self.users.iter().cloned().map(AccessOp::UserPut).collect();
        ops.extend(self.permissions.defs().into_iter().map(AccessOp::PermissionSet));
        ops.extend((self.permissions.topic.defs().into_iter()).map(AccessOp::TopicPermissionSet));
        ops.extend(self.global_parameters.iter().cloned().map(AccessOp::GlobalParameterPut));
        for op in ops {
            self.keep_made(Some(op));
        }
    }
}

fn vhost_name(name: &str) -> io::Result<VhostName> {
    // The one place a vhost enters the model: its name is checked here, so
    // every vhost held is one connection.open can name.
    VhostName::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("vhost {name:?}: {e}")))
}
