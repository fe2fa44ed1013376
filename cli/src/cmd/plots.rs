//! PNG plots for the `amicn demo` report: latency CDFs, rekey traffic per epoch and bar charts.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context as _;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Width of every plot, in pixels.
const WIDTH: u32 = 800;
/// Height of every plot, in pixels.
const HEIGHT: u32 = 500;
/// Font family name under which the discovered font is registered.
const FAMILY: &str = "sans-serif";
/// Environment variable naming a TrueType/OpenType font file to use instead of the system search.
const FONT_ENV: &str = "AMICN_PLOT_FONT";
/// Well-known locations of a regular sans-serif font, tried before the directory walk.
const WELL_KNOWN_FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];
/// Directories walked (a few levels deep) when no well-known font exists.
const FONT_DIRS: &[&str] = &["/usr/share/fonts", "/usr/local/share/fonts"];
/// Maximum directory depth of the font walk below each of [`FONT_DIRS`].
const FONT_WALK_DEPTH: usize = 3;
/// Maximum number of directory entries the font walk looks at.
const FONT_WALK_LIMIT: usize = 5_000;
/// Distinguishable series colours (Tableau 10).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
/// Largest number of points drawn per CDF curve; larger sample sets are drawn at quantiles.
const CDF_MAX_POINTS: usize = 2_000;

/// One latency sample set (microseconds) of one traffic class.
pub(crate) struct LatencySeries {
    /// Legend label of the traffic class.
    pub(crate) label: String,
    /// Latency samples in microseconds, in any order.
    pub(crate) samples_us: Vec<u64>,
}

/// Rekey traffic of one epoch, in wrap objects, by delivery mode, and the formula prediction.
pub(crate) struct EpochTraffic {
    /// Epoch number.
    pub(crate) epoch: u32,
    /// X-axis label of the epoch (e.g. the membership event that caused it).
    pub(crate) label: String,
    /// Wrap objects delivered by unicast.
    pub(crate) unicast: u64,
    /// Wrap objects delivered by multicast.
    pub(crate) multicast: u64,
    /// Wrap objects delivered by broadcast.
    pub(crate) broadcast: u64,
    /// Total predicted by the key-graph formula, if any.
    pub(crate) formula: Option<u64>,
}

/// Whether text could be drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlotNote {
    /// The plot has its captions, labels and legend.
    Complete,
    /// No usable font was found: the plot was drawn without any text.
    NoFont,
}

/// Empirical CDF of each series on one chart, x in ms (log scale if max/min > 100), y 0..1.
pub(crate) fn latency_cdf(
    path: &Path,
    title: &str,
    series: &[LatencySeries],
) -> anyhow::Result<PlotNote> {
    let text = font_available();
    render(path, |root| draw_latency_cdf(root, title, series, text))?;
    Ok(note(text))
}

/// Lines over time: each series is `(label, points)` with x in seconds; `y_max` fixes the
/// top of the y axis (0 to the largest value when `None`).
pub(crate) fn time_series(
    path: &Path,
    title: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
    y_max: Option<f64>,
) -> anyhow::Result<PlotNote> {
    let text = font_available();
    render(path, |root| {
        let x_end = series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
            .fold(1e-3f64, f64::max);
        let top = y_max.unwrap_or_else(|| {
            series
                .iter()
                .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
                .fold(1e-9f64, f64::max)
                * 1.05
        });
        let mut builder = ChartBuilder::on(root);
        builder.margin(15);
        if text {
            builder
                .caption(title, font(22))
                .x_label_area_size(45)
                .y_label_area_size(70);
        } else {
            builder.x_label_area_size(5).y_label_area_size(5);
        }
        let mut chart = builder.build_cartesian_2d(0f64..x_end, 0f64..top)?;
        configure_mesh(&mut chart, text, Some("time (s)"), Some(y_desc))?;
        for (i, (label, points)) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let drawn = chart.draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?;
            drawn.label(label.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        }
        if text && series.len() > 1 {
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        }
        Ok(())
    })?;
    Ok(note(text))
}

/// Lines on log–log axes, each series `(label, points)` with positive coordinates; a series
/// whose label ends in `(formula)` is drawn dashed, so formulas and measurements can share a plot.
pub(crate) fn log_log(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> anyhow::Result<PlotNote> {
    let text = font_available();
    render(path, |root| {
        let pts = || series.iter().flat_map(|(_, p)| p.iter().copied());
        let x_lo = pts()
            .map(|p| p.0)
            .filter(|v| *v > 0.0)
            .fold(f64::MAX, f64::min);
        let x_hi = pts().map(|p| p.0).fold(0f64, f64::max);
        let y_lo = pts()
            .map(|p| p.1)
            .filter(|v| *v > 0.0)
            .fold(f64::MAX, f64::min);
        let y_hi = pts().map(|p| p.1).fold(0f64, f64::max);
        let (x_lo, x_hi) = if x_lo < x_hi {
            (x_lo, x_hi)
        } else {
            (1.0, 10.0)
        };
        let (y_lo, y_hi) = if y_lo < y_hi {
            (y_lo / 1.5, y_hi * 1.5)
        } else {
            (1.0, 10.0)
        };
        let mut builder = ChartBuilder::on(root);
        builder.margin(15);
        if text {
            builder
                .caption(title, font(22))
                .x_label_area_size(45)
                .y_label_area_size(80);
        } else {
            builder.x_label_area_size(5).y_label_area_size(5);
        }
        let mut chart =
            builder.build_cartesian_2d((x_lo..x_hi).log_scale(), (y_lo..y_hi).log_scale())?;
        configure_mesh(&mut chart, text, Some(x_desc), Some(y_desc))?;
        for (i, (label, points)) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let pts: Vec<(f64, f64)> = points
                .iter()
                .copied()
                .filter(|(x, y)| *x > 0.0 && *y > 0.0)
                .collect();
            let drawn = if label.ends_with("(formula)") {
                chart.draw_series(DashedLineSeries::new(pts, 6, 4, color.stroke_width(2)))?
            } else {
                chart.draw_series(LineSeries::new(pts, color.stroke_width(2)))?
            };
            drawn.label(label.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        }
        if text && !series.is_empty() {
            draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        }
        Ok(())
    })?;
    Ok(note(text))
}

/// Stacked bars per epoch (unicast/multicast/broadcast), formula drawn beside each bar.
pub(crate) fn rekey_traffic(path: &Path, epochs: &[EpochTraffic]) -> anyhow::Result<PlotNote> {
    let text = font_available();
    render(path, |root| draw_rekey_traffic(root, epochs, text))?;
    Ok(note(text))
}

/// One bar per item (e.g. cache hit ratio per forwarder, 0..1), labelled on the x axis.
pub(crate) fn bars(
    path: &Path,
    title: &str,
    y_label: &str,
    items: &[(String, f64)],
) -> anyhow::Result<PlotNote> {
    let text = font_available();
    render(path, |root| draw_bars(root, title, y_label, items, text))?;
    Ok(note(text))
}

/// The note matching whether text was drawn.
fn note(text: bool) -> PlotNote {
    if text {
        PlotNote::Complete
    } else {
        PlotNote::NoFont
    }
}

/// The drawing area every plot is drawn on.
type Root<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Draws into an 800x500 RGB buffer with `draw` and writes it to `path` as a PNG.
fn render(path: &Path, draw: impl FnOnce(&Root<'_>) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut rgb = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    let mut png_bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut png_bytes, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("encoding PNG header")?;
    writer.write_image_data(&rgb).context("encoding PNG data")?;
    writer.finish().context("finishing PNG")?;
    std::fs::write(path, &png_bytes).with_context(|| format!("writing {}", path.display()))
}

/// Whether a font is registered for text, looking for one on first use.
fn font_available() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(register_system_font)
}

/// Finds a usable font (env override, well-known paths, then a shallow walk) and registers it.
fn register_system_font() -> bool {
    let env = std::env::var_os(FONT_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let well_known = WELL_KNOWN_FONTS.iter().map(PathBuf::from);
    if env.into_iter().chain(well_known).any(|p| try_register(&p)) {
        return true;
    }
    let mut found = Vec::new();
    let mut budget = FONT_WALK_LIMIT;
    for dir in FONT_DIRS {
        walk_fonts(Path::new(dir), FONT_WALK_DEPTH, &mut budget, &mut found);
    }
    found.sort_by_key(|p| (font_rank(p), p.clone()));
    found.iter().any(|p| try_register(p))
}

/// Collects `.ttf`/`.otf` files under `dir`, at most `depth` levels deep and `budget` entries.
fn walk_fonts(dir: &Path, depth: usize, budget: &mut usize, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        if path.is_dir() {
            if depth > 0 {
                walk_fonts(&path, depth - 1, budget, found);
            }
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("ttf") || e.eq_ignore_ascii_case("otf"))
        {
            found.push(path);
        }
    }
}

/// Preference of a font file found by the walk: lower is better (regular sans-serif first).
fn font_rank(path: &Path) -> u32 {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let styled = [
        "bold",
        "italic",
        "oblique",
        "light",
        "thin",
        "black",
        "condensed",
    ]
    .iter()
    .any(|s| name.contains(s));
    let symbol = ["mono", "math", "symbol", "emoji", "dingbat"]
        .iter()
        .any(|s| name.contains(s));
    let sans = name.contains("sans");
    u32::from(symbol) * 4 + u32::from(styled) * 2 + u32::from(!sans)
}

/// Reads `path` and registers it as the sans-serif font; false if it is missing or not a font.
fn try_register(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    // Cheap sfnt magic check so that only plausible fonts are leaked into the registry.
    let magic = bytes.get(..4);
    let plausible = matches!(
        magic,
        Some([0, 1, 0, 0]) | Some(b"OTTO") | Some(b"true") | Some(b"ttcf")
    );
    if !plausible {
        return false;
    }
    // plotters' font registry wants `'static` bytes; this runs at most a few times per process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).is_ok()
}

/// Text style of the given pixel size in the registered font family.
fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().into()
}

/// Formats an axis tick or value with up to three significant digits, without trailing zeros.
fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    if v == 0.0 {
        return "0".to_string();
    }
    // Log axes span many decades; long digit strings would not fit the label area.
    if v.abs() >= 1e7 {
        return format!("{v:.0e}");
    }
    let magnitude = v.abs().log10().floor();
    let decimals = (2.0 - magnitude).clamp(0.0, 6.0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Nearest-rank quantile `q` of sorted samples (none if empty).
fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (q * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n) - 1).copied()
}

/// Draws the latency CDF chart.
fn draw_latency_cdf(
    root: &Root<'_>,
    title: &str,
    series: &[LatencySeries],
    text: bool,
) -> anyhow::Result<()> {
    let sorted: Vec<Vec<u64>> = series
        .iter()
        .map(|s| {
            let mut v = s.samples_us.clone();
            v.sort_unstable();
            v
        })
        .collect();
    let min_us = sorted.iter().filter_map(|v| v.first()).min().copied();
    let max_us = sorted.iter().filter_map(|v| v.last()).max().copied();
    let (log, x_range) = match (min_us, max_us) {
        (Some(lo), Some(hi)) => {
            let (lo_ms, hi_ms) = (lo.max(1) as f64 / 1000.0, hi.max(1) as f64 / 1000.0);
            if hi_ms / lo_ms > 100.0 {
                (true, lo_ms / 1.25..hi_ms * 1.25)
            } else {
                let (lo_ms, hi_ms) = (lo as f64 / 1000.0, hi as f64 / 1000.0);
                let pad = if hi_ms > lo_ms {
                    (hi_ms - lo_ms) * 0.05
                } else {
                    hi_ms.max(1.0) * 0.1
                };
                (false, (lo_ms - pad).max(0.0)..hi_ms + pad)
            }
        }
        _ => (false, 0.0..1.0),
    };
    let curves: Vec<Vec<(f64, f64)>> = sorted
        .iter()
        .map(|v| cdf_points(v, log, x_range.end))
        .collect();
    let legends: Vec<String> = series
        .iter()
        .zip(&sorted)
        .map(|(s, v)| match (quantile(v, 0.5), quantile(v, 0.99)) {
            (Some(p50), Some(p99)) => format!(
                "{} (n={}, p50 {} ms, p99 {} ms)",
                s.label,
                v.len(),
                fmt_num(p50 as f64 / 1000.0),
                fmt_num(p99 as f64 / 1000.0)
            ),
            _ => format!("{} (no samples)", s.label),
        })
        .collect();
    let x_desc = if log {
        "latency (ms, log scale)"
    } else {
        "latency (ms)"
    };
    let cdf = CdfChart {
        title,
        x_desc,
        curves: &curves,
        legends: &legends,
        text,
    };
    if log {
        cdf.draw(root, x_range.log_scale())
    } else {
        cdf.draw(root, x_range)
    }
}

/// Step points of the empirical CDF of `sorted` samples, in ms, extended right to `x_end`.
fn cdf_points(sorted: &[u64], log: bool, x_end: f64) -> Vec<(f64, f64)> {
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let to_ms = |us: u64| {
        if log {
            us.max(1) as f64 / 1000.0
        } else {
            us as f64 / 1000.0
        }
    };
    let nf = n as f64;
    let mut points = vec![(to_ms(sorted[0]), 0.0)];
    let mut prev_y = 0.0;
    let mut push = |idx: usize| {
        // Rank of the last sample equal to sorted[idx], so ties become one vertical step.
        let x = to_ms(sorted[idx]);
        let y = (idx + 1) as f64 / nf;
        points.push((x, prev_y));
        points.push((x, y));
        prev_y = y;
    };
    if n <= CDF_MAX_POINTS {
        for idx in 0..n {
            if idx + 1 == n || sorted[idx + 1] != sorted[idx] {
                push(idx);
            }
        }
    } else {
        let mut last = None;
        for k in 1..=CDF_MAX_POINTS {
            let idx = (k * n).div_ceil(CDF_MAX_POINTS) - 1;
            if last != Some(idx) {
                push(idx.min(n - 1));
                last = Some(idx);
            }
        }
    }
    points.push((x_end, 1.0));
    points
}

/// Everything the CDF chart needs besides its x coordinate kind.
struct CdfChart<'a> {
    /// Chart caption.
    title: &'a str,
    /// X axis description.
    x_desc: &'a str,
    /// Step points of each series.
    curves: &'a [Vec<(f64, f64)>],
    /// Legend text of each series.
    legends: &'a [String],
    /// Whether text can be drawn.
    text: bool,
}

impl CdfChart<'_> {
    /// Draws the chart with the given x coordinate (linear or log).
    fn draw<X>(&self, root: &Root<'_>, x_spec: X) -> anyhow::Result<()>
    where
        X: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
    {
        let mut builder = ChartBuilder::on(root);
        builder.margin(15);
        if self.text {
            builder
                .caption(self.title, font(22))
                .x_label_area_size(45)
                .y_label_area_size(60);
        } else {
            builder.x_label_area_size(5).y_label_area_size(5);
        }
        let mut chart = builder.build_cartesian_2d(x_spec, 0f64..1f64)?;
        configure_mesh(
            &mut chart,
            self.text,
            Some(self.x_desc),
            Some("cumulative fraction"),
        )?;
        for (i, points) in self.curves.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let line = LineSeries::new(points.iter().copied(), color.stroke_width(2));
            let drawn = chart.draw_series(line)?;
            if let Some(legend) = self.legends.get(i) {
                drawn.label(legend.as_str()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
            }
        }
        if self.text && self.curves.len() > 1 {
            draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        }
        Ok(())
    }
}

/// Draws the mesh and axes; without text, only grid lines and a frame.
fn configure_mesh<X, Y>(
    chart: &mut ChartContext<'_, BitMapBackend<'_>, Cartesian2d<X, Y>>,
    text: bool,
    x_desc: Option<&str>,
    y_desc: Option<&str>,
) -> anyhow::Result<()>
where
    X: Ranged + ValueFormatter<X::ValueType>,
    Y: Ranged + ValueFormatter<Y::ValueType>,
    X::ValueType: Into<f64> + Copy,
    Y::ValueType: Into<f64> + Copy,
{
    let mut mesh = chart.configure_mesh();
    let fmt_x = |v: &X::ValueType| fmt_num((*v).into());
    let fmt_y = |v: &Y::ValueType| fmt_num((*v).into());
    mesh.x_label_formatter(&fmt_x)
        .y_label_formatter(&fmt_y)
        .max_light_lines(4);
    if text {
        mesh.label_style(font(14)).axis_desc_style(font(15));
        if let Some(d) = x_desc {
            mesh.x_desc(d);
        }
        if let Some(d) = y_desc {
            mesh.y_desc(d);
        }
        mesh.draw()?;
    } else {
        mesh.disable_x_axis().disable_y_axis().draw()?;
        draw_frame(chart)?;
    }
    Ok(())
}

/// Draws a black frame around the plotting area (used when axes cannot be labelled).
fn draw_frame<X: Ranged, Y: Ranged>(
    chart: &ChartContext<'_, BitMapBackend<'_>, Cartesian2d<X, Y>>,
) -> anyhow::Result<()> {
    let area = chart.plotting_area().strip_coord_spec();
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32 - 1, h as i32 - 1);
    area.draw(&Rectangle::new([(0, 0), (w, h)], BLACK.stroke_width(1)))?;
    Ok(())
}

/// Draws the series legend at `pos` with a translucent white background.
fn draw_legend<'a, 'b: 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, Cartesian2d<X, Y>>,
    pos: SeriesLabelPosition,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(pos)
        .label_font(font(14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// X coordinate range for `n` categories centred on 0, 1, ..., n-1.
fn category_range(n: usize) -> Range<f64> {
    -0.5..(n.max(1) as f64 - 0.5)
}

/// Draws category labels under the x axis at integer positions, skipping some if crowded.
fn draw_category_labels<Y: Ranged<ValueType: Clone>>(
    root: &Root<'_>,
    chart: &ChartContext<'_, BitMapBackend<'_>, Cartesian2d<RangedCoordf64, Y>>,
    y_base: &Y::ValueType,
    labels: &[String],
) -> anyhow::Result<()> {
    let style = font(14);
    let labels: Vec<String> = labels.iter().map(|l| truncate(l, 24)).collect();
    let widest = labels
        .iter()
        .map(|l| {
            root.estimate_text_size(l, &style)
                .map(|(w, _)| w)
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0);
    let (x_px, _) = chart.plotting_area().get_pixel_range();
    let slot = (x_px.end - x_px.start).max(1) as f64 / labels.len().max(1) as f64;
    let step = ((f64::from(widest) + 8.0) / slot).ceil().max(1.0) as usize;
    let style = style.pos(Pos::new(HPos::Center, VPos::Top));
    for (i, label) in labels.iter().enumerate().step_by(step) {
        let (px, py) = chart.backend_coord(&(i as f64, y_base.clone()));
        root.draw_text(label, &style, (px, py + 6))?;
    }
    Ok(())
}

/// Shortens `s` to at most `max` characters, ending with an ellipsis if cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Draws the rekey traffic chart.
fn draw_rekey_traffic(root: &Root<'_>, epochs: &[EpochTraffic], text: bool) -> anyhow::Result<()> {
    let top = epochs
        .iter()
        .map(|e| {
            let total = e
                .unicast
                .saturating_add(e.multicast)
                .saturating_add(e.broadcast);
            total.max(e.formula.unwrap_or(0))
        })
        .max()
        .unwrap_or(0);
    // Head room above the tallest bar keeps the legend clear of the bars.
    let y_max = (top.saturating_add(top / 3))
        .max(top.saturating_add(1))
        .max(4);
    let mut builder = ChartBuilder::on(root);
    builder.margin(15);
    if text {
        builder
            .caption("Rekey traffic per epoch", font(22))
            .x_label_area_size(50)
            .y_label_area_size(65);
    } else {
        builder.x_label_area_size(5).y_label_area_size(5);
    }
    let mut chart = builder.build_cartesian_2d(category_range(epochs.len()), 0u64..y_max)?;
    {
        let mut mesh = chart.configure_mesh();
        mesh.disable_x_mesh().x_labels(0).max_light_lines(4);
        if text {
            mesh.label_style(font(14))
                .axis_desc_style(font(15))
                .x_desc("epoch")
                .y_desc("wrap objects")
                .draw()?;
        } else {
            mesh.disable_x_axis().disable_y_axis().draw()?;
        }
    }
    if !text {
        draw_frame(&chart)?;
    }
    let modes = ["unicast", "multicast", "broadcast"];
    let mut bases = vec![0u64; epochs.len()];
    for (mode, name) in modes.into_iter().enumerate() {
        let color = PALETTE[mode];
        let mut rects = Vec::new();
        for (i, (e, base)) in epochs.iter().zip(bases.iter_mut()).enumerate() {
            let n = [e.unicast, e.multicast, e.broadcast][mode];
            if n > 0 {
                let x = i as f64;
                let top = base.saturating_add(n);
                rects.push(Rectangle::new(
                    [(x - 0.38, *base), (x + 0.05, top)],
                    color.filled(),
                ));
                *base = top;
            }
        }
        chart
            .draw_series(rects)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], color.filled()));
    }
    let formula_color = RGBColor(0, 0, 0);
    let mut predicted = Vec::new();
    for (i, f) in epochs
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.formula.map(|f| (i, f)))
    {
        let x = i as f64;
        predicted.push(Rectangle::new(
            [(x + 0.1, 0), (x + 0.38, f)],
            formula_color.stroke_width(2),
        ));
        predicted.push(Rectangle::new(
            [(x + 0.1, f), (x + 0.38, f)],
            formula_color.stroke_width(4),
        ));
    }
    chart
        .draw_series(predicted)?
        .label("formula (predicted total)")
        .legend(move |(x, y)| {
            Rectangle::new(
                [(x + 2, y - 6), (x + 14, y + 6)],
                formula_color.stroke_width(2),
            )
        });
    if text {
        let labels: Vec<String> = epochs
            .iter()
            .map(|e| {
                if e.label.is_empty() {
                    format!("{}", e.epoch)
                } else {
                    format!("{}: {}", e.epoch, e.label)
                }
            })
            .collect();
        draw_category_labels(root, &chart, &0, &labels)?;
        if !epochs.is_empty() {
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        }
    }
    Ok(())
}

/// Draws the bar chart.
fn draw_bars(
    root: &Root<'_>,
    title: &str,
    y_label: &str,
    items: &[(String, f64)],
    text: bool,
) -> anyhow::Result<()> {
    let values: Vec<f64> = items
        .iter()
        .map(|(_, v)| *v)
        .filter(|v| v.is_finite())
        .collect();
    let lo = values.iter().copied().fold(0.0, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    let unit = lo >= 0.0 && hi <= 1.0;
    let y_range = if unit {
        0.0..1.08
    } else {
        let span = (hi - lo).max(f64::MIN_POSITIVE);
        let pad = span * 0.1;
        (if lo < 0.0 { lo - pad } else { 0.0 })..(if hi > 0.0 { hi + pad } else { 1.0 })
    };
    let mut builder = ChartBuilder::on(root);
    builder.margin(15);
    if text {
        builder
            .caption(title, font(22))
            .x_label_area_size(40)
            .y_label_area_size(65);
    } else {
        builder.x_label_area_size(5).y_label_area_size(5);
    }
    let mut chart = builder.build_cartesian_2d(category_range(items.len()), y_range)?;
    {
        let mut mesh = chart.configure_mesh();
        let fmt_y = |v: &f64| fmt_num(*v);
        mesh.disable_x_mesh()
            .x_labels(0)
            .max_light_lines(4)
            .y_label_formatter(&fmt_y);
        if text {
            mesh.label_style(font(14))
                .axis_desc_style(font(15))
                .y_desc(y_label)
                .draw()?;
        } else {
            mesh.disable_x_axis().disable_y_axis().draw()?;
        }
    }
    if !text {
        draw_frame(&chart)?;
    }
    let color = PALETTE[0];
    let rects = items
        .iter()
        .enumerate()
        .filter(|(_, (_, v))| v.is_finite())
        .map(|(i, (_, v))| {
            let x = i as f64;
            Rectangle::new([(x - 0.35, 0.0), (x + 0.35, *v)], color.filled())
        });
    chart.draw_series(rects)?;
    if text {
        let labels: Vec<String> = items.iter().map(|(l, _)| l.clone()).collect();
        draw_category_labels(root, &chart, &0.0, &labels)?;
        if items.len() <= 40 {
            let style = font(13).pos(Pos::new(HPos::Center, VPos::Bottom));
            for (i, (_, v)) in items.iter().enumerate() {
                let y = if v.is_finite() { v.max(0.0) } else { 0.0 };
                let (px, py) = chart.backend_coord(&(i as f64, y));
                root.draw_text(&fmt_num(*v), &style, (px, py - 3))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A fresh scratch directory for one test.
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("amicn-plots-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Asserts that `path` is a PNG that decodes to 800x500.
    fn assert_png(path: &Path) {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG",
            path.display()
        );
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut buf).unwrap();
        assert_eq!((frame.width, frame.height), (WIDTH, HEIGHT));
    }

    /// Asserts that the PNG at `path` is not a single flat colour.
    fn assert_not_blank(path: &Path) {
        let bytes = std::fs::read(path).unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut buf).unwrap();
        assert!(buf.iter().any(|&b| b != 255), "{} is blank", path.display());
    }

    fn series() -> Vec<LatencySeries> {
        vec![
            LatencySeries {
                label: "cached".into(),
                samples_us: (0..500).map(|i| 50 + i * 3).chain([0, 0]).collect(),
            },
            LatencySeries {
                label: "uncached".into(),
                samples_us: (0..5000).map(|i| 2_000 + (i * i) % 90_000).collect(),
            },
            LatencySeries {
                label: "empty".into(),
                samples_us: vec![],
            },
        ]
    }

    fn epochs() -> Vec<EpochTraffic> {
        (0..6)
            .map(|i| EpochTraffic {
                epoch: i,
                label: if i % 2 == 0 {
                    "join".into()
                } else {
                    "leave".into()
                },
                unicast: u64::from(i) * 3,
                multicast: 10 + u64::from(i),
                broadcast: if i == 3 { 0 } else { 4 },
                formula: if i == 2 {
                    None
                } else {
                    Some(16 + u64::from(i) * 4)
                },
            })
            .collect()
    }

    fn items() -> Vec<(String, f64)> {
        vec![
            ("fwd-a".into(), 0.92),
            ("fwd-b".into(), 0.41),
            ("fwd-c".into(), 0.0),
            ("fwd-d".into(), f64::NAN),
        ]
    }

    #[test]
    fn latency_cdf_writes_png() {
        let dir = temp_dir("cdf");
        let log = dir.join("cdf-log.png");
        let note = latency_cdf(&log, "Interest latency", &series()).unwrap();
        assert_eq!(note, note_now());
        assert_png(&log);
        assert_not_blank(&log);

        let linear = dir.join("cdf-linear.png");
        let one = [LatencySeries {
            label: "x".into(),
            samples_us: vec![1_000, 1_200, 1_500, 3_000],
        }];
        latency_cdf(&linear, "linear", &one).unwrap();
        assert_png(&linear);

        let same = dir.join("cdf-same.png");
        let flat = [LatencySeries {
            label: "z".into(),
            samples_us: vec![0; 10],
        }];
        latency_cdf(&same, "all zero", &flat).unwrap();
        assert_png(&same);

        let big = dir.join("cdf-big.png");
        let many = [LatencySeries {
            label: "m".into(),
            samples_us: (0..100_000).collect(),
        }];
        latency_cdf(&big, "many", &many).unwrap();
        assert_png(&big);
    }

    #[test]
    fn latency_cdf_empty_inputs() {
        let dir = temp_dir("cdf-empty");
        let none = dir.join("none.png");
        latency_cdf(&none, "nothing", &[]).unwrap();
        assert_png(&none);
        let empty = dir.join("empty-series.png");
        let s = [
            LatencySeries {
                label: "a".into(),
                samples_us: vec![],
            },
            LatencySeries {
                label: "b".into(),
                samples_us: vec![],
            },
        ];
        latency_cdf(&empty, "empty", &s).unwrap();
        assert_png(&empty);
    }

    #[test]
    fn rekey_traffic_writes_png() {
        let dir = temp_dir("rekey");
        let path = dir.join("rekey.png");
        assert_eq!(rekey_traffic(&path, &epochs()).unwrap(), note_now());
        assert_png(&path);
        assert_not_blank(&path);
        let empty = dir.join("rekey-empty.png");
        rekey_traffic(&empty, &[]).unwrap();
        assert_png(&empty);
        let zeros = dir.join("rekey-zeros.png");
        let z = [EpochTraffic {
            epoch: 1,
            label: String::new(),
            unicast: 0,
            multicast: 0,
            broadcast: 0,
            formula: Some(0),
        }];
        rekey_traffic(&zeros, &z).unwrap();
        assert_png(&zeros);
    }

    #[test]
    fn log_log_writes_png() {
        let dir = temp_dir("loglog");
        let path = dir.join("ll.png");
        let series = vec![
            ("measured".to_string(), vec![(100.0, 5.0), (1e6, 5e4)]),
            ("x (formula)".to_string(), vec![(100.0, 3.0), (1e6, 3e5)]),
        ];
        log_log(&path, "cost", "n", "bytes", &series).unwrap();
        assert_png(&path);
        assert_not_blank(&path);
    }

    #[test]
    fn bars_write_png() {
        let dir = temp_dir("bars");
        let path = dir.join("bars.png");
        assert_eq!(
            bars(&path, "Cache hit ratio", "hit ratio", &items()).unwrap(),
            note_now()
        );
        assert_png(&path);
        assert_not_blank(&path);
        let empty = dir.join("bars-empty.png");
        bars(&empty, "none", "y", &[]).unwrap();
        assert_png(&empty);
        let wide = dir.join("bars-wide.png");
        let w: Vec<(String, f64)> = (0..60)
            .map(|i| (format!("forwarder-{i}"), f64::from(i) * 10.0 - 100.0))
            .collect();
        bars(&wide, "wide", "value", &w).unwrap();
        assert_png(&wide);
    }

    #[test]
    fn plots_without_font_have_no_text_and_still_draw() {
        let dir = temp_dir("nofont");
        let cdf = dir.join("cdf.png");
        render(&cdf, |root| draw_latency_cdf(root, "t", &series(), false)).unwrap();
        assert_png(&cdf);
        assert_not_blank(&cdf);
        let rekey = dir.join("rekey.png");
        render(&rekey, |root| draw_rekey_traffic(root, &epochs(), false)).unwrap();
        assert_png(&rekey);
        let bar = dir.join("bars.png");
        render(&bar, |root| draw_bars(root, "t", "y", &items(), false)).unwrap();
        assert_png(&bar);
        for (name, path) in [("e1", "e1.png"), ("e2", "e2.png"), ("e3", "e3.png")] {
            let p = dir.join(path);
            render(&p, |root| match name {
                "e1" => draw_latency_cdf(root, "t", &[], false),
                "e2" => draw_rekey_traffic(root, &[], false),
                _ => draw_bars(root, "t", "y", &[], false),
            })
            .unwrap();
            assert_png(&p);
        }
    }

    #[test]
    fn unwritable_path_is_an_error() {
        let path = Path::new("/nonexistent-amicn-dir/x.png");
        assert!(bars(path, "t", "y", &items()).is_err());
    }

    #[test]
    fn helpers() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(1.0), "1");
        assert_eq!(fmt_num(0.25), "0.25");
        assert_eq!(fmt_num(3e12), "3e12");
        assert_eq!(fmt_num(12.345), "12.3");
        assert_eq!(fmt_num(1500.0), "1500");
        assert_eq!(fmt_num(f64::NAN), "n/a");
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[1, 2, 3, 4], 0.5), Some(2));
        assert_eq!(quantile(&[1, 2, 3, 4], 0.99), Some(4));
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert!(cdf_points(&[], true, 1.0).is_empty());
        let p = cdf_points(&[0, 0, 5], true, 1.0);
        assert_eq!(p.first(), Some(&(0.001, 0.0)));
        assert_eq!(p.last(), Some(&(1.0, 1.0)));
    }

    /// The note the public functions return on this machine.
    fn note_now() -> PlotNote {
        note(font_available())
    }
}
