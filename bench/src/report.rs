//! One row of the benchmark report, printed as markdown and written as JSON.

/// Whether a higher or a lower ratio is better for a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Better {
    /// e.g. speed-ups: ours / anchor throughput.
    Higher,
    /// e.g. time ratios: ours / anchor time.
    Lower,
    /// The ratio must lie between this value and the target.
    Band(f64),
}

/// One measured row: ours next to the anchor, measured in the same run.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// What was measured.
    pub(crate) name: String,
    /// The unit of `ours` and `anchor` (e.g. "ns/op").
    pub(crate) unit: &'static str,
    /// Our measurement.
    pub(crate) ours: f64,
    /// The anchor's measurement in the same run, and what the anchor is.
    pub(crate) anchor: Option<(String, f64)>,
    /// The ratio the target is about (defined per row, see `ratio_note`).
    pub(crate) ratio: f64,
    /// How the ratio is computed, e.g. "anchor/ours".
    pub(crate) ratio_note: &'static str,
    /// The target on the ratio.
    pub(crate) target: f64,
    /// Whether the ratio must be at least (`Higher`) or at most (`Lower`) the target.
    pub(crate) better: Better,
}

impl Row {
    /// Whether the row meets its target.
    pub(crate) fn met(&self) -> bool {
        match self.better {
            Better::Higher => self.ratio >= self.target,
            Better::Lower => self.ratio <= self.target,
            Better::Band(low) => (low..=self.target).contains(&self.ratio),
        }
    }
}

/// The median of `samples` (the upper one of an even count; NaN if empty).
pub(crate) fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}
