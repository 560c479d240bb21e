//! The Lua scripts, one per protocol step, each run atomically by `EVALSHA`.

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("../lua/prelude.lua"),
            "\n",
            include_str!(concat!("../lua/", $file))
        ))
    };
}

/// Every script, compiled once per process (redis loads them on first use per server).
pub(crate) struct Scripts {
    pub(crate) usage: Script,
    pub(crate) begin_rebuild: Script,
    pub(crate) finish_rebuild: Script,
    pub(crate) begin_ingest: Script,
    pub(crate) end_ingest: Script,
    pub(crate) forget: Script,
}

/// The scripts.
pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    usage: script!("usage.lua"),
    begin_rebuild: script!("begin_rebuild.lua"),
    finish_rebuild: script!("finish_rebuild.lua"),
    begin_ingest: script!("begin_ingest.lua"),
    end_ingest: script!("end_ingest.lua"),
    forget: script!("forget.lua"),
});
