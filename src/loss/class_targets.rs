//! Validated class-index targets, borrowed from the caller: no copy of the
//! targets is made on any call (a copy of an (N, H, W) target costs more than
//! the loss itself on segmentation shapes).

use rayon::prelude::*;

/// Targets per parallel task in the scans below.
const CHUNK: usize = 1 << 16;

/// The caller's targets with their ignore_index; every value is either the
/// ignore_index or a class in range (validation checked it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ClassTargets<'a> {
    indices: Indices<'a>,
    ignore_index: i64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Indices<'a> {
    Int64(&'a [i64]),
    UInt8(&'a [u8]),
}

impl<'a> ClassTargets<'a> {
    pub fn int64(values: &'a [i64], ignore_index: i64) -> Self {
        ClassTargets {
            indices: Indices::Int64(values),
            ignore_index,
        }
    }

    pub fn uint8(values: &'a [u8], ignore_index: i64) -> Self {
        ClassTargets {
            indices: Indices::UInt8(values),
            ignore_index,
        }
    }

    /// The raw values and the ignore_index, when the targets are int64.
    pub fn as_int64(&self) -> Option<(&'a [i64], i64)> {
        match self.indices {
            Indices::Int64(v) => Some((v, self.ignore_index)),
            Indices::UInt8(_) => None,
        }
    }

    /// The raw value at position `p`.
    #[inline(always)]
    fn raw(&self, p: usize) -> i64 {
        match self.indices {
            Indices::Int64(v) => v[p],
            Indices::UInt8(v) => i64::from(v[p]),
        }
    }

    /// The class of position `p`, or None when it is ignored.
    #[inline(always)]
    pub fn get(&self, p: usize) -> Option<usize> {
        let t = self.raw(p);
        (t != self.ignore_index).then_some(t as usize)
    }

    pub fn len(&self) -> usize {
        match self.indices {
            Indices::Int64(v) => v.len(),
            Indices::UInt8(v) => v.len(),
        }
    }

    /// Every position's class (None where ignored), in order.
    pub fn iter(&self) -> impl Iterator<Item = Option<usize>> + '_ {
        (0..self.len()).map(|p| self.get(p))
    }

    /// Positions p0.. into `out` (as many as it holds), with `ignored` for
    /// the ignored ones.
    pub fn copy_into(&self, p0: usize, out: &mut [usize], ignored: usize) {
        let ignore = self.ignore_index;
        match self.indices {
            Indices::Int64(v) => {
                for (o, &t) in out.iter_mut().zip(&v[p0..]) {
                    *o = if t == ignore { ignored } else { t as usize };
                }
            }
            Indices::UInt8(v) => {
                for (o, &t) in out.iter_mut().zip(&v[p0..]) {
                    *o = if i64::from(t) == ignore {
                        ignored
                    } else {
                        usize::from(t)
                    };
                }
            }
        }
    }

    /// The first raw value that is neither the ignore_index nor in 0..classes.
    /// The common case — all valid — is one branch-free pass, split across
    /// threads on large targets.
    pub fn first_out_of_range(&self, classes: usize) -> Option<i64> {
        let bad = |t: i64| t != self.ignore_index && (t < 0 || t as u64 >= classes as u64);
        let any_bad = match self.indices {
            Indices::Int64(v) => v
                .par_chunks(CHUNK)
                .any(|chunk| chunk.iter().fold(false, |any, &t| any | bad(t))),
            Indices::UInt8(v) => v
                .par_chunks(CHUNK)
                .any(|chunk| chunk.iter().fold(false, |any, &t| any | bad(i64::from(t)))),
        };
        if !any_bad {
            return None;
        }
        (0..self.len()).map(|p| self.raw(p)).find(|&t| bad(t))
    }

    /// How many positions are not ignored.
    pub fn kept(&self) -> usize {
        let ignored = match self.indices {
            Indices::Int64(v) => v
                .par_chunks(CHUNK)
                .map(|chunk| chunk.iter().filter(|&&t| t == self.ignore_index).count())
                .sum::<usize>(),
            Indices::UInt8(v) => v
                .par_chunks(CHUNK)
                .map(|chunk| chunk.iter().filter(|&&t| i64::from(t) == self.ignore_index).count())
                .sum(),
        };
        self.len() - ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_positions_read_as_none() {
        let targets = ClassTargets::int64(&[2, -100, 0], -100);
        assert_eq!(targets.iter().collect::<Vec<_>>(), [Some(2), None, Some(0)]);
        let bytes = ClassTargets::uint8(&[1, 7], 7);
        assert_eq!(bytes.iter().collect::<Vec<_>>(), [Some(1), None]);
    }

    #[test]
    fn the_first_bad_value_is_found() {
        let targets = ClassTargets::int64(&[0, 3, -100, -1, 5], -100);
        assert_eq!(targets.first_out_of_range(3), Some(3));
        assert_eq!(targets.first_out_of_range(6), Some(-1));
        assert_eq!(ClassTargets::int64(&[0, -100], -100).first_out_of_range(1), None);
    }

    #[test]
    fn kept_counts_the_positions_not_ignored() {
        let many: Vec<i64> = (0..200_000).map(|i| if i % 3 == 0 { -100 } else { 1 }).collect();
        assert_eq!(ClassTargets::int64(&many, -100).kept(), 200_000 - 66_667);
        assert_eq!(ClassTargets::uint8(&[4, 4, 0], 4).kept(), 1);
    }
}
