//! The flags of commands that talk to a cluster (`audit`, `report --cluster`), mapped
//! onto [`palisade::cluster`].

use std::path::PathBuf;

use anyhow::Result;
use palisade::cluster::{Cluster, ConnectOptions};

/// Which cluster, and how to reach it.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then the in-cluster
    /// service account).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Objects per list request.
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub page_size: u32,
}

impl ClusterArgs {
    /// Connects.
    pub async fn connect(&self) -> Result<Cluster> {
        Ok(Cluster::connect(&ConnectOptions::new(self.kubeconfig.clone(), self.context.clone())).await?)
    }
}

/// A runtime for one command's cluster calls.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}
