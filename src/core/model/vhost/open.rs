//! Opening a vhost: its folder, marker and definitions log, alone or shared
//! by the shards of one broker (`model::vhost_files`), or following the
//! folder another shard made.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ringmq_codec::{FieldTable, ShortStr, ShortString};
use ringmq_store::definitions::DefinitionsLog;
use ringmq_store::{LastStop, StoreConfig};

use super::{Exchange, VHost, BUILTIN_EXCHANGES};
use crate::core::model::ids::VhostName;
use crate::core::model::vhost_files::{VhostFiles, VhostLog, VhostShare};

/// A vhost's `running` marker as a shard holds it.
pub(super) enum Marker {
    /// One shard: the vhost's alone.
    Own(ringmq_store::running::Running),
    /// Shared by the shards (`model::vhost_files`): the last to close releases it.
    Shared(Arc<VhostFiles>, VhostShare),
}

impl VHost {
    /// Opens (or creates) the vhost's directory and definitions log; the caller
    /// loads its policies (`policy::apply::load`, which matches the built-in
    /// exchanges against them) and replays the returned records.
    pub fn open(root: &Path, name: &VhostName, store_config: StoreConfig) -> std::io::Result<(VHost, Vec<Vec<u8>>)> {
        let dir = ringmq_store::layout::create_vhost_dir(root, name)?;
        // Durable before any store opens, so no delivery can come before it.
        let running = ringmq_store::running::Running::acquire(&dir)?;
        let last_stop = if running.previous_stop_unclean() {
            tracing::warn!(
                vhost = %name,
                "the last stop was not clean: recovered messages will be flagged redelivered"
            );
            LastStop::Unclean
        } else {
            LastStop::Clean
        };
        let (definitions, records) = DefinitionsLog::open(&dir.join("definitions.amqp"))?;
        let mut v = VHost::with(name, dir, store_config, VhostLog::new(definitions), last_stop);
        v.running = Some(Marker::Own(running));
        crate::core::model::vhost_meta::load_meta(&mut v)?;
        Ok((v, records))
    }

    /// [`Self::open`] by one of several shards (the vhost's maker, or shard 0
    /// at start): the folder's log and marker are registered in `files` for
    /// the other shards to follow.
    pub fn open_shared(
        root: &Path,
        name: &VhostName,
        store_config: StoreConfig,
        files: &Arc<VhostFiles>,
    ) -> std::io::Result<(VHost, Vec<Vec<u8>>)> {
        let (mut v, records) = VHost::open(root, name, store_config)?;
        let Some(Marker::Own(running)) = v.running.take() else {
            unreachable!("a vhost just opened holds its marker")
        };
        let share = files.register(name, &v.definitions, v.last_stop, running);
        v.running = Some(Marker::Shared(files.clone(), share));
        Ok((v, records))
    }

    /// This shard's copy of a vhost another shard made (its folder, log and
    /// marker are that shard's, found in `files`): nothing is read from the
    /// disk, what the vhost holds comes from the metadata log's ops. The copy
    /// of a vhost whose folder is gone already (deleted by another shard
    /// before this one applied its creation) has no log; applying the delete
    /// comes next.
    pub fn follow(root: &Path, name: &VhostName, store_config: StoreConfig, files: &Arc<VhostFiles>) -> VHost {
        let dir = ringmq_store::layout::vhost_dir(root, name);
        match files.follow(name) {
            Some((log, last_stop, share)) => {
                let mut v = VHost::with(name, dir, store_config, log, last_stop);
                v.running = Some(Marker::Shared(files.clone(), share));
                v
            }
            None => VHost::with(name, dir, store_config, VhostLog::gone(), LastStop::Clean),
        }
    }

    /// A vhost with its built-in exchanges and nothing else.
    fn with(
        name: &VhostName,
        dir: PathBuf,
        store_config: StoreConfig,
        definitions: VhostLog,
        last_stop: LastStop,
    ) -> VHost {
        let store_home = Arc::new(crate::core::model::queue::StoreHome {
            vhost_dir: dir.clone(),
            config: store_config,
        });
        let mut v = VHost {
            name: name.clone(),
            dir,
            store_home,
            exchanges: Default::default(),
            queues: Default::default(),
            queue_names: Default::default(),
            definitions,
            policies: Default::default(),
            operator_policies: Default::default(),
            meta: Default::default(),
            parameters: Vec::new(),
            store_config,
            route_work: Vec::new(),
            route_dests: Vec::new(),
            stats: Default::default(),
            queue_churn: (0, 0),
            store_gens: Default::default(),
            delayed_gens: Default::default(),
            running: None,
            last_stop,
        };
        for (n, kind) in BUILTIN_EXCHANGES {
            let mut x = Exchange::new(
                ShortString::from(ShortStr::lit(n)),
                *kind,
                true,
                false,
                false,
                FieldTable::default(),
            );
            x.builtin = true;
            v.exchanges.insert(x.name.clone(), x);
        }
        v
    }
}
