//! A prototype bank: for each label, the mean unit embedding of example images, in the space of
//! one encoder. An image is tagged with every label whose prototype it resembles (cosine at or
//! above a threshold). This is how a unified encoder tags without code changes: the bank is
//! data, built with `edgeid prototypes build` from a folder of examples per label.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::labels::Tag;
use crate::encode::Embedding;

#[derive(Debug, thiserror::Error)]
pub enum BankError {
    #[error(
        "prototype bank {path} cannot be read: {message}; build it with `edgeid prototypes build`"
    )]
    Unreadable { path: String, message: String },
    #[error("prototype bank {path} was built with encoder `{bank}`, but the config uses `{config}`; rebuild it with this encoder")]
    EncoderMismatch { path: String, bank: String, config: String },
    #[error("no examples given: the folder needs one sub-folder of images per label")]
    Empty,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Prototype {
    pub label: String,
    /// Mean of the examples' unit embeddings, scaled to unit length.
    pub vector: Vec<f32>,
    /// Examples it was built from.
    pub examples: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrototypeBank {
    /// Model id of the encoder the vectors come from.
    pub encoder: String,
    pub prototypes: Vec<Prototype>,
}

impl PrototypeBank {
    /// A bank from labelled example embeddings.
    pub fn build(
        encoder: &str,
        examples: &[(String, Embedding)],
    ) -> Result<PrototypeBank, BankError> {
        if examples.is_empty() {
            return Err(BankError::Empty);
        }
        let mut prototypes: Vec<Prototype> = Vec::new();
        for (label, e) in examples {
            let v = unit(&e.0);
            match prototypes.iter_mut().find(|p| &p.label == label) {
                Some(p) => {
                    p.vector.iter_mut().zip(&v).for_each(|(a, b)| *a += b);
                    p.examples += 1;
                }
                None => prototypes.push(Prototype { label: label.clone(), vector: v, examples: 1 }),
            }
        }
        for p in &mut prototypes {
            p.vector = unit(&p.vector);
        }
        prototypes.sort_by(|a, b| a.label.cmp(&b.label));
        Ok(PrototypeBank { encoder: encoder.to_string(), prototypes })
    }

    /// Reads a bank, refusing one built with another encoder.
    pub fn load(path: &Path, encoder: &str) -> Result<PrototypeBank, BankError> {
        let unreadable =
            |message: String| BankError::Unreadable { path: path.display().to_string(), message };
        let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
        let bank: PrototypeBank =
            serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
        if bank.encoder != encoder {
            return Err(BankError::EncoderMismatch {
                path: path.display().to_string(),
                bank: bank.encoder,
                config: encoder.to_string(),
            });
        }
        Ok(bank)
    }

    /// Every label's similarity to the embedding, best first.
    pub fn scores(&self, e: &Embedding) -> Vec<Tag> {
        let v = unit(&e.0);
        let mut tags: Vec<Tag> = self
            .prototypes
            .iter()
            .map(|p| Tag {
                label: p.label.clone(),
                score: p.vector.iter().zip(&v).map(|(a, b)| a * b).sum(),
            })
            .collect();
        tags.sort_by(|a, b| b.score.total_cmp(&a.score));
        tags
    }

    /// Labels whose prototype the embedding resembles at or above `min_similarity`.
    pub fn tag(&self, e: &Embedding, min_similarity: f32) -> Vec<Tag> {
        self.scores(e).into_iter().filter(|t| t.score >= min_similarity).collect()
    }
}

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| if n > 0.0 { x / n } else { 0.0 }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prototypes_are_unit_means_and_tag_by_cosine() {
        let ex = |l: &str, v: [f32; 2]| (l.to_string(), Embedding(v.to_vec()));
        let bank = PrototypeBank::build(
            "enc",
            &[ex("a", [1.0, 0.0]), ex("a", [0.0, 2.0]), ex("b", [-1.0, 0.0])],
        )
        .unwrap();
        let a = &bank.prototypes[0];
        assert_eq!((a.label.as_str(), a.examples), ("a", 2));
        assert!((a.vector[0] - 0.70710677).abs() < 1e-6 && (a.vector[1] - 0.70710677).abs() < 1e-6);
        let tags = bank.tag(&Embedding(vec![1.0, 1.0]), 0.5);
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0].label, "a");
        assert!(PrototypeBank::build("enc", &[]).is_err());
    }
}
