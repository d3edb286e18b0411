//! Piecewise-linear maps from the requested quality (0-100) onto an
//! encoder's own scale, measured per encoder (points in the crate README).

/// `y` at `x`, linear between the `(x, y)` points, which must be sorted by
/// `x` and span 0-100; `x` is clamped into that span.
pub(crate) fn interpolate(points: &[(f32, f32)], x: f32) -> f32 {
    let x = x.clamp(0.0, 100.0);
    let Some(&[(x0, y0), (x1, y1)]) = points.windows(2).find(|w| x <= w[1].0) else {
        unreachable!("quality map points span 0-100");
    };
    if x1 == x0 {
        return y1;
    }
    y0 + (y1 - y0) * (x - x0) / (x1 - x0)
}

#[cfg(test)]
mod tests {
    use super::interpolate;

    const POINTS: [(f32, f32); 3] = [(0.0, 0.0), (50.0, 40.0), (100.0, 100.0)];

    #[test]
    fn points_map_to_themselves_and_between_them_linearly() {
        assert_eq!(interpolate(&POINTS, 50.0), 40.0);
        assert_eq!(interpolate(&POINTS, 100.0), 100.0);
        assert_eq!(interpolate(&POINTS, 25.0), 20.0);
        assert_eq!(interpolate(&POINTS, 75.0), 70.0);
    }

    #[test]
    fn out_of_range_requests_are_clamped() {
        assert_eq!(interpolate(&POINTS, -5.0), 0.0);
        assert_eq!(interpolate(&POINTS, 120.0), 100.0);
    }
}
