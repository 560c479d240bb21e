//! The durable spill queue: batches the sink would not take, kept on disk in order until it
//! answers again, across restarts of the host application.

#[cfg(feature = "spill")]
mod sqlite;

#[cfg(feature = "spill")]
pub(crate) use sqlite::SpillQueue;

/// Without the `spill` feature there is no queue: the type is uninhabited, so an
/// `Option<SpillQueue>` is always `None` and every method is unreachable.
#[cfg(not(feature = "spill"))]
#[derive(Debug, Clone)]
pub(crate) enum SpillQueue {}

#[cfg(not(feature = "spill"))]
impl SpillQueue {
    pub(crate) async fn open(_path: std::path::PathBuf) -> Result<Self, crate::ClientError> {
        Err(crate::ClientError::Config(
            "spill_path needs the `spill` feature of metering-client".into(),
        ))
    }

    pub(crate) fn len(&self) -> u64 {
        match *self {}
    }

    pub(crate) async fn append(
        &self,
        _events: &[crate::wire::Pending],
    ) -> Result<(), crate::ClientError> {
        match *self {}
    }

    pub(crate) async fn peek(
        &self,
        _limit: usize,
    ) -> Result<Vec<(i64, metering_core::NewEvent)>, crate::ClientError> {
        match *self {}
    }

    pub(crate) async fn remove_through(&self, _seq: i64) -> Result<(), crate::ClientError> {
        match *self {}
    }
}
