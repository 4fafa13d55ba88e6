//! API errors: a status and one line saying what is wrong, as `{"error": "..."}`. Internal errors
//! are logged with their detail and answered with a generic 500, so no store SQL, path or
//! backtrace reaches a client.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::json::ErrorJson;

/// An error answered to a client.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, message)
    }

    /// What the client is told.
    #[cfg(test)]
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// Logs `error` in full and answers a generic 500.
    pub(crate) fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl From<freshet_core::Error> for ApiError {
    fn from(e: freshet_core::Error) -> Self {
        Self::internal(&e)
    }
}

impl From<freshet_core::store::Error> for ApiError {
    fn from(e: freshet_core::store::Error) -> Self {
        Self::internal(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorJson {
            error: &self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

/// `Json<T>` whose rejections (malformed JSON, wrong content type, a body over the limit) are
/// [`ApiError`]s with the same status.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    // A body that is JSON but not the expected shape is as bad a request as one that is not JSON.
    let status = match rejection.status() {
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        other => other,
    };
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "request body too large: at most {} bytes",
            super::BODY_LIMIT
        )
    } else {
        one_line(&rejection.body_text())
    };
    ApiError::new(status, message)
}

/// `Query<T>` whose rejections are 400 [`ApiError`]s naming the bad parameter.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(&rejection)),
        }
    }
}

fn query_rejection(rejection: &QueryRejection) -> ApiError {
    ApiError::bad_request(one_line(&rejection.body_text()))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::body::Body;
    use axum::extract::{FromRequest as _, FromRequestParts as _};
    use axum::http::{Request, StatusCode, header};
    use axum::response::IntoResponse as _;
    use serde::Deserialize;

    use super::{ApiError, ApiJson, ApiQuery};

    /// The status and the body of `error` as a client receives it.
    async fn answer(error: ApiError) -> (StatusCode, String) {
        let response = error.into_response();
        let status = response.status();
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn an_internal_error_answers_a_generic_500_without_the_detail() {
        let (status, body) = answer(ApiError::internal(
            &"database /srv/secret.db is locked: SELECT * FROM runs",
        ))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, r#"{"error":"internal error"}"#);

        // Every core error reaching a handler through `?` is one of these.
        let core = freshet_core::Error::UnknownAsset("secret_table".to_owned());
        let (status, body) = answer(ApiError::from(core)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, r#"{"error":"internal error"}"#);
    }

    #[tokio::test]
    async fn user_errors_answer_their_status_and_message() {
        let (status, body) = answer(ApiError::bad_request("limit must be between 1 and 500")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, r#"{"error":"limit must be between 1 and 500"}"#);
        let (status, body) = answer(ApiError::not_found("unknown asset \"nope\"")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, r#"{"error":"unknown asset \"nope\""}"#);
        let (status, _) = answer(ApiError::new(
            StatusCode::CONFLICT,
            "run x has already ended",
        ))
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body1 {
        selection: Option<String>,
    }

    async fn json_body(content_type: &str, body: &str) -> (StatusCode, String) {
        let request = Request::post("/")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_owned()))
            .unwrap();
        match ApiJson::<Body1>::from_request(request, &()).await {
            Ok(_) => (StatusCode::OK, String::new()),
            Err(e) => (e.status, e.message),
        }
    }

    #[tokio::test]
    async fn a_bad_body_is_a_bad_request_in_one_line() {
        assert_eq!(
            json_body("application/json", r#"{"selection": "a"}"#)
                .await
                .0,
            StatusCode::OK
        );
        // JSON, but not the expected shape: 400, not axum's 422.
        let (status, message) = json_body("application/json", r#"{"force": true}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(message.contains("unknown field `force`"), "{message}");
        assert!(!message.contains('\n'), "{message:?}");
        let (status, _) = json_body("application/json", "{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = json_body("text/plain", r#"{"selection": "a"}"#).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Page {
        limit: Option<u32>,
    }

    #[tokio::test]
    async fn a_bad_query_parameter_is_a_bad_request_naming_it() {
        let (mut parts, ()) = Request::get("/?limit=ten").body(()).unwrap().into_parts();
        let error = ApiQuery::<Page>::from_request_parts(&mut parts, &())
            .await
            .unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(error.message.contains("limit"), "{}", error.message);
    }
}
