//! `palisade audit`: evaluate what runs in a cluster, optionally writing aggregated
//! PolicyReports back.

use anyhow::Result;
use palisade::cluster::audit::{self, AuditOptions};
use palisade::cluster::reports;

use crate::Outcome;
use crate::bundles::BundleArgs;
use crate::cluster::{ClusterArgs, ReportArgs, runtime};
use crate::commands::scan::OutputArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    bundles: BundleArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    out: OutputArgs,
    /// Audit only this namespace (the inventory of referential rules stays cluster-wide).
    #[arg(short, long, conflicts_with = "all_namespaces")]
    namespace: Option<String>,
    /// Audit every namespace (the default).
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Create or update aggregated reports in the cluster: a PolicyReport per namespace
    /// and a ClusterPolicyReport per bundle; reports palisade wrote before that the
    /// audit no longer produces are deleted. With --namespace only that namespace's
    /// report is written or pruned.
    #[arg(long)]
    write_reports: bool,
    #[command(flatten)]
    reports: ReportArgs,
}

pub fn run(args: Args) -> Result<Outcome> {
    let engine = args.bundles.engine(palisade::Mode::Scan)?;
    let mut options = AuditOptions::default();
    options.namespace = args.namespace.clone();
    options.page_size = args.cluster.page_size;
    let rt = runtime()?;
    let audit = rt.block_on(async {
        let cluster = args.cluster.connect().await?;
        let audit = audit::audit(&cluster, &engine, &options).await?;
        crate::bundles::warn_expiring_in_cluster(engine.exceptions(), audit.exceptions.as_ref());
        let listed: usize = audit.listed.values().sum();
        eprintln!("palisade: listed {listed} objects of {} kinds from {}", audit.listed.len(), cluster.name());
        if args.write_reports {
            let (flavor, cap) = (args.reports.flavor(), args.reports.report_results_cap);
            let ns = args.namespace.as_deref();
            let w = reports::write(&cluster, &audit.report, engine.policies(), (flavor, cap), ns).await?;
            eprintln!(
                "palisade: wrote {} reports ({} results, {} omitted by the cap, {} bytes); deleted {} stale",
                w.reports, w.results, w.omitted, w.bytes, w.deleted
            );
        }
        anyhow::Ok(audit)
    })?;
    args.out.finish(&audit.report, &engine, "the audit is incomplete")
}
