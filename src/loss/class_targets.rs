//! Validated class-index targets, borrowed from the caller: no copy of the
//! targets is made on any call (a copy of an (N, H, W) target costs more than
//! the loss itself on segmentation shapes).

use rayon::prelude::*;

use super::simd::{self, Simd, SimdLevel};

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

    /// One pass over the targets: the first raw value that is neither the
    /// ignore_index nor in 0..classes (Err), else how many positions are
    /// kept (not ignored). The common case — all valid — is one branch-free
    /// pass, split across threads on large targets.
    pub fn kept_in_range(&self, classes: usize) -> Result<usize, i64> {
        let (ignore, classes) = (self.ignore_index, classes as u64);
        // Negative values wrap to huge ones, so one comparison checks both ends.
        let bad = |t: i64| t != ignore && t as u64 >= classes;
        let simd = simd::current();
        let join = |a: (bool, usize), b: (bool, usize)| (a.0 | b.0, a.1 + b.1);
        let (any_bad, ignored) = match self.indices {
            Indices::Int64(v) => v
                .par_chunks(CHUNK)
                .map(|chunk| scan_int64(chunk, ignore, classes, simd))
                .reduce(|| (false, 0), join),
            Indices::UInt8(v) => v
                .par_chunks(CHUNK)
                .map(|chunk| scan(chunk, i64::from, ignore, classes))
                .reduce(|| (false, 0), join),
        };
        if any_bad {
            // Rare (an error): find the first in order.
            return Err((0..self.len())
                .map(|p| self.raw(p))
                .find(|&t| bad(t))
                .expect("a value was out of range"));
        }
        Ok(self.len() - ignored)
    }
}

/// A chunk's (count of values neither `ignore` nor in 0..classes, count of
/// `ignore`): two sums without branches, so that it vectorises.
#[inline(always)]
fn scan<V: Copy>(chunk: &[V], value: impl Fn(V) -> i64, ignore: i64, classes: u64) -> (bool, usize) {
    let (bad, ignored) = chunk.iter().fold((0usize, 0usize), |(bad, ignored), &v| {
        let t = value(v);
        let is_ignored = t == ignore;
        (
            bad + usize::from(!is_ignored & (t as u64 >= classes)),
            ignored + usize::from(is_ignored),
        )
    });
    (bad > 0, ignored)
}

/// [`scan`] of int64 targets, with AVX2 where the CPU has it: the baseline
/// target has no 64-bit vector comparison, so there it stays one by one.
fn scan_int64(chunk: &[i64], ignore: i64, classes: u64, simd: Simd) -> (bool, usize) {
    #[cfg(target_arch = "x86_64")]
    if simd.level() >= SimdLevel::Avx2 {
        // SAFETY: a `Simd` at Avx2 or above is only made where the CPU has AVX2.
        return unsafe { scan_int64_avx2(chunk, ignore, classes) };
    }
    scan(chunk, |t| t, ignore, classes)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_int64_avx2(chunk: &[i64], ignore: i64, classes: u64) -> (bool, usize) {
    scan(chunk, |t| t, ignore, classes)
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
        assert_eq!(targets.kept_in_range(3), Err(3));
        assert_eq!(targets.kept_in_range(6), Err(-1));
        assert_eq!(ClassTargets::int64(&[0, -100], -100).kept_in_range(1), Ok(1));
        let mut many = vec![1i64; 300_000];
        many[250_000] = 9;
        many[280_000] = -7;
        assert_eq!(ClassTargets::int64(&many, -100).kept_in_range(2), Err(9));
        assert_eq!(ClassTargets::uint8(&[0, 200, 1], 255).kept_in_range(2), Err(200));
    }

    #[test]
    fn kept_counts_the_positions_not_ignored() {
        let many: Vec<i64> = (0..200_000).map(|i| if i % 3 == 0 { -100 } else { 1 }).collect();
        assert_eq!(ClassTargets::int64(&many, -100).kept_in_range(2), Ok(200_000 - 66_667));
        assert_eq!(ClassTargets::uint8(&[4, 4, 0], 4).kept_in_range(1), Ok(1));
    }
}
