//! Magpie's machine learning: the transaction categorizer (bank-string normalization, sparse text
//! features, one-vs-rest linear SVMs with calibrated probabilities, a versioned model file) and its
//! evaluation; monthly forecasts with prediction intervals; recurring payments; anomalies. Pure: no
//! database, no HTTP.

pub mod anomaly;
pub mod calibrate;
pub mod eval;
pub mod features;
pub mod forecast;
pub mod global;
pub mod linear;
pub mod metrics;
pub mod model;
pub mod recurring;
pub mod rng;
pub mod split;
pub mod text;

pub use features::{Direction, Example, FeatureConfig};
pub use model::{Candidate, Categorizer, ClassWeight, HeldOut, MlError, Scored, Selection, TrainConfig, Workspace};
