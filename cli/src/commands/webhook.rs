//! `palisade webhook-config`.

use anyhow::{Context, Result};
use palisade::webhook_config::{WebhookOptions, webhook_config};

use crate::Outcome;
use crate::bundles::BundleArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    bundles: BundleArgs,
    /// Name of the ValidatingWebhookConfiguration.
    #[arg(long, default_value = "palisade")]
    name: String,
    /// Namespace of Palisade's Service.
    #[arg(long, default_value = "palisade-system")]
    namespace: String,
    /// Name of Palisade's Service.
    #[arg(long, default_value = "palisade")]
    service: String,
    /// Fail or Ignore when the webhook cannot be reached.
    #[arg(long, default_value = "Fail", value_parser = ["Fail", "Ignore"])]
    failure_policy: String,
    /// API server timeout for the call, in seconds (1-30).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=30))]
    timeout_seconds: u32,
    /// Namespaces never sent to the webhook (repeatable; default: system namespaces, Palisade's own, cert-manager).
    #[arg(long = "exclude-namespace", value_name = "NAMESPACE")]
    exclude_namespaces: Vec<String>,
    /// CA certificate (PEM) that signed the serving certificate, for caBundle.
    #[arg(long, value_name = "FILE", conflicts_with = "inject_ca_from")]
    ca_bundle: Option<String>,
    /// cert-manager Certificate (namespace/name) whose CA cert-manager injects.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    inject_ca_from: Option<String>,
    /// Call the webhook at this HTTPS URL (clientConfig.url, e.g.
    /// https://127.0.0.1:8443/validate) instead of the Service.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
}

pub fn run(args: Args) -> Result<Outcome> {
    let engine = args.bundles.engine(palisade::Mode::Admission)?;
    let mut options = WebhookOptions {
        name: args.name,
        namespace: args.namespace.clone(),
        service: args.service,
        failure_policy: args.failure_policy,
        timeout_seconds: args.timeout_seconds,
        ..Default::default()
    };
    if !args.exclude_namespaces.is_empty() {
        options.exclude_namespaces = args.exclude_namespaces;
    } else if !options.exclude_namespaces.contains(&args.namespace) {
        options.exclude_namespaces.push(args.namespace);
    }
    options.ca_bundle = match &args.ca_bundle {
        Some(f) => Some(std::fs::read_to_string(f).with_context(|| format!("{f}: cannot read"))?),
        None => None,
    };
    options.inject_ca_from = args.inject_ca_from;
    if let Some(url) = &args.url {
        anyhow::ensure!(url.starts_with("https://"), "--url {url}: the API server calls webhooks over HTTPS only");
    }
    options.url = args.url;
    let value = webhook_config(&engine, &options);
    print!("{}", serde_yaml_ng::to_string(&value)?);
    Ok(Outcome::Ok)
}
