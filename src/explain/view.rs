//! Where a step's values sit (samples × classes) and the part of a case a
//! screen shows. Every value is checked; only the display is cut.

use crate::runner;

/// At most this many samples and this many classes are shown: a case
/// larger than that in either dim is summarised (its first rows and columns).
pub const SHOWN: usize = 8;

/// The class dim of an input: element (n, c, s) of (N, C, d1, …) input lives
/// at `n·C·S + c·S + s` with S = d1·…; sample p is (n, s) with p = n·S + s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// N (1 for unbatched (C,) input).
    pub outer: usize,
    /// C.
    pub classes: usize,
    /// S = d1·… (1 without spatial dims).
    pub inner: usize,
}

impl Geometry {
    /// The geometry of an input shape; None for a 0-d shape.
    pub fn of(shape: &[usize]) -> Option<Geometry> {
        runner::class_geometry(shape).map(|(outer, classes, inner)| Geometry { outer, classes, inner })
    }

    /// The number of samples (positions): N·S.
    pub fn samples(self) -> usize {
        self.outer * self.inner
    }

    /// The flat index of (sample, class) in an input-shaped tensor.
    pub fn index(self, sample: usize, class: usize) -> usize {
        (sample / self.inner) * self.classes * self.inner + class * self.inner + sample % self.inner
    }

    /// The sample a flat index of an input-shaped tensor belongs to.
    pub fn sample_at(self, index: usize) -> usize {
        let stride = self.classes * self.inner;
        if stride == 0 {
            return 0;
        }
        (index / stride) * self.inner + index % self.inner
    }

    /// The first `classes` values of `sample`'s row of an input-shaped tensor.
    pub fn row(self, values: &[f64], sample: usize, classes: usize) -> Vec<f64> {
        (0..classes.min(self.classes))
            .filter_map(|c| values.get(self.index(sample, c)).copied())
            .collect()
    }
}

/// How a step's values map to samples and classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Input-shaped: one row of class values per sample (softmax, smoothed target).
    Classes,
    /// One value per sample (the loss under reduction "none").
    Samples,
    /// One value (the loss under "mean" or "sum").
    Scalar,
}

/// The samples and classes shown, out of how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// How many samples are shown (the first ones).
    pub samples: usize,
    /// How many classes are shown (the first ones).
    pub classes: usize,
    /// The whole case's samples and classes.
    pub geometry: Geometry,
}

impl Window {
    /// The first [`SHOWN`] samples and classes of `geometry`.
    pub fn of(geometry: Geometry) -> Window {
        Window {
            samples: geometry.samples().min(SHOWN),
            classes: geometry.classes.min(SHOWN),
            geometry,
        }
    }

    /// Whether every sample and every class is shown.
    pub fn complete(&self) -> bool {
        self.samples == self.geometry.samples() && self.classes == self.geometry.classes
    }

    /// "showing 8 of 50 samples and 8 of 40 classes", or None when complete.
    pub fn message(&self) -> Option<String> {
        if self.complete() {
            return None;
        }
        let part = |shown: usize, of: usize, what: &str| {
            if shown == of {
                format!("all {of} {what}")
            } else {
                format!("{shown} of {of} {what}")
            }
        };
        let samples = part(self.samples, self.geometry.samples(), "samples");
        let classes = part(self.classes, self.geometry.classes, "classes");
        Some(format!("showing {samples} and {classes}"))
    }

    /// The shown rows of an input-shaped tensor ([`Layout::Classes`]).
    pub fn rows(&self, values: &[f64]) -> Vec<Vec<f64>> {
        (0..self.samples)
            .map(|sample| self.geometry.row(values, sample, self.classes))
            .collect()
    }

    /// The shown values of a per-sample tensor ([`Layout::Samples`]).
    pub fn per_sample(&self, values: &[f64]) -> Vec<f64> {
        values.iter().take(self.samples).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdim_rows_follow_the_class_stride() {
        // (N=2, C=3, S=2): element (n, c, s) at n·6 + c·2 + s.
        let g = Geometry::of(&[2, 3, 2]).unwrap();
        assert_eq!(g.samples(), 4);
        let values: Vec<f64> = (0..12).map(f64::from).collect();
        assert_eq!(g.row(&values, 1, 3), [1.0, 3.0, 5.0]);
        assert_eq!(g.row(&values, 2, 3), [6.0, 8.0, 10.0]);
        for index in 0..12 {
            let sample = g.sample_at(index);
            assert!((0..3).any(|c| g.index(sample, c) == index));
        }
    }

    #[test]
    fn a_large_case_is_summarised() {
        let w = Window::of(Geometry::of(&[50, 40]).unwrap());
        assert_eq!((w.samples, w.classes), (8, 8));
        assert_eq!(w.message().unwrap(), "showing 8 of 50 samples and 8 of 40 classes");
        let w = Window::of(Geometry::of(&[50, 3]).unwrap());
        assert_eq!(w.message().unwrap(), "showing 8 of 50 samples and all 3 classes");
        assert_eq!(Window::of(Geometry::of(&[2, 3]).unwrap()).message(), None);
    }
}
