//! The distances a collection may use, and how each maps onto the graph's metric and
//! back to a score where higher is closer.

use serde::{Deserialize, Serialize};

use crate::hnsw::Metric;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distance {
    Cosine,
    Dot,
    Euclidean,
}

impl Distance {
    pub fn metric(self) -> Metric {
        match self {
            Distance::Cosine | Distance::Dot => Metric::InnerProduct,
            Distance::Euclidean => Metric::L2,
        }
    }

    /// The vector as the graph stores it: unit length for cosine (a zero vector stays
    /// zero and scores 0 against everything).
    pub fn prepare(self, vector: &[f32]) -> Vec<f32> {
        let mut v = vector.to_vec();
        if self == Distance::Cosine {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|x| *x /= norm);
            }
        }
        v
    }

    /// The score of a graph distance: cosine similarity, dot product, or negated
    /// euclidean distance.
    pub fn score(self, graph_distance: f32) -> f32 {
        match self {
            Distance::Cosine | Distance::Dot => 1.0 - graph_distance,
            Distance::Euclidean => -graph_distance.max(0.0).sqrt(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_higher_when_closer() {
        let (a, b) = ([3.0f32, 4.0], [6.0f32, 8.0]);
        let cos = Distance::Cosine;
        let d = cos.metric().distance(&cos.prepare(&a), &cos.prepare(&b));
        assert!((cos.score(d) - 1.0).abs() < 1e-6);
        let dot = Distance::Dot;
        assert_eq!(dot.score(dot.metric().distance(&a, &b)), 50.0);
        let l2 = Distance::Euclidean;
        assert_eq!(l2.score(l2.metric().distance(&a, &b)), -5.0);
        assert_eq!(cos.prepare(&[0.0, 0.0]), vec![0.0, 0.0]);
    }
}
