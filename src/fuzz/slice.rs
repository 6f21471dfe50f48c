//! Cutting tensors along one axis, for the shrinker: keep some indices of an
//! axis, or drop an axis of size 1.

use crate::tensor::{Data, Tensor};

/// The tensor with only the indices `keep` (in that order) along `axis`;
/// None when the axis or an index does not exist.
pub fn select(t: &Tensor, axis: usize, keep: &[usize]) -> Option<Tensor> {
    let size = *t.shape.get(axis)?;
    if keep.iter().any(|&k| k >= size) || t.len() != t.numel() {
        return None;
    }
    let outer: usize = t.shape[..axis].iter().product();
    let inner: usize = t.shape[axis + 1..].iter().product();
    fn pick<E: Copy>(data: &[E], outer: usize, size: usize, inner: usize, keep: &[usize]) -> Vec<E> {
        let mut out = Vec::with_capacity(outer * keep.len() * inner);
        for o in 0..outer {
            for &k in keep {
                let start = (o * size + k) * inner;
                out.extend_from_slice(&data[start..start + inner]);
            }
        }
        out
    }
    let data = match &t.data {
        Data::Float(v) => Data::Float(pick(v, outer, size, inner, keep)),
        Data::Int(v) => Data::Int(pick(v, outer, size, inner, keep)),
    };
    let mut shape = t.shape.clone();
    shape[axis] = keep.len();
    Some(Tensor {
        dtype: t.dtype,
        shape,
        data,
    })
}

/// The tensor without `axis`, which must have size 1.
pub fn squeeze(t: &Tensor, axis: usize) -> Option<Tensor> {
    if t.shape.get(axis) != Some(&1) {
        return None;
    }
    let mut out = t.clone();
    out.shape.remove(axis);
    Some(out)
}

/// The indices of `0..size` outside `start..end`.
pub fn without(size: usize, start: usize, end: usize) -> Vec<usize> {
    (0..size).filter(|i| !(start..end).contains(i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::DType;

    #[test]
    fn select_keeps_the_chosen_slices() {
        // 2 × 3 × 2, values 0..12.
        let t = Tensor::int(DType::Int64, vec![2, 3, 2], (0..12).collect());
        let s = select(&t, 1, &[0, 2]).unwrap();
        assert_eq!(s.shape, vec![2, 2, 2]);
        assert_eq!(s.as_i64().unwrap(), &[0, 1, 4, 5, 6, 7, 10, 11]);
        let s = select(&t, 0, &[1]).unwrap();
        assert_eq!(s.as_i64().unwrap(), &[6, 7, 8, 9, 10, 11]);
        assert!(select(&t, 3, &[0]).is_none());
        assert!(select(&t, 1, &[3]).is_none());
        assert_eq!(squeeze(&select(&t, 2, &[1]).unwrap(), 2).unwrap().shape, vec![2, 3]);
        assert_eq!(without(5, 1, 3), vec![0, 3, 4]);
    }
}
