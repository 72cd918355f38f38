//! Magpie's machine learning: the transaction categorizer (bank-string normalization, sparse text
//! features, a one-vs-rest linear SVM with calibrated probabilities, a versioned model file) and its
//! evaluation. Pure: no database, no HTTP.

pub mod calibrate;
pub mod eval;
pub mod features;
pub mod global;
pub mod linear;
pub mod metrics;
pub mod model;
pub mod rng;
pub mod split;
pub mod text;

pub use features::{Direction, Example, FeatureConfig};
pub use model::{Candidate, Categorizer, ClassWeight, HeldOut, MlError, Scored, Selection, TrainConfig, Workspace};
