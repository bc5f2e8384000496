//! Faults on demand in a real (emulator-backed) SDK client: one operation fails, every other
//! one goes through. For promises that hinge on one call failing between others that work
//! (a claim that succeeds, then a release that does not), which aws-smithy-mocks alone cannot
//! stage against moto's real state.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Fails every call of one operation (by its name, e.g. `DeleteItem`) before it is sent, and
/// counts them. (It reads the operation's name before serialisation: before execution, the
/// operation's own configuration is not in the bag yet.)
#[derive(Debug, Clone)]
pub struct FailOperation {
    operation: &'static str,
    calls: Arc<AtomicUsize>,
}

impl FailOperation {
    pub fn new(operation: &'static str) -> Self {
        Self {
            operation,
            calls: Arc::default(),
        }
    }

    /// How many calls were failed.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Intercept for FailOperation {
    fn name(&self) -> &'static str {
        "FailOperation"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg
            .load::<Metadata>()
            .is_some_and(|m| m.name() == self.operation)
        {
            self.calls.fetch_add(1, Ordering::SeqCst);
            return Err(format!("{} fails on purpose (test)", self.operation).into());
        }
        Ok(())
    }
}

/// `$client` (of the SDK crate `$sdk`) with every call of `$operation` failing, and the handle.
macro_rules! failing {
    ($sdk:ident, $client:expr, $operation:expr) => {{
        let fault = FailOperation::new($operation);
        let config = $client
            .config()
            .to_builder()
            .interceptor(fault.clone())
            .build();
        ($sdk::Client::from_conf(config), fault)
    }};
}

/// `client` with every call of `operation` failing; the handle counts them.
pub fn dynamodb_failing(
    client: &aws_sdk_dynamodb::Client,
    operation: &'static str,
) -> (aws_sdk_dynamodb::Client, FailOperation) {
    failing!(aws_sdk_dynamodb, client, operation)
}

/// `client` with every call of `operation` (e.g. `SendMessageBatch`) failing; the handle
/// counts them.
pub fn sqs_failing(
    client: &aws_sdk_sqs::Client,
    operation: &'static str,
) -> (aws_sdk_sqs::Client, FailOperation) {
    failing!(aws_sdk_sqs, client, operation)
}
