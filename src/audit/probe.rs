//! Probe protocols of the generalization papers, run on the device: a few-shot linear probe
//! (multinomial logistic regression on standardised features) and nearest class mean (cosine to
//! the mean of each class's training features). Both are deterministic: the split is the first
//! `shots` images of each class, and L-BFGS starts from zero.

use linfa::prelude::*;
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array1, Array2};

use crate::encode::cosine;
use crate::tag::PrototypeBank;

/// Training and test indices: the first `shots` images of each class train.
pub fn split(labels: &[usize], shots: usize) -> (Vec<usize>, Vec<usize>) {
    let mut seen = std::collections::HashMap::new();
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (i, y) in labels.iter().enumerate() {
        let k = seen.entry(*y).or_insert(0usize);
        if *k < shots {
            train.push(i);
        } else {
            test.push(i);
        }
        *k += 1;
    }
    (train, test)
}

fn accuracy(predicted: impl Iterator<Item = usize>, labels: &[usize], test: &[usize]) -> f32 {
    let right = predicted.zip(test).filter(|(p, i)| *p == labels[**i]).count();
    right as f32 / test.len().max(1) as f32
}

/// Accuracy of a logistic regression (L2, weight 1 as scikit-learn's default C = 1) fitted on
/// the training features, standardised with the training mean and spread.
pub fn linear(
    x: &[Vec<f32>],
    labels: &[usize],
    train: &[usize],
    test: &[usize],
) -> anyhow::Result<f32> {
    let dim = x[train[0]].len();
    let (mut mean, mut sd) = (vec![0f64; dim], vec![0f64; dim]);
    for i in train {
        for (m, v) in mean.iter_mut().zip(&x[*i]) {
            *m += *v as f64 / train.len() as f64;
        }
    }
    for i in train {
        for ((s, m), v) in sd.iter_mut().zip(&mean).zip(&x[*i]) {
            *s += (*v as f64 - m).powi(2) / train.len() as f64;
        }
    }
    sd.iter_mut().for_each(|s| *s = s.sqrt().max(1e-6));
    let matrix = |rows: &[usize]| {
        let data = rows
            .iter()
            .flat_map(|i| x[*i].iter().zip(&mean).zip(&sd).map(|((v, m), s)| (*v as f64 - m) / s))
            .collect();
        Array2::from_shape_vec((rows.len(), dim), data).expect("rows × dim values")
    };
    let y = Array1::from_iter(train.iter().map(|i| labels[*i]));
    let fit = MultiLogisticRegression::default()
        .alpha(1.0)
        .max_iterations(200)
        .fit(&Dataset::new(matrix(train), y))
        .map_err(|e| anyhow::anyhow!("fitting the linear probe: {e}"))?;
    let predicted = fit.predict(&matrix(test));
    Ok(accuracy(predicted.iter().copied(), labels, test))
}

/// Accuracy of nearest class mean by cosine similarity.
pub fn nearest_class_mean(
    x: &[Vec<f32>],
    labels: &[usize],
    train: &[usize],
    test: &[usize],
) -> f32 {
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    let dim = x[train[0]].len();
    let mut means = vec![vec![0f32; dim]; classes];
    for i in train {
        for (m, v) in means[labels[*i]].iter_mut().zip(&x[*i]) {
            *m += v;
        }
    }
    let predicted = test.iter().map(|i| {
        (0..classes)
            .max_by(|a, b| cosine(&means[*a], &x[*i]).total_cmp(&cosine(&means[*b], &x[*i])))
            .unwrap_or(0)
    });
    accuracy(predicted, labels, test)
}

/// Zero-shot accuracy: each test image gets the class whose prototype (from a bank built on
/// other images, nothing fitted here) is nearest. None unless the bank has every class.
pub fn zero_shot(
    bank: &PrototypeBank,
    classes: &[String],
    x: &[Vec<f32>],
    labels: &[usize],
    test: &[usize],
) -> Option<f32> {
    let vectors: Vec<&[f32]> = classes
        .iter()
        .map(|c| bank.prototypes.iter().find(|p| &p.label == c).map(|p| p.vector.as_slice()))
        .collect::<Option<_>>()?;
    let predicted = test.iter().map(|i| {
        (0..classes.len())
            .max_by(|a, b| cosine(vectors[*a], &x[*i]).total_cmp(&cosine(vectors[*b], &x[*i])))
            .unwrap_or(0)
    });
    Some(accuracy(predicted, labels, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_takes_the_first_shots_of_each_class() {
        let (train, test) = split(&[0, 0, 0, 1, 1, 1, 1], 2);
        assert_eq!(train, vec![0, 1, 3, 4]);
        assert_eq!(test, vec![2, 5, 6]);
    }

    #[test]
    fn probes_by_hand() {
        // Two classes along the first axis, the second axis noise; a third point of class 1
        // sits on class 0's side, so both probes get 3 of 4 test points right.
        let x: Vec<Vec<f32>> = vec![
            vec![1.0, 0.1],
            vec![1.0, -0.1],
            vec![-1.0, 0.1],
            vec![-1.0, -0.1],
            vec![0.9, 0.2],
            vec![1.1, -0.3],
            vec![-0.8, 0.1],
            vec![0.7, 0.0],
        ];
        let labels = [0, 0, 1, 1, 0, 0, 1, 1];
        let train = [0, 1, 2, 3];
        let test = [4, 5, 6, 7];
        assert_eq!(nearest_class_mean(&x, &labels, &train, &test), 0.75);
        assert_eq!(linear(&x, &labels, &train, &test).unwrap(), 0.75);
        // Prototypes from elsewhere: class "a" along +x, "b" along −x; "c" is missing.
        let e = |l: &str, v: [f32; 2]| (l.to_string(), crate::encode::Embedding(v.to_vec()));
        let bank = PrototypeBank::build("enc", &[e("a", [1.0, 0.0]), e("b", [-1.0, 0.0])]).unwrap();
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(zero_shot(&bank, &names(&["a", "b"]), &x, &labels, &test), Some(0.75));
        assert_eq!(zero_shot(&bank, &names(&["b", "a"]), &x, &labels, &test), Some(0.25));
        assert_eq!(zero_shot(&bank, &names(&["a", "c"]), &x, &labels, &test), None);
    }
}
