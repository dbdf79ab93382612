//! The Theil–Sen slope: the median of the slopes between every pair of
//! points. One outlier (a stats flush, a short-lived allocation) moves it
//! little, where the last two samples or a least-squares fit would follow it.

/// Points used at most (evenly picked from the oldest to the newest): the
/// pairs grow with the square of it.
const MAX_POINTS: usize = 48;

/// The median pairwise slope of `(t, value)` points (t ascending), in value
/// per unit of t; `None` with fewer than two distinct times.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<f64> {
    let picked: Vec<(f64, f64)> = if points.len() > MAX_POINTS {
        (0..MAX_POINTS).map(|i| points[i * (points.len() - 1) / (MAX_POINTS - 1)]).collect()
    } else {
        points.to_vec()
    };
    let mut slopes = Vec::with_capacity(picked.len() * picked.len() / 2);
    for (i, (t1, v1)) in picked.iter().enumerate() {
        for (t2, v2) in &picked[i + 1..] {
            if t2 > t1 {
                slopes.push((v2 - v1) / (t2 - t1));
            }
        }
    }
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_by(f64::total_cmp);
    let mid = slopes.len() / 2;
    Some(if slopes.len() % 2 == 1 { slopes[mid] } else { (slopes[mid - 1] + slopes[mid]) / 2.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_its_own_slope() {
        let points: Vec<_> = (0..10).map(|i| (i as f64 * 0.1, 5.0 + 3.0 * i as f64 * 0.1)).collect();
        assert!((theil_sen(&points).unwrap_or_default() - 3.0).abs() < 1e-9);
    }

    #[test]
    fn one_outlier_does_not_move_it() {
        let mut points: Vec<_> = (0..20).map(|i| (i as f64, 2.0 * i as f64)).collect();
        points[10].1 = 1000.0;
        assert!((theil_sen(&points).unwrap_or_default() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn many_points_are_thinned_evenly() {
        let points: Vec<_> = (0..1000).map(|i| (i as f64, 7.0 * i as f64)).collect();
        assert!((theil_sen(&points).unwrap_or_default() - 7.0).abs() < 1e-9);
        assert_eq!(theil_sen(&[(1.0, 1.0)]), None);
        assert_eq!(theil_sen(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }
}
