//! Line plots as SVG text: two axes (linear or logarithmic), grid lines at the ticks, one
//! polyline with point markers per series, and a legend. Small enough to write by hand, and it
//! keeps a plotting crate out of the binary.

use std::fmt::Write;

/// How values map to positions along an axis.
#[derive(Clone, Copy)]
pub(super) enum Scale {
    Linear,
    /// Powers of ten are evenly spaced; every value must be positive.
    Log,
}

pub(super) struct Axis {
    pub(super) label: String,
    pub(super) scale: Scale,
    /// Writes a tick's value.
    pub(super) format: fn(f64) -> String,
}

pub(super) struct Series {
    pub(super) name: String,
    /// Any SVG colour.
    pub(super) color: &'static str,
    /// An SVG `stroke-dasharray`, or `None` for a solid line.
    pub(super) dash: Option<&'static str>,
    pub(super) points: Vec<(f64, f64)>,
}

pub(super) struct Plot {
    pub(super) title: String,
    pub(super) x: Axis,
    pub(super) y: Axis,
    pub(super) series: Vec<Series>,
}

const WIDTH: f64 = 880.0;
const HEIGHT: f64 = 520.0;
/// The plotting area; the legend sits right of it.
const LEFT: f64 = 80.0;
const RIGHT: f64 = 640.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 450.0;
const FONT: &str = "font-family=\"sans-serif\"";

/// One axis's value range and where values land between two pixel positions.
struct Mapping {
    scale: Scale,
    low: f64,
    high: f64,
    from: f64,
    to: f64,
}

impl Mapping {
    /// Covers `values` with whole decades (log) or from zero to a round number (linear).
    fn new(scale: Scale, values: impl Iterator<Item = f64>, from: f64, to: f64) -> Mapping {
        let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(min, max), v| {
            (min.min(v), max.max(v))
        });
        let (low, high) = match scale {
            Scale::Log => {
                let low = 10f64.powf(min.log10().floor());
                let high = 10f64.powf(max.log10().ceil());
                (low, if high > low { high } else { low * 10.0 })
            }
            Scale::Linear => {
                let low = min.min(0.0);
                let step = nice_step((max - low) / 5.0);
                let high = (max / step).ceil() * step;
                (low, if high > low { high } else { low + 1.0 })
            }
        };
        Mapping {
            scale,
            low,
            high,
            from,
            to,
        }
    }

    fn position(&self, value: f64) -> f64 {
        let fraction = match self.scale {
            Scale::Log => (value / self.low).log10() / (self.high / self.low).log10(),
            Scale::Linear => (value - self.low) / (self.high - self.low),
        };
        self.from + fraction * (self.to - self.from)
    }

    /// Labelled ticks, and unlabelled ones between them (2..9 of each decade on a log axis).
    fn ticks(&self) -> (Vec<f64>, Vec<f64>) {
        match self.scale {
            Scale::Log => {
                let mut major = Vec::new();
                let mut minor = Vec::new();
                let mut decade = self.low;
                while decade <= self.high * 1.0001 {
                    major.push(decade);
                    minor.extend((2..10).map(|m| decade * f64::from(m)));
                    decade *= 10.0;
                }
                minor.retain(|&v| v < self.high);
                (major, minor)
            }
            Scale::Linear => {
                let step = nice_step((self.high - self.low) / 5.0);
                let count = ((self.high - self.low) / step).round() as usize;
                let major = (0..=count).map(|i| self.low + step * i as f64).collect();
                (major, Vec::new())
            }
        }
    }
}

/// The round step (1, 2 or 5 times a power of ten) nearest above `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|&m| m * power >= raw)
        .unwrap_or(10.0);
    step * power
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Plot {
    /// The plot as a standalone SVG document. Points that a log axis cannot show (zero or
    /// negative) are left out.
    pub(super) fn render(&self) -> String {
        let visible =
            |scale: Scale, v: f64| v.is_finite() && (matches!(scale, Scale::Linear) || v > 0.0);
        let points: Vec<Vec<(f64, f64)>> = self
            .series
            .iter()
            .map(|series| {
                series
                    .points
                    .iter()
                    .copied()
                    .filter(|&(x, y)| visible(self.x.scale, x) && visible(self.y.scale, y))
                    .collect()
            })
            .collect();
        let all = || points.iter().flatten();
        let x = Mapping::new(self.x.scale, all().map(|p| p.0), LEFT, RIGHT);
        let y = Mapping::new(self.y.scale, all().map(|p| p.1), BOTTOM, TOP);

        let mut svg = String::new();
        let out = &mut svg;
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
             viewBox=\"0 0 {WIDTH} {HEIGHT}\">"
        );
        let _ = writeln!(out, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"28\" {FONT} font-size=\"16\" text-anchor=\"middle\">{}</text>",
            (LEFT + RIGHT) / 2.0,
            escape(&self.title)
        );
        grid(out, &x, &y, self.x.format, self.y.format);
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" {FONT} font-size=\"13\" text-anchor=\"middle\">{}</text>",
            (LEFT + RIGHT) / 2.0,
            BOTTOM + 45.0,
            escape(&self.x.label)
        );
        let _ = writeln!(
            out,
            "<text transform=\"translate(22 {}) rotate(-90)\" {FONT} font-size=\"13\" \
             text-anchor=\"middle\">{}</text>",
            (TOP + BOTTOM) / 2.0,
            escape(&self.y.label)
        );
        for (series, points) in self.series.iter().zip(&points) {
            line(out, series, points, &x, &y);
        }
        legend(out, &self.series);
        svg.push_str("</svg>\n");
        svg
    }
}

/// Grid lines, the frame, and the tick labels of both axes.
fn grid(
    out: &mut String,
    x: &Mapping,
    y: &Mapping,
    x_format: fn(f64) -> String,
    y_format: fn(f64) -> String,
) {
    let (x_major, x_minor) = x.ticks();
    let (y_major, y_minor) = y.ticks();
    for (ticks, color) in [(&x_minor, "#f0f0f0"), (&x_major, "#d0d0d0")] {
        for &tick in ticks {
            let at = x.position(tick);
            let _ = writeln!(
                out,
                "<line x1=\"{at:.1}\" y1=\"{TOP}\" x2=\"{at:.1}\" y2=\"{BOTTOM}\" stroke=\"{color}\"/>"
            );
        }
    }
    for (ticks, color) in [(&y_minor, "#f0f0f0"), (&y_major, "#d0d0d0")] {
        for &tick in ticks {
            let at = y.position(tick);
            let _ = writeln!(
                out,
                "<line x1=\"{LEFT}\" y1=\"{at:.1}\" x2=\"{RIGHT}\" y2=\"{at:.1}\" stroke=\"{color}\"/>"
            );
        }
    }
    let _ = writeln!(
        out,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>",
        RIGHT - LEFT,
        BOTTOM - TOP
    );
    for &tick in &x_major {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" {FONT} font-size=\"12\" text-anchor=\"middle\">{}</text>",
            x.position(tick),
            BOTTOM + 18.0,
            escape(&x_format(tick))
        );
    }
    for &tick in &y_major {
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" {FONT} font-size=\"12\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            y.position(tick) + 4.0,
            escape(&y_format(tick))
        );
    }
}

fn line(out: &mut String, series: &Series, points: &[(f64, f64)], x: &Mapping, y: &Mapping) {
    let color = series.color;
    let path: Vec<String> = points
        .iter()
        .map(|&(px, py)| format!("{:.1},{:.1}", x.position(px), y.position(py)))
        .collect();
    let dash = series
        .dash
        .map(|dash| format!(" stroke-dasharray=\"{dash}\""))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>",
        path.join(" ")
    );
    for &(px, py) in points {
        let _ = writeln!(
            out,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
            x.position(px),
            y.position(py)
        );
    }
}

fn legend(out: &mut String, series: &[Series]) {
    for (row, series) in series.iter().enumerate() {
        let at = TOP + 10.0 + 22.0 * row as f64;
        let dash = series
            .dash
            .map(|dash| format!(" stroke-dasharray=\"{dash}\""))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "<line x1=\"{}\" y1=\"{at}\" x2=\"{}\" y2=\"{at}\" stroke=\"{}\" stroke-width=\"2\"{dash}/>",
            RIGHT + 20.0,
            RIGHT + 50.0,
            series.color
        );
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" {FONT} font-size=\"12\">{}</text>",
            RIGHT + 58.0,
            at + 4.0,
            escape(&series.name)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(230_000.0), 500_000.0);
    }

    #[test]
    fn log_axes_cover_whole_decades() {
        let axis = Mapping::new(Scale::Log, [0.35, 1161.0].into_iter(), 0.0, 100.0);
        assert_eq!((axis.low, axis.high), (0.1, 10_000.0));
        let (major, minor) = axis.ticks();
        assert_eq!(major.len(), 6);
        assert_eq!(minor.len(), 5 * 8);
        assert!((axis.position(1.0) - 20.0).abs() < 1e-9);
    }

    #[test]
    fn a_plot_draws_every_series_and_its_legend() {
        let plot = Plot {
            title: "a & b".into(),
            x: Axis {
                label: "keys".into(),
                scale: Scale::Log,
                format: |v| format!("{v}"),
            },
            y: Axis {
                label: "ms".into(),
                scale: Scale::Linear,
                format: |v| format!("{v}"),
            },
            series: vec![
                Series {
                    name: "one".into(),
                    color: "red",
                    dash: None,
                    points: vec![(10.0, 1.0), (100.0, 2.0), (0.0, 3.0)],
                },
                Series {
                    name: "two".into(),
                    color: "blue",
                    dash: Some("4 3"),
                    points: vec![(10.0, 4.0)],
                },
            ],
        };
        let svg = plot.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a &amp; b"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(
            svg.matches("<circle").count(),
            3,
            "the point at x = 0 has no place on a log axis"
        );
        assert!(svg.contains(">two</text>"));
    }
}
