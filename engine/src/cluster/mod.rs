//! Talking to a Kubernetes cluster (feature `cluster`): connecting with the `kube`
//! client (kubeconfig or in-cluster config), finding the API resources the loaded
//! policies match, and listing objects page by page. [`audit`] evaluates what runs in
//! the cluster; [`reports`] writes the aggregated PolicyReports back.
//!
//! Every failure is an [`Error::Cluster`] naming the API server, what was being done
//! (with the kind) and the HTTP status; a list that fails half way fails the whole
//! call, so partial results are never taken for a clean audit.

pub mod audit;
pub mod reports;
pub mod watch;

use std::path::PathBuf;
use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope, verbs};
use serde_json::Value;

use crate::error::{Error, Result};

/// How to reach the cluster. With neither `kubeconfig` nor `context` set, the usual
/// order applies: `$KUBECONFIG` / `~/.kube/config`, then the in-cluster service account.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// A kubeconfig file.
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig (default: its current context).
    pub context: Option<String>,
    /// Client-side limit: requests per second on average (`None`: unlimited).
    pub qps: Option<f32>,
    /// Requests allowed at once before `qps` applies.
    pub burst: u32,
}

impl ConnectOptions {
    /// Options for a kubeconfig file and context.
    pub fn new(kubeconfig: Option<PathBuf>, context: Option<String>) -> ConnectOptions {
        ConnectOptions { kubeconfig, context, qps: None, burst: 1 }
    }

    /// The same options with a client-side rate limit: `burst` requests at once, `qps`
    /// per second on average (as client-go's `--kube-api-qps`/`--kube-api-burst`).
    pub fn rate_limited(mut self, qps: f32, burst: u32) -> ConnectOptions {
        self.qps = Some(qps).filter(|q| *q > 0.0);
        self.burst = burst.max(1);
        self
    }
}

/// A connected API server.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    name: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("name", &self.name).finish_non_exhaustive()
    }
}

/// One API resource (a kind served by the cluster) that can be listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub(crate) api: ApiResource,
    /// Whether objects of this kind live in namespaces.
    pub namespaced: bool,
}

impl Resource {
    /// `group/version Kind` (`v1 Namespace` for the core group), as errors name it.
    pub fn display(&self) -> String {
        format!("{} {}", self.api.api_version, self.api.kind)
    }

    /// API group (`""` for core).
    pub fn group(&self) -> &str {
        &self.api.group
    }

    /// Kind.
    pub fn kind(&self) -> &str {
        &self.api.kind
    }
}

impl Cluster {
    /// Connects (reads the configuration; the first request checks it works).
    pub async fn connect(options: &ConnectOptions) -> Result<Cluster> {
        let what = options.kubeconfig.as_ref().map_or_else(|| "kubeconfig".to_string(), |p| p.display().to_string());
        let fail = |m: String| Error::Cluster {
            cluster: what.clone(),
            what: "load configuration".into(),
            status: None,
            message: m,
        };
        let kube_opts = KubeConfigOptions { context: options.context.clone(), ..Default::default() };
        let config = match &options.kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path).map_err(|e| fail(chain(&e)))?;
                kube::Config::from_custom_kubeconfig(file, &kube_opts).await.map_err(|e| fail(chain(&e)))?
            }
            None if options.context.is_some() => {
                kube::Config::from_kubeconfig(&kube_opts).await.map_err(|e| fail(chain(&e)))?
            }
            None => kube::Config::infer().await.map_err(|e| fail(chain(&e)))?,
        };
        Cluster::with_limit(config, options.qps.map(|q| (q, options.burst)))
    }

    /// A cluster from a ready `kube` configuration.
    pub fn from_config(config: kube::Config) -> Result<Cluster> {
        Cluster::with_limit(config, None)
    }

    /// A client whose requests are rate-limited to `(qps, burst)`: at most `burst`
    /// requests per `burst / qps` seconds (tower's fixed-window `RateLimit`).
    fn with_limit(config: kube::Config, limit: Option<(f32, u32)>) -> Result<Cluster> {
        let name = config.cluster_url.to_string().trim_end_matches('/').to_string();
        let fail = |e: kube::Error| Error::Cluster {
            cluster: name.clone(),
            what: "create a client".into(),
            status: None,
            message: chain(&e),
        };
        let builder = kube::client::ClientBuilder::try_from(config).map_err(fail)?;
        let client = match limit {
            Some((qps, burst)) => {
                let burst = burst.max(1);
                let window = Duration::from_secs_f32(burst as f32 / qps.max(0.001));
                builder.with_layer(&tower::limit::RateLimitLayer::new(u64::from(burst), window)).build()
            }
            None => builder.build(),
        };
        Ok(Cluster { client, name })
    }

    /// The API server's URL.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `kube` client, for callers that need more than this module offers.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    pub(crate) fn error(&self, what: impl Into<String>, e: &kube::Error) -> Error {
        let (status, message) = match e {
            kube::Error::Api(s) => (Some(s.code).filter(|c| *c != 0), s.message.clone()),
            other => (None, chain(other)),
        };
        Error::Cluster { cluster: self.name.clone(), what: what.into(), status, message }
    }

    /// Every API resource the server offers that can be listed, at its preferred version.
    pub async fn resources(&self) -> Result<Vec<Resource>> {
        let discovery = Discovery::new(self.client.clone())
            .run_aggregated()
            .await
            .map_err(|e| self.error("discover API resources", &e))?;
        let mut out = Vec::new();
        for group in discovery.groups() {
            for (api, caps) in group.recommended_resources() {
                if listable(&caps) {
                    out.push(Resource { api, namespaced: caps.scope == Scope::Namespaced });
                }
            }
        }
        Ok(out)
    }

    /// Lists every object of `resource` (in `namespace`, or everywhere), `page_size`
    /// at a time with `limit`/`continue`. Objects come with `apiVersion` and `kind`
    /// set and without `metadata.managedFields`.
    pub async fn list(&self, resource: &Resource, namespace: Option<&str>, page_size: u32) -> Result<Vec<Value>> {
        let mut pages = self.pages(resource, namespace, page_size);
        let mut out = Vec::new();
        while let Some(page) = pages.next().await? {
            out.extend(page);
        }
        Ok(out)
    }

    /// The same list, one page (one request) at a time, so that a caller can handle
    /// each page before the next arrives instead of holding them all.
    pub fn pages<'a>(&'a self, resource: &'a Resource, namespace: Option<&str>, page_size: u32) -> Pages<'a> {
        let api: Api<DynamicObject> = match namespace.filter(|_| resource.namespaced) {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource.api),
            None => Api::all_with(self.client.clone(), &resource.api),
        };
        let what = match namespace.filter(|_| resource.namespaced) {
            Some(ns) => format!("list {} in namespace {ns}", resource.display()),
            None => format!("list {}", resource.display()),
        };
        Pages { cluster: self, api, resource, what, page_size: page_size.max(1), token: None, done: false }
    }
}

/// The pages of a list (see [`Cluster::pages`]).
#[derive(Debug)]
pub struct Pages<'a> {
    cluster: &'a Cluster,
    api: Api<DynamicObject>,
    resource: &'a Resource,
    what: String,
    page_size: u32,
    token: Option<String>,
    done: bool,
}

impl Pages<'_> {
    /// The next page, or `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Vec<Value>>> {
        if self.done {
            return Ok(None);
        }
        let mut params = ListParams::default().limit(self.page_size);
        if let Some(t) = &self.token {
            params = params.continue_token(t);
        }
        let page = self.api.list(&params).await.map_err(|e| self.cluster.error(&self.what, &e))?;
        let items = page
            .items
            .into_iter()
            .map(|mut item| {
                item.metadata.managed_fields = None;
                object_value(&item, &self.resource.api)
            })
            .collect();
        self.token = page.metadata.continue_.filter(|t| !t.is_empty());
        self.done = self.token.is_none();
        Ok(Some(items))
    }
}

impl Cluster {
    /// The cluster's PolicyException objects (`palisade.dev/v1alpha1`), as documents
    /// named `CLUSTER PolicyException NAME`; none when the CRD is not installed.
    pub async fn policy_exceptions(&self) -> Result<Vec<crate::documents::Document>> {
        let gvk = kube::core::GroupVersionKind::gvk("palisade.dev", "v1alpha1", crate::exception::KIND);
        let Ok((api, caps)) = kube::discovery::pinned_kind(&self.client, &gvk).await else {
            return Ok(Vec::new());
        };
        let resource = Resource { api, namespaced: caps.scope == Scope::Namespaced };
        let items = self.list(&resource, None, 500).await?;
        Ok(items.into_iter().map(|value| exception_document(&self.name, value)).collect())
    }
}

/// An in-cluster PolicyException as a document for [`crate::exception::Exceptions::extended`].
pub(crate) fn exception_document(cluster: &str, value: Value) -> crate::documents::Document {
    let name = crate::object::name(&value).unwrap_or("(unnamed)").to_string();
    let file = format!("{cluster} PolicyException {name}");
    crate::documents::Document { value, source: crate::object::SourceLocation { file, document: 1, line: 0 } }
}

fn listable(caps: &ApiCapabilities) -> bool {
    caps.supports_operation(verbs::LIST)
}

/// A listed or watched object as a plain JSON value, the way it reads in a manifest.
fn object_value(item: &DynamicObject, api: &ApiResource) -> Value {
    let mut v = serde_json::to_value(item).unwrap_or(Value::Null);
    if let Some(map) = v.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(api.api_version.clone()));
        map.insert("kind".into(), Value::String(api.kind.clone()));
    }
    v
}

/// An error with its sources, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        next = cause.source();
    }
    s
}
