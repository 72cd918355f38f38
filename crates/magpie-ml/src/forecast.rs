//! Monthly forecasts with prediction intervals: a small family of additive exponential smoothing models
//! and two baselines, one chosen per series by a rolling-origin backtest.
//!
//! Written here rather than taken from augurs: its ETS implementation has no seasonal models yet (its
//! documentation says so), and monthly spending is seasonal (December, summer travel); the models a
//! few dozen monthly points support are short to write and to check.
//!
//! * `Mean`: the mean of the whole history (the "average method" baseline; right for sparse and noisy
//!   series).
//! * `SeasonalNaive`: the same month a year earlier.
//! * `Ses`: simple exponential smoothing, ETS(A,N,N).
//! * `DampedTrend`: Holt's damped trend, ETS(A,Ad,N).
//! * `HoltWinters`: additive seasonality, ETS(A,N,A), period 12.
//!
//! Parameters are fitted by least squares of the one-step errors over a grid. Intervals are the
//! additive-ETS analytic ones, `var_h = sigma^2 (1 + sum_{j<h} c_j^2)`, with the model's `c_j`; lower
//! bounds are clipped at zero (spending is never negative). Amounts are floats here: these are
//! estimates, rounded to cents by the caller; recorded money never passes through this module.

use chrono::Datelike;
use serde::{Deserialize, Serialize};

/// Months in a season.
pub const SEASON: usize = 12;

/// A forecasting method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The mean of every point.
    Mean,
    /// The value a season earlier.
    SeasonalNaive,
    /// Simple exponential smoothing.
    Ses,
    /// Holt's damped trend.
    DampedTrend,
    /// Additive Holt-Winters.
    HoltWinters,
    /// The mean of the last 12 points plus each month's average deviation over every year of the
    /// series (classical decomposition): last year's seasonality without last year's noise.
    SeasonalMean,
    /// The average of the simple exponential smoothing, seasonal-mean and damped-trend forecasts
    /// (those the series is long enough for): a combination is steadier than any one of them.
    Combination,
}

impl Method {
    /// Every method, baselines first.
    pub const ALL: [Method; 7] = [
        Method::Mean,
        Method::SeasonalNaive,
        Method::Ses,
        Method::DampedTrend,
        Method::HoltWinters,
        Method::SeasonalMean,
        Method::Combination,
    ];

    /// Fewest points the method is fitted on.
    pub fn min_points(self) -> usize {
        match self {
            Method::Mean => 1,
            Method::Ses => 4,
            Method::DampedTrend => 8,
            Method::SeasonalNaive => SEASON + 1,
            Method::HoltWinters | Method::SeasonalMean => 2 * SEASON,
            Method::Combination => 8,
        }
    }
}

/// A fitted model: what forecasting the next months needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fitted {
    /// Method.
    pub method: Method,
    /// Smoothing of the level.
    pub alpha: f64,
    /// Smoothing of the trend.
    pub beta: f64,
    /// Smoothing of the season.
    pub gamma: f64,
    /// Damping of the trend.
    pub phi: f64,
    /// Level at the end of the data (the mean for `Mean`).
    pub level: f64,
    /// Trend at the end of the data.
    pub trend: f64,
    /// Seasonal terms for the next 12 months (`season[0]` is the first month after the data); for
    /// `SeasonalNaive`, the last 12 values.
    pub season: Vec<f64>,
    /// Standard deviation of the one-step errors.
    pub sigma: f64,
    /// Points fitted.
    pub n: usize,
    /// For a combination: the models averaged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Fitted>,
}

/// A forecast for one month.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Expected value.
    pub mean: f64,
    /// 80% interval.
    pub lo80: f64,
    /// 80% interval.
    pub hi80: f64,
    /// 95% interval.
    pub lo95: f64,
    /// 95% interval.
    pub hi95: f64,
}

const Z80: f64 = 1.281_551_565_5;
const Z95: f64 = 1.959_963_984_5;

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 }
}

/// Run an additive ETS model over `y`: (sum of squared one-step errors, final level, trend, season
/// ring where `season[t % 12]` is the term of time t).
fn run(y: &[f64], method: Method, alpha: f64, beta: f64, gamma: f64, phi: f64) -> (f64, f64, f64, Vec<f64>) {
    let m = SEASON;
    let (mut level, mut trend, mut season) = match method {
        Method::HoltWinters => {
            // ETS(A,N,A): no trend; the first season's deviations from its mean start the seasonal terms.
            let first = mean(&y[..m]);
            let season: Vec<f64> = (0..m).map(|i| y[i] - first).collect();
            (first, 0.0, season)
        }
        Method::DampedTrend => {
            let k = (y.len() / 2).clamp(1, 4);
            let a = mean(&y[..k]);
            let b = mean(&y[k..2 * k]);
            (a, (b - a) / k as f64, vec![0.0; m])
        }
        _ => (mean(&y[..y.len().min(3)]), 0.0, vec![0.0; m]),
    };
    let start = if method == Method::HoltWinters { m } else { 0 };
    let mut sse = 0.0;
    for (t, &obs) in y.iter().enumerate().skip(start) {
        let s = season[t % m];
        let forecast = level + phi * trend + s;
        let e = obs - forecast;
        sse += e * e;
        let new_level = level + phi * trend + alpha * e;
        trend = phi * trend + beta * e;
        season[t % m] = s + gamma * e;
        level = new_level;
    }
    if method != Method::DampedTrend {
        trend = 0.0;
    }
    (sse, level, trend, season)
}

/// Fit `method` to `y`, or `None` when there are too few points.
pub fn fit(method: Method, y: &[f64]) -> Option<Fitted> {
    let n = y.len();
    if n < method.min_points() {
        return None;
    }
    let base = Fitted {
        method,
        alpha: 0.0,
        beta: 0.0,
        gamma: 0.0,
        phi: 1.0,
        level: 0.0,
        trend: 0.0,
        season: vec![0.0; SEASON],
        sigma: 0.0,
        n,
        parts: Vec::new(),
    };
    match method {
        Method::Mean => {
            let mu = mean(y);
            let var = y.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
            Some(Fitted { level: mu, sigma: var.sqrt(), ..base })
        }
        Method::Combination => {
            let parts: Vec<Fitted> = [Method::Ses, Method::SeasonalMean, Method::DampedTrend]
                .into_iter()
                .filter_map(|m| fit(m, y))
                .collect();
            if parts.len() < 2 {
                return None;
            }
            // The spread of a combination is at most its parts' average (errors partly cancel).
            let sigma = parts.iter().map(|p| p.sigma).sum::<f64>() / parts.len() as f64;
            Some(Fitted { sigma, parts, ..base })
        }
        Method::SeasonalMean => {
            // Whole seasons only, the most recent (up to three), so that every month is averaged alike.
            let years = (n / SEASON).min(3);
            let window = &y[n - years * SEASON..];
            let year_means: Vec<f64> = window.chunks(SEASON).map(mean).collect();
            // Each month's deviation from its own year's mean, averaged over the years.
            let raw: Vec<f64> = (0..SEASON)
                .map(|k| mean(&(0..years).map(|j| window[j * SEASON + k] - year_means[j]).collect::<Vec<_>>()))
                .collect();
            let noise: f64 = (0..years)
                .flat_map(|j| (0..SEASON).map(move |k| (j, k)))
                .map(|(j, k)| (window[j * SEASON + k] - year_means[j] - raw[k]).powi(2))
                .sum::<f64>()
                / ((years - 1) * (SEASON - 1)).max(1) as f64;
            // Shrink the profile by how much of it the noise explains (James-Stein): a category
            // without a season keeps a flat forecast instead of last years' noise.
            let spread = mean(&raw.iter().map(|r| r * r).collect::<Vec<_>>());
            let shrink = if spread > 0.0 { (1.0 - noise / (years as f64 * spread)).max(0.0) } else { 0.0 };
            let level = mean(&y[n - SEASON..]);
            // The window ends with the data, so the month after the data has the window's offset 0.
            let season: Vec<f64> = raw.iter().map(|r| r * shrink).collect();
            let sigma = (noise * (1.0 + 1.0 / years as f64)).sqrt();
            Some(Fitted { level, season, sigma, ..base })
        }
        Method::SeasonalNaive => {
            let errors: Vec<f64> = (SEASON..n).map(|t| y[t] - y[t - SEASON]).collect();
            let var = errors.iter().map(|e| e * e).sum::<f64>() / errors.len().max(1) as f64;
            Some(Fitted { season: y[n - SEASON..].to_vec(), sigma: var.sqrt(), ..base })
        }
        Method::Ses | Method::DampedTrend | Method::HoltWinters => {
            let grid: Vec<f64> = (1..=19).map(|i| f64::from(i) * 0.05).collect();
            let betas: &[f64] = if method == Method::DampedTrend { &[0.01, 0.05, 0.1, 0.2] } else { &[0.0] };
            let gammas: &[f64] = if method == Method::HoltWinters { &[0.01, 0.05, 0.1, 0.2, 0.3] } else { &[0.0] };
            let phis: &[f64] = if method == Method::DampedTrend { &[0.8, 0.9, 0.95, 0.98] } else { &[1.0] };
            let mut best: Option<(f64, f64, f64, f64, f64)> = None;
            for &a in &grid {
                for &b in betas {
                    if b > a {
                        continue;
                    }
                    for &g in gammas {
                        if g > 1.0 - a {
                            continue;
                        }
                        for &p in phis {
                            let (sse, ..) = run(y, method, a, b, g, p);
                            if best.is_none_or(|(s, ..)| sse < s) {
                                best = Some((sse, a, b, g, p));
                            }
                        }
                    }
                }
            }
            let (sse, alpha, beta, gamma, phi) = best?;
            let (_, level, trend, ring) = run(y, method, alpha, beta, gamma, phi);
            let params = match method {
                Method::Ses => 2,
                Method::DampedTrend => 5,
                _ => 2 + SEASON,
            };
            let fitted_points = if method == Method::HoltWinters { n - SEASON } else { n };
            let sigma = (sse / (fitted_points.saturating_sub(params).max(1)) as f64).sqrt();
            // Reorder the ring so that season[0] is the month after the data.
            let season = (0..SEASON).map(|i| ring[(n + i) % SEASON]).collect();
            Some(Fitted { alpha, beta, gamma, phi, level, trend, season, sigma, ..base })
        }
    }
}

impl Fitted {
    /// The next `h` months.
    pub fn forecast(&self, h: usize) -> Vec<Point> {
        if self.method == Method::Combination {
            let forecasts: Vec<Vec<Point>> = self.parts.iter().map(|p| p.forecast(h)).collect();
            let k = forecasts.len().max(1) as f64;
            return (0..h)
                .map(|i| {
                    let avg = |f: &dyn Fn(&Point) -> f64| forecasts.iter().map(|fc| f(&fc[i])).sum::<f64>() / k;
                    Point {
                        mean: avg(&|p| p.mean),
                        lo80: avg(&|p| p.lo80),
                        hi80: avg(&|p| p.hi80),
                        lo95: avg(&|p| p.lo95),
                        hi95: avg(&|p| p.hi95),
                    }
                })
                .collect();
        }
        let mut out = Vec::with_capacity(h);
        let mut var_sum = 0.0;
        let mut damp = 0.0;
        for step in 1..=h {
            let mean = match self.method {
                Method::Mean => self.level,
                Method::SeasonalNaive => self.season[(step - 1) % SEASON],
                Method::Ses => self.level,
                Method::DampedTrend => {
                    damp += self.phi.powi(step as i32);
                    self.level + damp * self.trend
                }
                Method::HoltWinters | Method::SeasonalMean => self.level + self.season[(step - 1) % SEASON],
                Method::Combination => unreachable!("combinations average their parts"),
            };
            // c_{step-1} joins the variance from the second step on.
            let var_factor = match self.method {
                Method::Mean | Method::SeasonalMean => 1.0 + 1.0 / self.n.max(1) as f64,
                Method::SeasonalNaive => 1.0 + ((step - 1) / SEASON) as f64,
                _ => 1.0 + var_sum,
            };
            let c = match self.method {
                Method::Ses => self.alpha,
                Method::DampedTrend => {
                    let geometric: f64 = (1..=step).map(|i| self.phi.powi(i as i32)).sum();
                    self.alpha + self.alpha * self.beta * geometric
                }
                Method::HoltWinters => self.alpha + if step % SEASON == 0 { self.gamma } else { 0.0 },
                _ => 0.0,
            };
            var_sum += c * c;
            let sd = self.sigma * var_factor.sqrt();
            let mean = mean.max(0.0);
            out.push(Point {
                mean,
                lo80: (mean - Z80 * sd).max(0.0),
                hi80: mean + Z80 * sd,
                lo95: (mean - Z95 * sd).max(0.0),
                hi95: mean + Z95 * sd,
            });
        }
        out
    }
}

/// Symmetric mean absolute percentage error, in 0..2 (0: perfect). A month where both are zero is a
/// perfect zero error.
pub fn smape(actual: &[f64], forecast: &[f64]) -> f64 {
    let terms: Vec<f64> = actual
        .iter()
        .zip(forecast)
        .map(|(a, f)| {
            let d = a.abs() + f.abs();
            if d < 1e-9 { 0.0 } else { 2.0 * (a - f).abs() / d }
        })
        .collect();
    mean(&terms)
}

/// sMAPE of `method` by rolling origin over the last `origins` points of `y`, forecasting up to
/// `horizon` months from each origin; `None` when the method cannot be fitted at the first origin.
pub fn backtest(method: Method, y: &[f64], origins: usize, horizon: usize) -> Option<f64> {
    let n = y.len();
    let first = n.checked_sub(origins)?;
    let mut errors = Vec::new();
    for origin in first..n {
        let model = fit(method, &y[..origin])?;
        let h = horizon.min(n - origin);
        let points: Vec<f64> = model.forecast(h).iter().map(|p| p.mean).collect();
        errors.push(smape(&y[origin..origin + h], &points));
    }
    (!errors.is_empty()).then(|| mean(&errors))
}

/// Backtest origins for a series of `n` points: enough to judge (a year of them when the series is
/// long), leaving enough to fit.
pub fn origins_for(n: usize) -> usize {
    (n / 3).clamp(1, 12)
}

/// A series' chosen model and how each candidate did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Selection {
    /// The chosen model, fitted on the whole series.
    pub fitted: Fitted,
    /// (method, backtest sMAPE) of every candidate that could be fitted.
    pub scores: Vec<(Method, f64)>,
}

impl Selection {
    /// The chosen model's backtest sMAPE.
    pub fn smape(&self) -> Option<f64> {
        self.scores.iter().find(|(m, _)| *m == self.fitted.method).map(|(_, s)| *s)
    }
}

/// How much better (relative sMAPE) a model must backtest than the chosen baseline to replace it: a
/// few origins of noisy months otherwise crown whichever model the noise favoured.
const MARGIN: f64 = 0.9;

/// Choose a model by rolling-origin backtest (1 to 3 months ahead), in two steps. First the better
/// baseline, mean or seasonal naive, judged on as many origins as the series allows (up to
/// [`origins_for`]). Then each other model the series is long enough for challenges it on the origins
/// they share, and replaces it only when its sMAPE is at least 10% lower. A series too short to
/// backtest gets `Mean`.
pub fn select(y: &[f64]) -> Option<Selection> {
    if y.is_empty() {
        return None;
    }
    let n = y.len();
    let mut scores = Vec::new();
    let cap = origins_for(n);
    // The baselines, on the origins the seasonal one allows.
    let baseline_origins = n.saturating_sub(Method::SeasonalNaive.min_points()).min(cap);
    let mut baseline = (Method::Mean, f64::INFINITY);
    if n >= Method::Mean.min_points() + 3 {
        let origins = if baseline_origins >= 3 { baseline_origins } else { (n - 1).min(cap) };
        for m in [Method::Mean, Method::SeasonalNaive] {
            if n < m.min_points() + origins {
                continue;
            }
            if let Some(s) = backtest(m, y, origins, 3) {
                scores.push((m, s));
                if s < baseline.1 - 1e-12 {
                    baseline = (m, s);
                }
            }
        }
    }
    let mut chosen = baseline.0;
    let mut best_challenge = f64::INFINITY;
    for m in [Method::Ses, Method::DampedTrend, Method::HoltWinters, Method::SeasonalMean, Method::Combination] {
        let origins = n.saturating_sub(m.min_points().max(baseline.0.min_points())).min(cap);
        if origins < 3 {
            continue;
        }
        let (Some(challenger), Some(defender)) = (backtest(m, y, origins, 3), backtest(baseline.0, y, origins, 3))
        else {
            continue;
        };
        scores.push((m, challenger));
        let ratio = if defender > 1e-12 {
            challenger / defender
        } else if challenger <= 1e-12 {
            1.0
        } else {
            f64::INFINITY
        };
        if ratio <= MARGIN && ratio < best_challenge {
            best_challenge = ratio;
            chosen = m;
        }
    }
    Some(Selection { fitted: fit(chosen, y)?, scores })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_series_is_forecast_flat_with_tight_intervals() {
        let y = vec![100.0; 24];
        let s = select(&y).unwrap();
        let f = s.fitted.forecast(3);
        assert!(f.iter().all(|p| (p.mean - 100.0).abs() < 1e-6), "{f:?}");
        assert!(f.iter().all(|p| p.hi95 - p.lo95 < 1e-6));
        assert!(s.smape().unwrap() < 1e-9);
    }

    #[test]
    fn a_seasonal_series_gets_a_seasonal_model() {
        // Three years of a December peak.
        let y: Vec<f64> =
            (0..36).map(|t| if t % 12 == 11 { 900.0 } else { 300.0 + f64::from((t % 5) as u8) * 3.0 }).collect();
        let s = select(&y).unwrap();
        assert!(matches!(s.fitted.method, Method::SeasonalNaive | Method::HoltWinters), "{:?}", s.scores);
        let f = s.fitted.forecast(12);
        // The next December (the 12th month after a series ending in December) stands out.
        assert!(f[11].mean > 2.0 * f[5].mean, "{f:?}");
    }

    #[test]
    fn intervals_widen_with_the_horizon_and_contain_the_mean() {
        let y: Vec<f64> = (0..30).map(|t| 200.0 + 40.0 * (f64::from(t as u8) * 1.7).sin()).collect();
        for m in [Method::Ses, Method::DampedTrend, Method::Mean] {
            let f = fit(m, &y).unwrap().forecast(6);
            for p in &f {
                assert!(p.lo95 <= p.lo80 && p.lo80 <= p.mean && p.mean <= p.hi80 && p.hi80 <= p.hi95, "{m:?} {p:?}");
            }
            if m == Method::Ses {
                assert!(f[5].hi95 - f[5].lo95 >= f[0].hi95 - f[0].lo95, "{f:?}");
            }
        }
    }

    #[test]
    fn smape_is_symmetric_and_bounded() {
        assert_eq!(smape(&[100.0], &[100.0]), 0.0);
        assert_eq!(smape(&[0.0], &[0.0]), 0.0);
        assert!((smape(&[100.0], &[0.0]) - 2.0).abs() < 1e-12);
        assert!((smape(&[100.0], &[50.0]) - smape(&[50.0], &[100.0])).abs() < 1e-12);
    }

    #[test]
    fn a_short_series_gets_the_mean() {
        let s = select(&[10.0, 30.0]).unwrap();
        assert_eq!(s.fitted.method, Method::Mean);
        assert!((s.fitted.forecast(1)[0].mean - 20.0).abs() < 1e-9);
    }
}

/// A series' backtest: the chosen model against the two baselines.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HoldoutResult {
    /// Series name.
    pub name: String,
    /// The method chosen (at the last origin, for the nested backtest).
    pub chosen: Method,
    /// sMAPE of the chosen model.
    pub chosen_smape: f64,
    /// sMAPE of the seasonal-naive baseline, when the series is long enough for it.
    pub seasonal_naive_smape: Option<f64>,
    /// sMAPE of the mean baseline.
    pub mean_smape: f64,
    /// Whether the chosen model is at least as good as the better baseline.
    pub beats_baselines: bool,
}

/// The rolling-origin backtest of each series' chosen model and of the two baselines, all on the same
/// origins (as many as the chosen model and seasonal naive allow, up to [`origins_for`]), 1 to 3
/// months ahead: what the choice was made on.
pub fn backtest_report(series: &[(String, Vec<f64>)]) -> Vec<HoldoutResult> {
    let mut out = Vec::new();
    for (name, y) in series {
        let n = y.len();
        let Some(chosen) = select(y) else { continue };
        let method = chosen.fitted.method;
        let need = method.min_points().max(Method::SeasonalNaive.min_points());
        let origins = n.saturating_sub(need).min(origins_for(n));
        // Too short to compare with seasonal naive: against the mean alone.
        let (origins, with_snaive) = if origins >= 3 {
            (origins, true)
        } else {
            (n.saturating_sub(method.min_points()).min(origins_for(n)), false)
        };
        if origins == 0 {
            continue;
        }
        let Some(chosen_smape) = backtest(method, y, origins, 3) else { continue };
        let mean_smape = backtest(Method::Mean, y, origins, 3).unwrap_or(f64::INFINITY);
        let seasonal_naive_smape = with_snaive.then(|| backtest(Method::SeasonalNaive, y, origins, 3)).flatten();
        let best_baseline = seasonal_naive_smape.map_or(mean_smape, |s| s.min(mean_smape));
        out.push(HoldoutResult {
            name: name.clone(),
            chosen: method,
            chosen_smape,
            seasonal_naive_smape,
            mean_smape,
            beats_baselines: chosen_smape <= best_baseline + 1e-9,
        });
    }
    out
}

/// A nested rolling backtest of each series: at each of the last `origins` months, a model is chosen
/// on the months before it only (by [`select`], with its own inner backtest), and it and the two
/// baselines, fitted on the same months, forecast up to `horizon` months ahead; the sMAPEs are
/// averaged over the origins. The chosen model never sees the months it is judged on.
pub fn holdout(series: &[(String, Vec<f64>)], origins: usize, horizon: usize) -> Vec<HoldoutResult> {
    let mut out = Vec::new();
    for (name, y) in series {
        let n = y.len();
        if n < origins + 4 {
            continue;
        }
        let (mut chosen_err, mut mean_err, mut snaive_err) = (Vec::new(), Vec::new(), Vec::new());
        let mut last_choice = Method::Mean;
        for origin in n - origins..n {
            let (train, test) = (&y[..origin], &y[origin..(origin + horizon).min(n)]);
            let h = test.len();
            let score = |f: &Fitted| smape(test, &f.forecast(h).iter().map(|p| p.mean).collect::<Vec<_>>());
            let Some(chosen) = select(train) else { continue };
            last_choice = chosen.fitted.method;
            chosen_err.push(score(&chosen.fitted));
            mean_err.push(fit(Method::Mean, train).map_or(f64::INFINITY, |f| score(&f)));
            if let Some(f) = fit(Method::SeasonalNaive, train) {
                snaive_err.push(score(&f));
            }
        }
        if chosen_err.is_empty() {
            continue;
        }
        let chosen_smape = mean(&chosen_err);
        let mean_smape = mean(&mean_err);
        // Seasonal naive counts only where it could forecast at every origin.
        let seasonal_naive_smape = (snaive_err.len() == chosen_err.len()).then(|| mean(&snaive_err));
        let best_baseline = seasonal_naive_smape.map_or(mean_smape, |s| s.min(mean_smape));
        out.push(HoldoutResult {
            name: name.clone(),
            chosen: last_choice,
            chosen_smape,
            seasonal_naive_smape,
            mean_smape,
            beats_baselines: chosen_smape <= best_baseline + 1e-9,
        });
    }
    out
}

/// Monthly expense series per category, and the total, from a CSV with columns `date,amount,category`
/// (and optionally `type`: `income`/`expense`; without it, negative amounts are expenses when the file
/// has any, else every row is): complete months only (the first and last month are left out when the
/// data starts or ends inside them).
pub fn load_monthly_csv(path: &std::path::Path) -> Result<Vec<(String, Vec<f64>)>, String> {
    use std::collections::BTreeMap;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let col = |name: &str| headers.iter().position(|h| h.trim().eq_ignore_ascii_case(name));
    let (Some(date_col), Some(amount_col), Some(category_col)) = (col("date"), col("amount"), col("category")) else {
        return Err("the file needs 'date', 'amount' and 'category' columns".into());
    };
    let type_col = col("type");
    let mut rows: Vec<(chrono::NaiveDate, i64, String, Option<bool>)> = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| format!("line {}: {e}", i + 2))?;
        let get = |c: usize| rec.get(c).map(str::trim).unwrap_or("");
        let Ok(date) = chrono::NaiveDate::parse_from_str(get(date_col).get(..10).unwrap_or(""), "%Y-%m-%d") else {
            continue;
        };
        let Some(cents) = crate::eval::parse_cents(get(amount_col)) else { continue };
        let income = type_col.map(|c| get(c).to_ascii_lowercase()).and_then(|t| match t.as_str() {
            "income" | "credit" => Some(true),
            "expense" | "debit" => Some(false),
            _ => None,
        });
        rows.push((date, cents, get(category_col).to_owned(), income));
    }
    if rows.is_empty() {
        return Err("no rows with a date and an amount".into());
    }
    let signed = rows.iter().any(|r| r.1 < 0);
    let (first, last) =
        (rows.iter().map(|r| r.0).min().unwrap_or_default(), rows.iter().map(|r| r.0).max().unwrap_or_default());
    let month = |d: chrono::NaiveDate| (d.year(), d.month());
    let skip_first = first.day() != 1;
    let skip_last = last.succ_opt().is_some_and(|n| n.month() == last.month());
    let mut months: Vec<(i32, u32)> = Vec::new();
    let mut d = chrono::NaiveDate::from_ymd_opt(first.year(), first.month(), 1).unwrap_or(first);
    while d <= last {
        let m = month(d);
        let partial = (skip_first && m == month(first)) || (skip_last && m == month(last));
        if !partial {
            months.push(m);
        }
        d = d.checked_add_months(chrono::Months::new(1)).unwrap_or(last.succ_opt().unwrap_or(last));
    }
    let mut totals: BTreeMap<String, BTreeMap<(i32, u32), i64>> = BTreeMap::new();
    for (date, cents, category, income) in &rows {
        let expense = match income {
            Some(i) => !i,
            None => !signed || *cents < 0,
        };
        if !expense {
            continue;
        }
        for name in [category.as_str(), "(all expenses)"] {
            *totals.entry(name.to_owned()).or_default().entry(month(*date)).or_default() += cents.abs();
        }
    }
    Ok(totals
        .into_iter()
        .filter_map(|(name, by_month)| {
            let start = months.iter().position(|m| by_month.contains_key(m))?;
            Some((name, months[start..].iter().map(|m| *by_month.get(m).unwrap_or(&0) as f64 / 100.0).collect()))
        })
        .collect())
}
