//! The SVG plot of a run: requests sent, accepted (and stored, with the end-to-end check) per
//! second on top, p50 and p99 latency per second below. Uses plotters' SVG backend only, so no
//! font or image libraries are needed.

use std::path::Path;

use plotters::prelude::*;

use crate::LoadError;
use crate::report::Report;

/// Draws `report`'s per-second series into an SVG file.
pub fn write_svg(report: &Report, path: &Path) -> Result<(), LoadError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| LoadError::Write {
            path: path.to_owned(),
            source,
        })?;
    }
    draw(report, path).map_err(|e| LoadError::Plot {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn draw(report: &Report, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let points = &report.per_second;
    let seconds = points.len().max(1) as f64;
    let root = SVGBackend::new(path, (1000, 720)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(360);

    let stored = |p: &crate::stats::SecondPoint| p.stored.unwrap_or(0);
    let max_rate = points
        .iter()
        .map(|p| p.sent.max(p.accepted).max(stored(p)))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut rates = ChartBuilder::on(&top)
        .caption(
            format!("{}: events per second", report.scenario.name),
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..seconds, 0f64..max_rate * 1.1)?;
    rates
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("events/s")
        .draw()?;
    let series = |f: &dyn Fn(&crate::stats::SecondPoint) -> u64| -> Vec<(f64, f64)> {
        points
            .iter()
            .map(|p| (p.second as f64 + 0.5, f(p) as f64))
            .collect()
    };
    rates
        .draw_series(LineSeries::new(series(&|p| p.sent), &BLUE))?
        .label("sent")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
    rates
        .draw_series(LineSeries::new(series(&|p| p.accepted), &GREEN))?
        .label("accepted (2xx)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], GREEN));
    if points.iter().any(|p| p.stored.is_some()) {
        rates
            .draw_series(LineSeries::new(series(&stored), &MAGENTA))?
            .label("stored in ClickHouse")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], MAGENTA));
    }
    rates
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let max_latency = points
        .iter()
        .filter_map(|p| p.p99_ms)
        .fold(1.0f64, f64::max);
    let mut latency = ChartBuilder::on(&bottom)
        .caption("latency per second (ms)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..seconds, 0f64..max_latency * 1.1)?;
    latency
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("ms")
        .draw()?;
    let quantile = |f: &dyn Fn(&crate::stats::SecondPoint) -> Option<f64>| -> Vec<(f64, f64)> {
        points
            .iter()
            .filter_map(|p| Some((p.second as f64 + 0.5, f(p)?)))
            .collect()
    };
    latency
        .draw_series(LineSeries::new(quantile(&|p| p.p50_ms), &BLUE))?
        .label("p50")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
    latency
        .draw_series(LineSeries::new(quantile(&|p| p.p99_ms), &RED))?
        .label("p99")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
    latency
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
