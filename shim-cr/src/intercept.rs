//! The interception points, all in one place. Every request enters `route`;
//! the few that kata-cr changes are dispatched to an inherent async fn here,
//! everything else goes to the inner shim untouched.
//!
//! Intercepted today:
//! - `Create`: runtime options naming kata-cr's config are rewritten to name
//!   the inner shim's (the same rewrite `start` applies to its stdin).

use protobuf::Message;
use ttrpc::{Request, Response};

use containerd_shim_protos::api::CreateTaskRequest;

use crate::config::Config;
use crate::error::Error;
use crate::forward::{is_task_service, status_response, Inner};
use crate::runtime_options::RuntimeOptions;
use crate::start::rewrite_options;

pub struct Router {
    inner: Inner,
    config: Config,
}

impl Router {
    pub fn new(inner: Inner, config: Config) -> Self {
        Router { inner, config }
    }

    pub async fn route(&self, req: Request) -> Response {
        if is_task_service(&req.service) && req.method == "Create" {
            return self.create(req).await;
        }
        self.inner.forward(req).await
    }

    async fn create(&self, mut req: Request) -> Response {
        let mut create = match CreateTaskRequest::parse_from_bytes(&req.payload) {
            Ok(c) => c,
            Err(e) => {
                let e = Error::InvalidArgument(format!("decode CreateTaskRequest: {e}"));
                return status_response(e.to_status());
            }
        };
        tracing::info!(id = %create.id, bundle = %create.bundle, restore = !create.checkpoint.is_empty(), "create");
        if self.rewrite_create_options(&mut create) {
            req.payload = create.write_to_bytes().expect("decoded message re-encodes");
        }
        self.inner.forward(req).await
    }

    /// Returns whether the request changed.
    fn rewrite_create_options(&self, create: &mut CreateTaskRequest) -> bool {
        let Some(any) = create.options.as_ref() else {
            return false;
        };
        let Ok(Some(opts)) = RuntimeOptions::from_any(any) else {
            return false;
        };
        match rewrite_options(&opts, &self.config) {
            Some(o) if o == opts => false,
            Some(o) => {
                let mut a = any.clone();
                a.value = o.encode();
                create.options = protobuf::MessageField::some(a);
                true
            }
            None => {
                create.options = protobuf::MessageField::none();
                true
            }
        }
    }
}
