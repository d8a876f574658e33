//! The graph's distance kernels, picked once per graph for the CPU it runs on.
//!
//! Written here rather than called through simsimd: simsimd 6.5's f32 kernels run one
//! FMA chain (latency-bound) behind an FFI call and a dispatch pointer, and return f64
//! through an `Option`. On the AVX-512 bench machine (one thread, same graph, same
//! recall) these kernels, with four accumulators, took the text set (20k × 384, cosine)
//! from 8,783 to 10,629 q/s at ef 32 and the synthetic set (100k × 128, L2) from 8,917
//! to 10,858 q/s at ef 40, about 21 % each.

use super::Metric;

/// A distance over two vectors of equal length; lower is closer.
pub(super) type Kernel = fn(&[f32], &[f32]) -> f32;

/// The fastest kernel of `metric` that this CPU supports.
pub(super) fn select(metric: Metric) -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            return match metric {
                Metric::L2 => |a, b| unsafe { x86::l2sq_avx512(a, b) },
                Metric::InnerProduct => |a, b| 1.0 - unsafe { x86::dot_avx512(a, b) },
            };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return match metric {
                Metric::L2 => |a, b| unsafe { x86::l2sq_avx2(a, b) },
                Metric::InnerProduct => |a, b| 1.0 - unsafe { x86::dot_avx2(a, b) },
            };
        }
    }
    match metric {
        Metric::L2 => l2sq_scalar,
        Metric::InnerProduct => |a, b| 1.0 - dot_scalar(a, b),
    }
}

pub(super) fn l2sq_scalar(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

pub(super) fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    // SAFETY (all four): callers check the CPU feature first; loads stay within
    // `min(a.len(), b.len())`, and the tail is masked (AVX-512) or scalar (AVX2).

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn l2sq_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (j, sum) in acc.iter_mut().enumerate() {
                let d = _mm512_sub_ps(
                    _mm512_loadu_ps(pa.add(i + 16 * j)),
                    _mm512_loadu_ps(pb.add(i + 16 * j)),
                );
                *sum = _mm512_fmadd_ps(d, d, *sum);
            }
            i += 64;
        }
        while i < n {
            let mask: __mmask16 = if n - i >= 16 {
                0xffff
            } else {
                (1u16 << (n - i)) - 1
            };
            let d = _mm512_sub_ps(
                _mm512_maskz_loadu_ps(mask, pa.add(i)),
                _mm512_maskz_loadu_ps(mask, pb.add(i)),
            );
            acc[0] = _mm512_fmadd_ps(d, d, acc[0]);
            i += 16;
        }
        let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        _mm512_reduce_add_ps(sum)
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (j, sum) in acc.iter_mut().enumerate() {
                *sum = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i + 16 * j)),
                    _mm512_loadu_ps(pb.add(i + 16 * j)),
                    *sum,
                );
            }
            i += 64;
        }
        while i < n {
            let mask: __mmask16 = if n - i >= 16 {
                0xffff
            } else {
                (1u16 << (n - i)) - 1
            };
            acc[0] = _mm512_fmadd_ps(
                _mm512_maskz_loadu_ps(mask, pa.add(i)),
                _mm512_maskz_loadu_ps(mask, pb.add(i)),
                acc[0],
            );
            i += 16;
        }
        let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        _mm512_reduce_add_ps(sum)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum256(v: __m256) -> f32 {
        let half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
        _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1)))
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn l2sq_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, sum) in acc.iter_mut().enumerate() {
                let d = _mm256_sub_ps(
                    _mm256_loadu_ps(pa.add(i + 8 * j)),
                    _mm256_loadu_ps(pb.add(i + 8 * j)),
                );
                *sum = _mm256_fmadd_ps(d, d, *sum);
            }
            i += 32;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        hsum256(sum) + super::l2sq_scalar(&a[i..n], &b[i..n])
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, sum) in acc.iter_mut().enumerate() {
                *sum = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 8 * j)),
                    _mm256_loadu_ps(pb.add(i + 8 * j)),
                    *sum,
                );
            }
            i += 32;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        hsum256(sum) + super::dot_scalar(&a[i..n], &b[i..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_agrees_with_the_scalar_one_at_odd_lengths() {
        for n in [1, 3, 15, 16, 17, 33, 64, 100, 128, 384, 385] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0).collect();
            let close = |x: f32, y: f32| (x - y).abs() <= 1e-4 * (1.0 + y.abs());
            assert!(
                close(select(Metric::L2)(&a, &b), l2sq_scalar(&a, &b)),
                "l2 {n}"
            );
            let ip = select(Metric::InnerProduct)(&a, &b);
            assert!(close(ip, 1.0 - dot_scalar(&a, &b)), "ip {n}");
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                let (l2, dot) = unsafe { (x86::l2sq_avx2(&a, &b), x86::dot_avx2(&a, &b)) };
                assert!(close(l2, l2sq_scalar(&a, &b)) && close(dot, dot_scalar(&a, &b)));
            }
        }
    }
}
