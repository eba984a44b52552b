//! The DynamoDB client: region, endpoint and credentials, and how its errors are read.
//!
//! Credentials come from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, and
//! `AWS_SESSION_TOKEN` for temporary credentials), the region from the plan or
//! `AWS_REGION`/`AWS_DEFAULT_REGION`. The SDK's own retries are off: [`crate::write`] retries
//! throttled and failed requests itself, with backoff and jitter, and resends what a batch
//! left unprocessed (which the SDK never does).

use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use tsmigrate_core::{End, Error, Result};

use crate::options::DynamoOptions;

/// The SDK client of a DynamoDB target, with its description for messages.
#[derive(Clone, Debug)]
pub struct Dynamo {
    /// The SDK client (cheap to clone).
    pub client: Client,
    /// `DynamoDB at <endpoint> (<region>)`, for messages.
    pub describe: String,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Dynamo {
    /// A client for the plan's region, endpoint and the environment's credentials.
    pub fn connect(opts: &DynamoOptions) -> Result<Dynamo> {
        let region = opts
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .ok_or_else(|| {
                Error::Plan(
                    "[target] kind = \"dynamodb\": no region; set region = \"…\" in [target] or AWS_REGION in the environment"
                        .into(),
                )
            })?;
        let describe = match &opts.endpoint_url {
            Some(url) => format!("DynamoDB at {url} ({region})"),
            None => format!("DynamoDB ({region})"),
        };
        let (Some(key), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(Error::Connect {
                end: End::Target,
                what: describe,
                message: "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials) \
                          in the environment; this build reads no profile files"
                    .into(),
                transient: false,
            });
        };
        let credentials =
            Credentials::new(key, secret, env("AWS_SESSION_TOKEN"), None, "environment");
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .operation_attempt_timeout(Duration::from_secs(60))
            .build();
        let mut config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(credentials)
            .http_client(http)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts);
        if let Some(url) = &opts.endpoint_url {
            config = config.endpoint_url(url);
        }
        Ok(Dynamo {
            client: Client::from_conf(config.build()),
            describe,
        })
    }
}

/// How a failed request should be handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Throttling, a server error, a timeout or a dropped connection: send it again later.
    Retry,
    /// The request's content was refused (`ValidationException`): an item is bad.
    Invalid,
    /// Anything else (no such table, access denied): stop.
    Fatal,
}

/// DynamoDB's error codes that mean "too fast, try again".
const THROTTLING: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "TooManyRequestsException",
];

/// Classifies a failed SDK call.
pub fn classify<E: ProvideErrorMetadata, R: std::fmt::Debug>(e: &SdkError<E, R>) -> Failure {
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Failure::Retry
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            if THROTTLING.contains(&code)
                || code.starts_with("InternalServer")
                || code == "InternalFailure"
                || code == "ServiceUnavailable"
            {
                Failure::Retry
            } else if code == "ValidationException" || code == "SerializationException" {
                Failure::Invalid
            } else {
                Failure::Fatal
            }
        }
        _ => Failure::Fatal,
    }
}

/// True when the error says the table does not exist.
pub fn is_not_found<E: ProvideErrorMetadata, R: std::fmt::Debug>(e: &SdkError<E, R>) -> bool {
    matches!(e, SdkError::ServiceError(se) if se.err().code() == Some("ResourceNotFoundException"))
}

/// A failed call as an error naming what was done (`context`) and the store's reason.
pub fn store_error<E, R>(context: &str, e: &SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = match e {
        SdkError::ServiceError(se) => format!(
            "{}: {}",
            se.err().code().unwrap_or("error"),
            se.err().message().unwrap_or("(no message)")
        ),
        other => DisplayErrorContext(other).to_string(),
    };
    Error::Store {
        end: End::Target,
        context: context.to_string(),
        message,
        transient: classify(e) == Failure::Retry,
    }
}
