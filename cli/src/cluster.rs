//! The flags of commands that talk to a cluster (`audit`, `report --cluster`, `serve
//! --cluster`), mapped onto [`palisade::cluster`].

use std::path::PathBuf;

use anyhow::Result;
use palisade::cluster::{Cluster, ConnectOptions};
use palisade::report::policy_report::Flavor;

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
    /// Client-side rate limit: API requests per second on average (0: unlimited).
    #[arg(long, value_name = "QPS", default_value_t = 20.0)]
    pub kube_api_qps: f32,
    /// Client-side rate limit: requests allowed at once before the QPS applies.
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub kube_api_burst: u32,
}

impl ClusterArgs {
    /// The connection options these flags describe.
    pub fn options(&self) -> ConnectOptions {
        ConnectOptions::new(self.kubeconfig.clone(), self.context.clone())
            .rate_limited(self.kube_api_qps, self.kube_api_burst)
    }

    /// Connects.
    pub async fn connect(&self) -> Result<Cluster> {
        Ok(Cluster::connect(&self.options()).await?)
    }
}

/// How aggregated reports are written into the cluster.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Which report API to write.
    #[arg(long, value_enum, default_value_t = ReportApi::Wgpolicyk8s)]
    report_api: ReportApi,
    /// At most this many results per report (failures first); the rest are counted in
    /// the summary and the annotation palisade.dev/results-omitted.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub report_results_cap: usize,
}

impl ReportArgs {
    /// The report API chosen.
    pub fn flavor(&self) -> Flavor {
        match self.report_api {
            ReportApi::Wgpolicyk8s => Flavor::WgPolicy,
            ReportApi::Openreports => Flavor::OpenReports,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReportApi {
    /// wgpolicyk8s.io/v1alpha2 PolicyReport / ClusterPolicyReport.
    Wgpolicyk8s,
    /// openreports.io/v1alpha1 Report / ClusterReport.
    Openreports,
}

/// A runtime for one command's cluster calls.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}
