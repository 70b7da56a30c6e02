//! The supervisor view (placeholder while it is built).
use std::sync::Arc;

use axum::Router;

use crate::App;

/// The supervisor's routes.
pub fn router() -> Router<Arc<App>> {
    Router::new()
}
