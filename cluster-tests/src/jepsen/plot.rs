//! PNG plots of a run: latency of every operation and throughput per second, by outcome, with
//! the fault windows shaded (plotters, drawing text with DejaVu Sans from Debian's
//! fonts-dejavu-core).

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::history::Outcome;
use super::nemesis::FaultWindow;
use super::workload::Timing;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const SIZE: (u32, u32) = (1200, 500);

/// Registers the font once; fails (and so do the plots) where it is not installed.
fn font() -> Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = std::fs::read(FONT).map_err(|e| format!("{FONT}: {e}"))?;
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{FONT} is not a usable font"))
        })
        .clone()
        .map_err(|e| anyhow!("no font for the plots ({e}; install fonts-dejavu-core)"))
}

fn color(outcome: Outcome) -> RGBColor {
    match outcome {
        Outcome::Ok => RGBColor(40, 120, 200),
        Outcome::Fail => RGBColor(230, 140, 20),
        Outcome::Unknown => RGBColor(200, 40, 40),
    }
}

fn label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Unknown => "unknown",
    }
}

const OUTCOMES: [Outcome; 3] = [Outcome::Ok, Outcome::Fail, Outcome::Unknown];

/// Shades each fault window over the full height of the chart.
fn shade<DB: DrawingBackend, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    windows: &[FaultWindow],
    (low, high): (Y::ValueType, Y::ValueType),
) -> Result<()>
where
    Y: Ranged<ValueType = f64>,
{
    let fill = RGBColor(250, 200, 200).mix(0.5).filled();
    chart
        .draw_series(windows.iter().map(|w| {
            Rectangle::new(
                [(w.start.as_secs_f64(), low), (w.end.as_secs_f64(), high)],
                fill,
            )
        }))
        .map_err(|e| anyhow!("drawing fault windows: {e}"))?;
    Ok(())
}

/// `latency.png`: one point per operation (x: invocation time, y: latency in ms, log scale).
pub fn latency(
    path: &Path,
    title: &str,
    ops: &[Timing],
    windows: &[FaultWindow],
    end: Duration,
) -> Result<()> {
    font()?;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let max_ms = ops
        .iter()
        .map(|t| (t.complete.saturating_sub(t.invoke)).as_secs_f64() * 1000.0)
        .fold(10.0_f64, f64::max)
        * 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{title}: latency"), ("sans-serif", 22))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end.as_secs_f64(), (0.1..max_ms).log_scale())
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("latency (ms)")
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    shade(&mut chart, windows, (0.1, max_ms))?;
    for outcome in OUTCOMES {
        let c = color(outcome);
        chart
            .draw_series(ops.iter().filter(|t| t.outcome == outcome).map(|t| {
                let ms = (t.complete.saturating_sub(t.invoke)).as_secs_f64() * 1000.0;
                Circle::new((t.invoke.as_secs_f64(), ms.max(0.1)), 2, c.filled())
            }))
            .map_err(|e| anyhow!("{e}"))?
            .label(label(outcome))
            .legend(move |(x, y)| Circle::new((x, y), 4, c.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))
}

/// `throughput.png`: completed operations per second, by outcome.
pub fn throughput(
    path: &Path,
    title: &str,
    ops: &[Timing],
    windows: &[FaultWindow],
    end: Duration,
) -> Result<()> {
    font()?;
    let seconds = end.as_secs() as usize + 1;
    let mut buckets = vec![[0u32; 3]; seconds];
    for t in ops {
        let s = (t.complete.as_secs() as usize).min(seconds - 1);
        let k = OUTCOMES.iter().position(|o| *o == t.outcome).unwrap_or(0);
        buckets[s][k] += 1;
    }
    let max = buckets.iter().flatten().copied().max().unwrap_or(1).max(1) as f64 * 1.2;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{title}: throughput"), ("sans-serif", 22))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end.as_secs_f64(), 0.0..max)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("operations / s")
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    shade(&mut chart, windows, (0.0, max))?;
    for (k, outcome) in OUTCOMES.iter().enumerate() {
        let c = color(*outcome);
        chart
            .draw_series(LineSeries::new(
                buckets
                    .iter()
                    .enumerate()
                    .map(|(s, b)| (s as f64 + 0.5, f64::from(b[k]))),
                c.stroke_width(2),
            ))
            .map_err(|e| anyhow!("{e}"))?
            .label(label(*outcome))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))
}
